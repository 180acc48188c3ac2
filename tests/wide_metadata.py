"""Wide `$metadata` documents written by the project itself, for tests that need them.

Two EDMX documents with the structure of the feeds the pipeline meets, generated from the
tables below (deterministic: the same bytes on every run and every machine, no file
outside the repository read):

- `trestle_metadata_xml()`: shaped like Trestle's `$metadata` (namespaces
  `CoreLogic.DataStandard.RESO.DD`, `.Enums` and `.WebAPI_1_0`, multi-selects as IsFlags
  enumerations with Values and `TrestleName` annotations, timestamps
  `Edm.DateTimeOffset Precision="27"`, decimals with Precision/Scale, `X_` custom fields
  with annotations, the key declared last, a derived `Realtor` type, DataSystem with a
  collection of a complex type). Its Property has `TRESTLE_PROPERTY_FIELDS` (588) fields,
  `TRESTLE_PROPERTY_ENUM_FIELDS` (181) of them enumeration-typed: wide enough that one
  column per field does not fit a MariaDB row (ERROR 1118, row size too large).
- `reso_dd_metadata_xml()`: shaped like RESO's Data Dictionary 2.0 reference metadata
  (namespace `org.reso.metadata`, multi-selects as `Collection(...enums.X)`, enum members
  without values, Edm.Int64 integers, StandardName/DDWikiUrl annotations, single and
  collection navigation properties without bindings, `RESO_DD_RESOURCE_COUNT` (41)
  entity types, some keyed by Edm.Int64 or by a string without MaxLength).

Field names are RESO Data Dictionary names written down here (the standard is public;
the names and their types are facts), completed to the target sizes with systematic
names in the same style (per-room and per-unit-type fields).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import quoteattr

TRESTLE_PROPERTY_FIELDS = 588
TRESTLE_PROPERTY_ENUM_FIELDS = 181
RESO_DD_PROPERTY_FIELDS = 632
RESO_DD_RESOURCE_COUNT = 41

TRESTLE_FILE_NAME = "trestle-like.xml"
RESO_DD_FILE_NAME = "reso-dd-like.xml"

# --------------------------------------------------------------------------- field specs
#
# A field is written "Name type": s25 (Edm.String MaxLength 25), text (Edm.String without
# MaxLength), i3 (Edm.Int32 Precision 3; i alone: no Precision), l (Edm.Int64),
# d14.2 (Edm.Decimal Precision 14 Scale 2), b (Edm.Boolean), date, ts (Edm.DateTimeOffset
# Precision 27), geo (Edm.GeographyPoint), stream (Edm.Stream), e:Enum (one member of
# enumeration Enum), m:Enum (a multi-select of Enum), e / m alone: the enumeration named
# like the field. A trailing "!" means Nullable="false".


@dataclass(frozen=True)
class Field:
    name: str
    code: str

    @property
    def enum(self) -> str | None:
        kind, _, enum = self.code.rstrip("!").partition(":")
        if kind not in ("e", "m"):
            return None
        return enum or self.name

    @property
    def is_multi(self) -> bool:
        return self.code.startswith("m")


def _fields(table: str) -> list[Field]:
    """"Name code, Name code ..." (commas and line breaks are both separators)."""
    tokens = table.replace(",", " ").split()
    if len(tokens) % 2:
        raise AssertionError(f"a field without a type in {table!r}")
    return [Field(name, code) for name, code in zip(tokens[::2], tokens[1::2], strict=True)]


PROPERTY_CORE = _fields("""
    AboveGradeFinishedArea d14.2, AboveGradeFinishedAreaSource e:AreaSource
    AboveGradeFinishedAreaUnits e:AreaUnits, AccessCode s25, AccessibilityFeatures m
    AdditionalParcelsDescription s255, AdditionalParcelsYN b, AnchorsCoTenants s1024
    Appliances m, ArchitecturalStyle m, AssociationAmenities m, AssociationFee d14.2
    AssociationFee2 d14.2, AssociationFee2Frequency e:FeeFrequency
    AssociationFeeFrequency e:FeeFrequency, AssociationFeeIncludes m, AssociationName s50
    AssociationName2 s50, AssociationPhone s16, AssociationPhone2 s16, AssociationYN b
    AttachedGarageYN b, AvailabilityDate date, Basement m, BathroomsFull i3
    BathroomsHalf i3, BathroomsOneQuarter i3, BathroomsPartial i3, BathroomsThreeQuarter i3
    BathroomsTotalInteger i3, BedroomsPossible i3, BedroomsTotal i3
    BelowGradeFinishedArea d14.2, BelowGradeFinishedAreaSource e:AreaSource
    BelowGradeFinishedAreaUnits e:AreaUnits, BodyType m, BuilderModel s50, BuilderName s50
    BuildingAreaSource e:AreaSource, BuildingAreaTotal d14.2, BuildingAreaUnits e:AreaUnits
    BuildingFeatures m, BuildingName s50, BusinessName s255, BusinessType m
    BuyerAgencyCompensation s25, BuyerAgencyCompensationType e:CompensationType
    BuyerFinancing m, BuyerTeamKey s255, BuyerTeamName s50, CableTvExpense d14.2
    CancellationDate date, CapRate d5.2, CarportSpaces d14.2, CarportYN b, CarrierRoute s9
    City s50, CityRegion s150, CloseDate date, ClosePrice d14.2, CommonInterest e
    CommonWalls m, CommunityFeatures m, Concessions e, ConcessionsAmount i16
    ConcessionsComments s200, ConstructionMaterials m, ContinentRegion s150
    Contingency s1024, ContingentDate date, ContractStatusChangeDate date, Cooling m
    CoolingYN b, CopyrightNotice s500, Country e, CountryRegion s150, CountyOrParish s50
    CoveredSpaces d14.2, CropsIncludedYN b, CrossStreet s50, CultivatedArea d14.2
    CumulativeDaysOnMarket i4, CurrentFinancing m, CurrentUse m, DOH1 s25, DOH2 s25
    DaysOnMarket i4, DevelopmentStatus m, DirectionFaces e, Directions s1024
    Disclaimer s500, Disclosures m, DocumentsAvailable m, DocumentsChangeTimestamp ts
    DocumentsCount i4, DoorFeatures m, DualVariableCompensationYN b, Electric m
    ElectricExpense d14.2, ElectricOnPropertyYN b, ElementarySchool s50
    ElementarySchoolDistrict s50, Elevation i16, ElevationUnits e:LinearUnits
    EntryLevel i3, EntryLocation s50, Exclusions s1024, ExistingLeaseType m
    ExpirationDate date, ExteriorFeatures m, FarmCreditServiceInclYN b
    FarmLandAreaSource e:AreaSource, FarmLandAreaUnits e:AreaUnits, Fencing m
    FinancialDataSource m, FireplaceFeatures m, FireplaceYN b, FireplacesTotal i3
    Flooring m, FoundationArea d14.2, FoundationDetails m, FrontageLength s255
    FrontageType m, FuelExpense d14.2, Furnished e, FurnitureReplacementExpense d14.2
    GarageSpaces d14.2, GarageYN b, GardenerExpense d14.2, GrazingPermitsBlmYN b
    GrazingPermitsForestServiceYN b, GrazingPermitsPrivateYN b
    GreenBuildingVerificationType m, GreenEnergyEfficient m, GreenEnergyGeneration m
    GreenIndoorAirQuality m, GreenLocation m, GreenSustainability m
    GreenWaterConservation m, GrossIncome d14.2, GrossScheduledIncome d14.2
    HabitableResidenceYN b, Heating m, HeatingYN b, HighSchool s50, HighSchoolDistrict s50
    HomeWarrantyYN b, HorseAmenities m, HorseYN b, HoursDaysOfOperation m
    HoursDaysOfOperationDescription s255, Inclusions s1024, IncomeIncludes m
    InsuranceExpense d14.2, InteriorFeatures m, InternetAddressDisplayYN b
    InternetAutomatedValuationDisplayYN b, InternetConsumerCommentYN b
    InternetEntireListingDisplayYN b, IrrigationSource m, IrrigationWaterRightsAcres d16.4
    IrrigationWaterRightsYN b, LaborInformation m, LandLeaseAmount d14.2
    LandLeaseAmountFrequency e:FeeFrequency, LandLeaseExpirationDate date, LandLeaseYN b
    Latitude d12.8, LaundryFeatures m, LeasableArea d14.2, LeasableAreaUnits e:AreaUnits
    LeaseAmount d14.2, LeaseAmountFrequency e:FeeFrequency, LeaseAssignableYN b
    LeaseConsideredYN b, LeaseExpiration date, LeaseRenewalCompensation m
    LeaseRenewalOptionYN b, LeaseTerm e, Levels m, License1 s25, License2 s25
    LicensesExpense d14.2, ListAOR e:AOR, ListPrice d14.2, ListTeamKey s255
    ListTeamName s50, ListingAgreement e, ListingContractDate date, ListingId s255
    ListingKeyNumeric i255, ListingService e, ListingTerms m, LivingArea d14.2
    LivingAreaSource e:AreaSource, LivingAreaUnits e:AreaUnits, LockBoxLocation s255
    LockBoxSerialNumber s25, LockBoxType m, Longitude d12.8, LotDimensionsSource e
    LotFeatures m, LotSizeAcres d16.4, LotSizeArea d16.4, LotSizeDimensions s150
    LotSizeSource e:AreaSource, LotSizeSquareFeet d14.2, LotSizeUnits e, MLSAreaMajor e
    MLSAreaMinor e, MainLevelBathrooms i3, MainLevelBedrooms i3, MaintenanceExpense d14.2
    MajorChangeTimestamp ts, MajorChangeType e, Make s50, ManagerExpense d14.2
    MapCoordinate s25, MapCoordinateSource s25, MapURL s8000, MiddleOrJuniorSchool s50
    MiddleOrJuniorSchoolDistrict s50, MlsStatus e, MobileDimUnits e:LinearUnits
    MobileHomeRemainsYN b, MobileLength i4, MobileWidth i4, Model s50
    ModificationTimestamp ts, NetOperatingIncome d14.2, NewConstructionYN b
    NewTaxesExpense d14.2, NumberOfBuildings i4, NumberOfFullTimeEmployees i5
    NumberOfLots i4, NumberOfPads i4, NumberOfPartTimeEmployees i5
    NumberOfSeparateElectricMeters i4, NumberOfSeparateGasMeters i4
    NumberOfSeparateWaterMeters i4, NumberOfUnitsInCommunity i5, NumberOfUnitsLeased i5
    NumberOfUnitsMoMo i5, NumberOfUnitsTotal i5, NumberOfUnitsVacant i5, OccupantName s50
    OccupantPhone s16, OccupantType e, OffMarketDate date, OnMarketDate date
    OpenParkingSpaces d14.2, OpenParkingYN b, OperatingExpense d14.2
    OperatingExpenseIncludes m, OriginalEntryTimestamp ts, OriginalListPrice d14.2
    OriginatingSystemID s25, OriginatingSystemKey s255, OriginatingSystemName s255
    OtherEquipment m, OtherExpense d14.2, OtherParking m, OtherStructures m, OwnerName s50
    OwnerPays m, OwnerPhone s16, Ownership s150, OwnershipType e, ParcelNumber s50
    ParkManagerName s50, ParkManagerPhone s16, ParkName s50, ParkingFeatures m
    ParkingTotal d14.2, PastureArea d14.2, PatioAndPorchFeatures m
    PestControlExpense d14.2, PetsAllowed m, PhotosChangeTimestamp ts, PhotosCount i4
    PoolExpense d14.2, PoolFeatures m, PoolPrivateYN b, Possession m, PossibleUse m
    PostalCity e, PostalCode s10, PostalCodePlus4 s4, PreviousListPrice d14.2
    PriceChangeTimestamp ts, PrivateOfficeRemarks s4000, PrivateRemarks s4000
    ProfessionalManagementExpense d14.2, PropertyAttachedYN b, PropertyCondition m
    PropertySubType e, PropertyType e, PublicRemarks s4000, PublicSurveyRange s20
    PublicSurveySection s20, PublicSurveyTownship s20, PurchaseContractDate date
    RVParkingDimensions s50, RangeArea d14.2, RentControlYN b, RentIncludes m
    RoadFrontageType m, RoadResponsibility m, RoadSurfaceType m, Roof m, RoomType m
    RoomsTotal i3, SeatingCapacity i5, SecurityFeatures m, SeniorCommunityYN b
    SerialU s25, SerialX s25, Sewer m, ShowingAdvanceNotice i4
    ShowingAttendedYN b, ShowingContactName s40, ShowingContactPhone s16
    ShowingContactPhoneExt s10, ShowingContactType m, ShowingInstructions s1024
    SignOnPropertyYN b, Skirt m, SourceSystemID s25, SourceSystemKey s255
    SourceSystemName s255, SpaFeatures m, SpaYN b, SpecialLicenses m
    SpecialListingConditions m, StandardStatus e, StateOrProvince e, StateRegion s150
    StatusChangeTimestamp ts, Stories i3, StoriesTotal i3, StreetAdditionalInfo s50
    StreetDirPrefix e:StreetDirection, StreetDirSuffix e:StreetDirection, StreetName s50
    StreetNumber s25, StreetNumberNumeric i16, StreetSuffix e, StreetSuffixModifier s25
    StructureType m, SubAgencyCompensation s25, SubAgencyCompensationType e:CompensationType
    SubdivisionName s50, SuppliesExpense d14.2, SyndicateTo m, SyndicationRemarks s4000
    TaxAnnualAmount d14.2, TaxAssessedValue i16, TaxBlock s25, TaxBookNumber s25
    TaxLegalDescription s6000, TaxLot s25, TaxMapNumber s25
    TaxOtherAnnualAssessmentAmount d14.2, TaxParcelLetter s25, TaxStatusCurrent m
    TaxTract s25, TaxYear i4, TenantPays m, Topography s255, TotalActualRent d14.2
    Township s50, TransactionBrokerCompensation s25
    TransactionBrokerCompensationType e:CompensationType, TrashExpense d14.2
    UnitNumber s25, UnitTypeType m, UnitsFurnished e, UniversalPropertyId s128
    UniversalPropertySubId s128, UnparsedAddress s255, Utilities m, VacancyAllowance i3
    VacancyAllowanceRate d5.2, Vegetation m, VideosChangeTimestamp ts, VideosCount i4
    View m, ViewYN b, VirtualTourURLBranded s8000, VirtualTourURLUnbranded s8000
    WalkScore i3, WaterBodyName s50, WaterSewerExpense d14.2, WaterSource m
    WaterfrontFeatures m, WaterfrontYN b, WindowFeatures m, WithdrawnDate date
    WoodedArea d14.2, WorkmansCompensationExpense d14.2, YearBuilt i4
    YearBuiltDetails s1024, YearBuiltEffective i4, YearBuiltSource e, YearEstablished i4
    YearsCurrentOwner i4, Zoning s25, ZoningDescription s255
""")

# The four agents and four offices of a listing, each with the same RESO field suffixes.
AGENT_ROLES = ("BuyerAgent", "CoBuyerAgent", "CoListAgent", "ListAgent")
OFFICE_ROLES = ("BuyerOffice", "CoBuyerOffice", "CoListOffice", "ListOffice")
AGENT_SUFFIXES = _fields("""
    AOR e:AOR, Designation m:MemberDesignation, DirectPhone s16, Email s80, Fax s16
    FirstName s50, FullName s150, Key s255, KeyNumeric i255, LastName s50, MiddleName s50
    MlsId s25, MobilePhone s16, NamePrefix s10, NameSuffix s10, OfficePhone s16
    OfficePhoneExt s10, PreferredPhone s16, StateLicense s50, TollFreePhone s16, URL s8000
""")
OFFICE_SUFFIXES = _fields("""
    AOR e:AOR, Email s80, Key s255, KeyNumeric i255, MlsId s25, Name s255, Phone s16
    URL s8000
""")
# Distances to services, each as comments, a number and its units.
DISTANCE_TARGETS = (
    "Bus", "Electric", "Freeway", "Gas", "PhoneService", "PlaceofWorship", "SchoolBus",
    "Schools", "Sewer", "Shopping", "Street", "Water",
)
# Completion to the target sizes: per-room fields, then per-unit-type fields.
ROOMS = (
    "Bedroom", "Bathroom", "Kitchen", "DiningRoom", "FamilyRoom", "LivingRoom",
    "MasterBedroom", "MasterBathroom", "Office", "Laundry", "GreatRoom", "Basement",
    "Den", "Loft", "Sunroom", "Library", "Media", "Workshop", "Utility", "Exercise",
    "Game", "Guest", "Mudroom", "Pantry", "Storage", "Bonus", "Foyer", "Attic",
)
ROOM_ENUM_SUFFIXES = _fields("Features m:RoomFeatures, Level e:RoomLevel")
ROOM_OTHER_SUFFIXES = _fields("Area d14.2, Dimensions s50, Length d14.2, Width d14.2, "
                              "Description s255, AreaUnits e:AreaUnits")
UNIT_TYPES = ("1", "2", "3", "4", "5", "6", "7", "8")
UNIT_SUFFIXES = _fields("ActualRent d14.2, BathsTotal i3, BedsTotal i3, Description s255, "
                        "GarageSpaces d14.2, ProForma d14.2, TotalRent d14.2, UnitsTotal i4")

TRESTLE_CUSTOM = _fields("X_Location geo, X_LivingAreaRange text, X_LandTenure e")
DD_ONLY_PROPERTY = _fields("""
    ActivationDate date, AttributionContact s255, BuyerBrokerageCompensation s25
    BuyerBrokerageCompensationType e:CompensationType, ComingSoonDate date
    DaysOnMarketReplication i4, DaysOnMarketReplicationDate date
    DaysOnMarketReplicationIncreasingYN b, ListingURL s8000, OffMarketTimestamp ts
    OnMarketTimestamp ts, PendingTimestamp ts, ShowingEndTime ts, ShowingStartTime ts
    ShowingDays m, ShowingRequirements m, WaterfrontFeaturesYN b
""")


def _role_fields(roles: Iterable[str], suffixes: list[Field]) -> list[Field]:
    return [Field(f"{role}{s.name}", s.code) for role in roles for s in suffixes]


def _distance_fields() -> list[Field]:
    return [field for target in DISTANCE_TARGETS for field in (
        Field(f"DistanceTo{target}Comments", "s255"),
        Field(f"DistanceTo{target}Numeric", "i16"),
        Field(f"DistanceTo{target}Units", "e:LinearUnits"),
    )]


def _completed(fields: list[Field], total: int, enum_fields: int) -> list[Field]:
    """`fields` plus systematic per-room and per-unit-type fields up to the two targets."""
    names = {f.name for f in fields}
    enums_now = sum(f.enum is not None for f in fields)
    if len(names) != len(fields) or enums_now > enum_fields or len(fields) > total:
        raise AssertionError(f"catalogue too big or duplicated: {len(fields)}, {enums_now}")
    extra_enums = [Field(f"Room{room}{s.name}", s.code)
                   for room in ROOMS for s in ROOM_ENUM_SUFFIXES]
    extra_other = [Field(f"Room{room}{s.name}", s.code)
                   for room in ROOMS for s in ROOM_OTHER_SUFFIXES if s.enum is None]
    extra_other += [Field(f"UnitType{unit}{s.name}", s.code)
                    for unit in UNIT_TYPES for s in UNIT_SUFFIXES]
    need_enums = enum_fields - enums_now
    need_other = total - len(fields) - need_enums
    if need_enums > len(extra_enums) or need_other > len(extra_other) or need_other < 0:
        raise AssertionError("not enough systematic names to reach the targets")
    return fields + extra_enums[:need_enums] + extra_other[:need_other]


def _sorted(fields: list[Field]) -> list[Field]:
    return sorted(fields, key=lambda f: f.name.lower())


@cache
def trestle_property_fields() -> tuple[Field, ...]:
    """Alphabetical standard fields, then the custom X_ fields, the key last (as Trestle)."""
    standard = [*PROPERTY_CORE, *_role_fields(AGENT_ROLES, AGENT_SUFFIXES),
                *_role_fields(OFFICE_ROLES, OFFICE_SUFFIXES), *_distance_fields(),
                Field("OriginatingSystemSubName", "s255")]
    key = Field("ListingKey", "s255!")
    custom_enums = sum(f.enum is not None for f in TRESTLE_CUSTOM)
    standard = _completed(standard, TRESTLE_PROPERTY_FIELDS - len(TRESTLE_CUSTOM) - 1,
                          TRESTLE_PROPERTY_ENUM_FIELDS - custom_enums)
    return (*_sorted(standard), *TRESTLE_CUSTOM, key)


@cache
def reso_dd_property_fields() -> tuple[Field, ...]:
    """DD 2.0: the same standard fields (without Trestle's own), more of them, alphabetical."""
    standard = [f for f in trestle_property_fields() if not f.name.startswith("X_")]
    names = {f.name for f in standard}
    standard += [f for f in DD_ONLY_PROPERTY if f.name not in names]
    extra = [Field(f"UnitType{unit}{s.name}", s.code) for unit in ("9", "10", "11", "12")
             for s in UNIT_SUFFIXES]
    extra += [Field(f"Room{room}{s.name}", s.code) for room in ROOMS
              for s in (*ROOM_ENUM_SUFFIXES, *ROOM_OTHER_SUFFIXES)]
    for field in extra:
        if len(standard) == RESO_DD_PROPERTY_FIELDS:
            break
        if field.name not in names:
            names.add(field.name)
            standard.append(field)
    if len(standard) != RESO_DD_PROPERTY_FIELDS:
        raise AssertionError(f"DD Property has {len(standard)} fields")
    return tuple(_sorted(standard))


MEMBER_FIELDS = _fields("""
    JobTitle s50, LastLoginTimestamp ts, MemberAddress1 s50, MemberAddress2 s50
    MemberAOR e:AOR, MemberAORkey s255, MemberAORkeyNumeric i255, MemberAORMlsId s25
    MemberAssociationComments s500, MemberCarrierRoute s9, MemberCity s50
    MemberCountry e:Country, MemberCountyOrParish s50, MemberDesignation m
    MemberDirectPhone s16, MemberEmail s80, MemberFax s16, MemberFirstName s50
    MemberFullName s150, MemberHomePhone s16, MemberIsAssistantTo s50
    MemberKeyNumeric i255, MemberLanguages m:Languages, MemberLastName s50
    MemberLoginId s25, MemberMiddleName s50, MemberMlsAccessYN b, MemberMlsId s25
    MemberMlsSecurityClass e, MemberMobilePhone s16, MemberNamePrefix s10
    MemberNameSuffix s10, MemberNationalAssociationId s25, MemberNickname s50
    MemberOfficePhone s16, MemberOfficePhoneExt s10, MemberPager s16, MemberPassword s25
    MemberPhoneTTYTDD s16, MemberPostalCode s10, MemberPostalCodePlus4 s4
    MemberPreferredPhone s16, MemberPreferredPhoneExt s10, MemberStateLicense s50
    MemberStateLicenseState e:StateOrProvince, MemberStateOrProvince e:StateOrProvince
    MemberStatus e, MemberTollFreePhone s16, MemberType e, MemberVoiceMail s16
    MemberVoiceMailExt s10, ModificationTimestamp ts, OfficeKey s255, OfficeKeyNumeric i255
    OfficeMlsId s25, OfficeName s255, OriginalEntryTimestamp ts, OriginatingSystemID s25
    OriginatingSystemMemberKey s255, OriginatingSystemName s255, SourceSystemID s25
    SourceSystemMemberKey s255, SourceSystemName s255, SyndicateTo m, MemberKey s255!
    OriginatingSystemSubName s255
""")
OFFICE_FIELDS = _fields("""
    FranchiseAffiliation s50, IDXOfficeParticipationYN b, MainOfficeKey s255
    MainOfficeKeyNumeric i255, MainOfficeMlsId s25, ModificationTimestamp ts
    OfficeAddress1 s50, OfficeAddress2 s50, OfficeAOR e:AOR, OfficeAORkey s255
    OfficeAORkeyNumeric i255, OfficeAORMlsId s25, OfficeAssociationComments s500
    OfficeBranchType e, OfficeBrokerKey s255, OfficeBrokerKeyNumeric i255
    OfficeBrokerMlsId s25, OfficeCity s50, OfficeCorporateLicense s50
    OfficeCountyOrParish s50, OfficeEmail s80, OfficeFax s16, OfficeKeyNumeric i255
    OfficeManagerKey s255, OfficeManagerKeyNumeric i255, OfficeManagerMlsId s25
    OfficeMlsId s25, OfficeName s255, OfficeNationalAssociationId s25, OfficePhone s16
    OfficePhoneExt s10, OfficePostalCode s10, OfficePostalCodePlus4 s4
    OfficeStateOrProvince e:StateOrProvince, OfficeStatus e, OfficeType e
    OriginalEntryTimestamp ts, OriginatingSystemID s25, OriginatingSystemName s255
    OriginatingSystemOfficeKey s255, SourceSystemID s25, SourceSystemName s255
    SourceSystemOfficeKey s255, SyndicateAgentOption e, SyndicateTo m, OfficeKey s255!
    OriginatingSystemSubName s255
""")
MEDIA_FIELDS = _fields("""
    ChangedByMemberID s25, ChangedByMemberKey s255, ChangedByMemberKeyNumeric i255
    ClassName e, ImageHeight i8, ImageOf e, ImageSizeDescription e, ImageWidth i8
    LongDescription s1024, MediaCategory e, MediaHTML s8500, MediaKeyNumeric i255
    MediaModificationTimestamp ts, MediaObjectID s255, MediaStatus e, MediaType e
    MediaURL s8000, ModificationTimestamp ts, Order i4, OriginatingSystemID s25
    OriginatingSystemMediaKey s255, OriginatingSystemName s255, Permission e
    PreferredPhotoYN b, ResourceName e, ResourceRecordID s255, ResourceRecordKey s255
    ResourceRecordKeyNumeric i255, ShortDescription s50, SourceSystemID s25
    SourceSystemMediaKey s255, SourceSystemName s255, MediaKey s255!
    ListOfficeMlsId text, X_MediaStream stream, OriginatingSystemSubName s255
""")
OPEN_HOUSE_FIELDS = _fields("""
    AppointmentRequiredYN b, ListingId s255, ListingKey s255, ListingKeyNumeric i255
    ModificationTimestamp ts, OpenHouseAttendedBy e:Attended, OpenHouseDate date
    OpenHouseEndTime ts, OpenHouseId s255, OpenHouseKeyNumeric i255
    OpenHouseRemarks s500, OpenHouseStartTime ts, OpenHouseStatus e, OpenHouseType e
    OriginalEntryTimestamp ts, OriginatingSystemID s25, OriginatingSystemKey s255
    OriginatingSystemName s255, Refreshments s255, ShowingAgentFirstName s50
    ShowingAgentKey s255, ShowingAgentKeyNumeric i255, ShowingAgentLastName s50
    ShowingAgentMlsID s25, SourceSystemID s25, SourceSystemKey s255
    SourceSystemName s255, OpenHouseKey s255!, ListOfficeMlsId text
    OriginatingSystemSubName s255
""")

# --------------------------------------------------------------------------- enumerations

KNOWN_MEMBERS: dict[str, tuple[str, ...]] = {
    "StandardStatus": ("Active", "ActiveUnderContract", "Canceled", "Closed", "ComingSoon",
                       "Delete", "Expired", "Hold", "Incomplete", "Pending", "Withdrawn"),
    "MlsStatus": ("Active", "BackOnMarket", "Cancelled", "Closed", "Expired", "Pending",
                  "Sold", "TempOffMarket", "Withdrawn"),
    "PropertyType": ("BusinessOpportunity", "CommercialLease", "CommercialSale", "Farm",
                     "Land", "ManufacturedInPark", "Residential", "ResidentialIncome",
                     "ResidentialLease"),
    "PropertySubType": ("Apartment", "BoatSlip", "Cabin", "Condominium", "DeededParking",
                        "Duplex", "Farm", "ManufacturedHome", "ManufacturedOnLand",
                        "MobileHome", "OwnYourOwn", "Quadruplex", "Ranch",
                        "SingleFamilyResidence", "StockCooperative", "Timeshare",
                        "Townhouse", "Triplex"),
    "Appliances": ("BarFridge", "BuiltInFreezer", "BuiltInRange", "ConvectionOven",
                   "Cooktop", "Dishwasher", "Disposal", "DoubleOven", "Dryer",
                   "ElectricCooktop", "ElectricOven", "ElectricRange", "ElectricWaterHeater",
                   "ExhaustFan", "Freezer", "GasCooktop", "GasOven", "GasRange",
                   "GasWaterHeater", "Humidifier", "IceMaker", "Microwave", "Oven",
                   "RangeHood", "Refrigerator", "SolarHotWater", "StainlessSteelAppliances",
                   "TanklessWaterHeater", "TrashCompactor", "Washer", "WasherDryer",
                   "WaterHeater", "WaterPurifier", "WaterSoftener", "WineCooler",
                   "WineRefrigerator"),
    "Cooling": ("AtticFan", "CeilingFans", "CentralAir", "Dual", "Electric",
                "EnergyStarQualifiedEquipment", "EvaporativeCooling", "Gas", "Geothermal",
                "HeatPump", "HumidityControl", "MultiUnits", "None", "Other", "RoofTurbines",
                "SeparateMeters", "WallUnits", "WholeHouseFan", "WindowUnits", "Zoned"),
    "Heating": ("ActiveSolar", "Baseboard", "Central", "Coal", "Electric", "Fireplaces",
                "ForcedAir", "Geothermal", "HeatPump", "HotWater", "NaturalGas", "None",
                "Oil", "Other", "Propane", "Radiant", "SpaceHeater", "Steam", "WallFurnace",
                "WoodStove", "Zoned"),
    "Flooring": ("Bamboo", "Brick", "Carpet", "Concrete", "Cork", "Hardwood", "Laminate",
                 "Linoleum", "Marble", "Slate", "Stone", "Tile", "Vinyl", "Wood"),
    "Roof": ("Asphalt", "Clay", "Composition", "Concrete", "Copper", "Flat", "Metal",
             "Shingle", "Slate", "Tile", "Wood"),
    "Sewer": ("Cesspool", "None", "Other", "PublicSewer", "SepticTank"),
    "WaterSource": ("Cistern", "None", "Private", "Public", "SharedWell", "Well"),
    "View": ("City", "CityLights", "CreekStream", "Desert", "Forest", "GolfCourse", "Hills",
             "Lake", "Mountains", "Ocean", "Panoramic", "Park", "River", "TreesWoods",
             "Water"),
    "InteriorFeatures": ("BuiltInFeatures", "CathedralCeilings", "CeilingFans",
                         "CrownMolding", "DoubleVanity", "EatInKitchen", "EntranceFoyer",
                         "GraniteCounters", "HighCeilings", "KitchenIsland", "OpenFloorplan",
                         "Pantry", "RecessedLighting", "SmartHome", "SoakingTub",
                         "TrayCeilings", "VaultedCeilings", "WalkInClosets", "WetBar"),
    "ExteriorFeatures": ("Balcony", "Barbecue", "Courtyard", "FirePit", "Garden",
                         "Lighting", "OutdoorKitchen", "PrivateYard", "RainGutters",
                         "Storage"),
    "ParkingFeatures": ("Attached", "Carport", "Covered", "Detached", "Driveway", "Garage",
                        "GarageDoorOpener", "OnStreet", "RvAccessParking", "Tandem"),
    "PoolFeatures": ("AboveGround", "Fenced", "Gunite", "Heated", "InGround", "Indoor",
                     "Infinity", "SaltWater", "Solar"),
    "Utilities": ("CableAvailable", "ElectricityAvailable", "ElectricityConnected",
                  "NaturalGasAvailable", "PhoneAvailable", "SewerConnected",
                  "UndergroundUtilities", "WaterConnected"),
    "ArchitecturalStyle": ("Bungalow", "CapeCod", "Colonial", "Contemporary", "Craftsman",
                           "Mediterranean", "MidCenturyModern", "Modern", "Ranch", "Spanish",
                           "Traditional", "Tudor", "Victorian"),
    "LotFeatures": ("CornerLot", "CulDeSac", "Landscaped", "Level", "NearGolfCourse",
                    "Sloped", "Waterfront", "Wooded"),
    "CommunityFeatures": ("Clubhouse", "FitnessCenter", "Golf", "Park", "Playground", "Pool",
                          "Sidewalks", "StreetLights", "TennisCourts"),
    "SecurityFeatures": ("CarbonMonoxideDetectors", "FireAlarm", "Gated", "SecurityGuard",
                         "SecuritySystem", "SmokeDetectors"),
    "LaundryFeatures": ("InGarage", "InKitchen", "InUnit", "LaundryCloset", "LaundryRoom",
                        "Sink"),
    "ConstructionMaterials": ("Adobe", "Block", "Brick", "Concrete", "FiberCement", "Frame",
                              "Log", "Stone", "Stucco", "VinylSiding", "Wood"),
    "SpecialListingConditions": ("Auction", "BankruptcyProperty", "HudOwned",
                                 "InForeclosure", "NoticeOfDefault", "ProbateListing",
                                 "RealEstateOwned", "ShortSale", "Standard",
                                 "ThirdPartyApproval"),
    "ListingTerms": ("Cash", "Conventional", "FHA", "Lease", "OwnerMayCarry", "UsdaLoan",
                     "VA"),
    "StateOrProvince": ("AB", "AK", "AL", "AR", "AZ", "BC", "CA", "CO", "CT", "DC", "DE",
                        "FL", "GA", "HI", "IA", "ID", "IL", "IN", "KS", "KY", "LA", "MA",
                        "MB", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NB", "NC", "ND",
                        "NE", "NH", "NJ", "NL", "NM", "NS", "NT", "NU", "NV", "NY", "OH",
                        "OK", "ON", "OR", "PA", "PE", "QC", "RI", "SC", "SD", "SK", "TN",
                        "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY", "YT"),
    "Country": ("CA", "MX", "US"),
    "AreaSource": ("Appraiser", "Assessor", "Builder", "Estimated", "Measured", "Other",
                   "Owner", "Plans", "PublicRecords", "SeeRemarks"),
    "AreaUnits": ("SquareFeet", "SquareMeters"),
    "LinearUnits": ("Feet", "Meters"),
    "LotSizeUnits": ("Acres", "Hectares", "SquareFeet", "SquareMeters"),
    "FeeFrequency": ("Annually", "Bimonthly", "BiWeekly", "Daily", "Monthly", "OneTime",
                     "Quarterly", "Seasonal", "SemiAnnually", "SemiMonthly", "Weekly"),
    "CompensationType": ("Dollars", "Other", "Percent", "SeeRemarks"),
    "StreetDirection": ("E", "N", "NE", "NW", "S", "SE", "SW", "W"),
    "StreetSuffix": ("Alley", "Avenue", "Boulevard", "Circle", "Court", "Drive", "Highway",
                     "Lane", "Parkway", "Place", "Road", "Square", "Street", "Terrace",
                     "Trail", "Way"),
    "Furnished": ("Furnished", "Negotiable", "Partially", "Unfurnished"),
    "OccupantType": ("Owner", "Tenant", "Vacant"),
    "LeaseTerm": ("MonthToMonth", "Negotiable", "SixMonths", "TwelveMonths",
                  "TwentyFourMonths", "Weekly"),
    "MemberDesignation": ("AccreditedBuyersRepresentative", "CertifiedResidentialSpecialist",
                          "GraduateRealtorInstitute", "ResortAndSecondHomePropertySpecialist",
                          "SellerRepresentativeSpecialist", "SeniorsRealEstateSpecialist",
                          "EPro"),
    "MemberStatus": ("Active", "Inactive"),
    "MemberType": ("Assistant", "DesignatedRealtorAppraiser", "DesignatedRealtorParticipant",
                   "LicensedAssistant", "MlsOnlyBroker", "MlsStaff", "OfficeManager",
                   "RealtorAppraiser", "RealtorSalesperson", "UnlicensedAssistant"),
    "Languages": ("Arabic", "Cantonese", "English", "French", "German", "Greek", "Hebrew",
                  "Hindi", "Italian", "Japanese", "Korean", "Mandarin", "Persian", "Polish",
                  "Portuguese", "Russian", "Spanish", "Tagalog", "Vietnamese"),
    "OfficeStatus": ("Active", "Inactive"),
    "OfficeType": ("Affiliate", "Appraiser", "Association", "MLS", "Realtor"),
    "OfficeBranchType": ("Branch", "Main", "StandAlone"),
    "OpenHouseStatus": ("Active", "Canceled", "Ended"),
    "OpenHouseType": ("Broker", "Public"),
    "Attended": ("Agent", "Seller", "Unattended"),
    "MediaCategory": ("BrandedVirtualTour", "Document", "FloorPlan", "Photo",
                      "UnbrandedVirtualTour", "Video"),
    "MediaType": ("doc", "gif", "jpeg", "mov", "mp4", "pdf", "png", "tiff"),
    "ImageSizeDescription": ("Large", "Largest", "Medium", "Small", "Thumbnail"),
    "ResourceName": ("Member", "Office", "OpenHouse", "Property"),
    "SyndicateTo": ("HomesDotCom", "ListHub", "RealtorDotCom", "ZillowTrulia"),
    "RoomLevel": ("Basement", "First", "Lower", "Main", "Second", "Third", "Upper"),
    "X_LandTenure": ("FeeSimple", "Leasehold", "Stratum"),
}
# Members for the remaining enumerations: a prefix of this list, its length taken from
# the enumeration's name (CRC-32, so the same on every run).
GENERIC_MEMBERS = (
    "None", "Other", "SeeRemarks", "Unknown", "Above", "Adjacent", "Attached", "Below",
    "Central", "Community", "Concrete", "Corner", "Detached", "East", "Electric",
    "Existing", "Front", "Full", "Gas", "Gravel", "Interior", "Level", "Metal", "North",
    "Owner", "Partial", "Paved", "Private", "Public", "Rear", "Seller", "Shared", "Side",
    "Solar", "South", "Tenant", "Underground", "West", "Wood", "Yes", "Agricultural",
    "Commercial", "Industrial", "Residential", "Seasonal", "Negotiable", "Included",
    "Excluded", "Available", "Connected", "Required", "Optional", "Leased", "Owned",
    "Rented", "Municipal", "County", "State", "Federal", "Natural",
)
AOR_CITIES = (
    "Albany", "Austin", "Boise", "Charleston", "Denver", "Fresno", "Greenville", "Houston",
    "Knoxville", "Lansing", "Madison", "Naples", "Omaha", "Portland", "Raleigh", "Reno",
    "Salem", "Tampa", "Tucson", "Wichita",
)


def enum_members(name: str) -> tuple[str, ...]:
    if name in KNOWN_MEMBERS:
        return KNOWN_MEMBERS[name]
    if name == "AOR":
        return tuple(f"{city}AssociationofRealtors" for city in AOR_CITIES)
    count = 1 + zlib.crc32(name.encode()) % 40
    return GENERIC_MEMBERS[:count]


def _spaced(name: str) -> str:
    """"AssociationFee2Frequency" -> "Association Fee2 Frequency": a display name."""
    out = []
    for index, char in enumerate(name):
        if index and char.isupper() and not name[index - 1].isupper():
            out.append(" ")
        out.append(char)
    return "".join(out)


# --------------------------------------------------------------------------- XML writing

EDMX_OPEN = '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
EDM_XMLNS = 'xmlns="http://docs.oasis-open.org/odata/ns/edm"'


def _attrs(**values: object) -> str:
    return " ".join(f"{name}={quoteattr(str(value))}" for name, value in values.items()
                    if value is not None)


PLAIN_TYPES = {"text": "Edm.String", "l": "Edm.Int64", "b": "Edm.Boolean", "date": "Edm.Date",
               "geo": "Edm.GeographyPoint", "stream": "Edm.Stream"}


@dataclass(frozen=True)
class Dialect:
    """How one producer writes the same field table."""

    namespace: str
    enum_namespace: str
    multi_as_collection: bool  # RESO DD 2.0; Trestle uses IsFlags enumerations
    int_type: str  # Trestle: Edm.Int32 with Precision; DD 2.0: Edm.Int64 without

    def property_xml(self, field: Field, annotations: list[tuple[str, str]]) -> str:
        code, nullable = field.code.rstrip("!"), "false" if field.code.endswith("!") else None
        facets: dict[str, object] = {}
        if field.enum is not None:
            qualified = f"{self.enum_namespace}.{field.enum}"
            kind = f"Collection({qualified})" if field.is_multi and \
                self.multi_as_collection else qualified
        elif code in PLAIN_TYPES:
            kind = PLAIN_TYPES[code]
        elif code.startswith("s"):
            kind, facets["MaxLength"] = "Edm.String", int(code[1:])
        elif code.startswith("i"):
            kind = self.int_type
            if code[1:] and self.int_type == "Edm.Int32":
                facets["Precision"] = int(code[1:])
        elif code.startswith("d"):
            precision, scale = code[1:].split(".")
            kind, facets["Precision"], facets["Scale"] = "Edm.Decimal", precision, scale
        elif code == "ts":
            kind, facets["Precision"] = "Edm.DateTimeOffset", 27
        else:
            raise AssertionError(f"{field.name}: unknown type code {code!r}")
        head = f"<Property {_attrs(Name=field.name, Type=kind, Nullable=nullable, **facets)}"
        if not annotations:
            return head + " />"
        inner = "".join(f"<Annotation {_attrs(Term=term, String=text)} />"
                        for term, text in annotations)
        return f"{head}>{inner}</Property>"


TRESTLE = Dialect("CoreLogic.DataStandard.RESO.DD", "CoreLogic.DataStandard.RESO.DD.Enums",
                  multi_as_collection=False, int_type="Edm.Int32")
WEB_API = "CoreLogic.DataStandard.RESO.WebAPI_1_0"
RESO_DD = Dialect("org.reso.metadata", "org.reso.metadata.enums",
                  multi_as_collection=True, int_type="Edm.Int64")


def _enums_used(fields: Iterable[Field]) -> dict[str, bool]:
    """Enumeration name -> multi-select, in first-use order."""
    used: dict[str, bool] = {}
    for field in fields:
        if field.enum is not None:
            used[field.enum] = used.get(field.enum, False) or field.is_multi
    return used


def _trestle_entity(name: str, key: str, fields: Iterable[Field],
                    navigations: Iterable[tuple[str, str]] = ()) -> Iterator[str]:
    yield f'      <EntityType Name="{name}">'
    yield f'        <Key><PropertyRef Name="{key}" /></Key>'
    for field in fields:
        custom = field.name.startswith("X_") or field.code == "text"
        notes = [("RESO.OData.Metadata.TrestleName", field.name.removeprefix("X_")),
                 ("RESO.OData.Metadata.StandardName", "")] if custom else []
        yield "        " + TRESTLE.property_xml(field, notes)
    for nav, target in navigations:
        yield (f'        <NavigationProperty Name="{nav}" '
               f'Type="Collection({TRESTLE.namespace}.{target})" />')
    yield "      </EntityType>"


TRESTLE_NAVIGATIONS = (
    ("Media", "Media"), ("OpenHouse", "OpenHouse"),
    *((role, "Member") for role in AGENT_ROLES), *((role, "Office") for role in OFFICE_ROLES),
)


@cache
def trestle_metadata_xml() -> bytes:
    """A Trestle-shaped `$metadata` document (see the module docstring)."""
    entities = {
        "Property": ("ListingKey", trestle_property_fields(), TRESTLE_NAVIGATIONS),
        "Office": ("OfficeKey", tuple(OFFICE_FIELDS), ()),
        "Member": ("MemberKey", tuple(MEMBER_FIELDS), ()),
        "Media": ("MediaKey", tuple(MEDIA_FIELDS), ()),
        "OpenHouse": ("OpenHouseKey", tuple(OPEN_HOUSE_FIELDS), ()),
    }
    lines = [EDMX_OPEN, "  <edmx:DataServices>",
             f'    <Schema Namespace="{TRESTLE.namespace}" {EDM_XMLNS}>']
    for name, (key, fields, navigations) in entities.items():
        lines += _trestle_entity(name, key, fields, navigations)
    lines += [
        f'      <EntityType Name="Realtor" BaseType="{TRESTLE.namespace}.Member">',
        '        <Property Name="TrestleReserved" Type="Edm.String" />',
        "      </EntityType>",
        "    </Schema>",
        f'    <Schema Namespace="{WEB_API}" {EDM_XMLNS}>',
        '      <EntityType Name="DataSystem">',
        '        <Key><PropertyRef Name="ID" /></Key>',
        '        <Property Name="ID" Type="Edm.String" Nullable="false" MaxLength="255" />',
        '        <Property Name="Name" Type="Edm.String" />',
        '        <Property Name="ServiceURI" Type="Edm.String" />',
        '        <Property Name="DateTimeStamp" Type="Edm.DateTimeOffset" Nullable="false"'
        ' Precision="27" />',
        '        <Property Name="TransportVersion" Type="Edm.String" />',
        '        <Property Name="DataDictionaryVersion" Type="Edm.String" />',
        f'        <Property Name="Resources" Type="Collection({WEB_API}.Resource)" />',
        "      </EntityType>",
        '      <EntityType Name="Enumeration">',
        '        <Key><PropertyRef Name="ID" /></Key>',
        '        <Property Name="ID" Type="Edm.String" Nullable="false" MaxLength="255" />',
        *(f'        <Property Name="{n}" Type="Edm.String" />' for n in (
            "EnumerationName", "EnumerationValue", "EnumerationLongValue",
            "ParentEnumerationName", "ParentEnumerationValue")),
        '        <Property Name="ModificationTimestamp" Type="Edm.DateTimeOffset"'
        ' Precision="27" />',
        '        <Property Name="OriginatingSystemName" Type="Edm.String" />',
        "      </EntityType>",
        '      <ComplexType Name="Resource">',
        '        <Property Name="Name" Type="Edm.String" />',
        '        <Property Name="ResourcePath" Type="Edm.String" />',
        '        <Property Name="Description" Type="Edm.String" />',
        '        <Property Name="DateTimeStamp" Type="Edm.DateTimeOffset" Nullable="false" />',
        '        <Property Name="TimeZoneOffset" Type="Edm.Int32" Nullable="false" />',
        f'        <Property Name="Localizations" Type="Collection({WEB_API}.Localization)" />',
        "      </ComplexType>",
        '      <ComplexType Name="Localization">',
        '        <Property Name="Name" Type="Edm.String" />',
        '        <Property Name="ResourcePath" Type="Edm.String" />',
        '        <Property Name="Description" Type="Edm.String" />',
        '        <Property Name="DateTimeStamp" Type="Edm.DateTimeOffset" Nullable="false" />',
        "      </ComplexType>",
        "    </Schema>",
        f'    <Schema Namespace="{TRESTLE.enum_namespace}" {EDM_XMLNS}>',
    ]
    all_fields = [f for _, fields, _ in entities.values() for f in fields]
    for enum, is_flags in _enums_used(all_fields).items():
        flags = ' IsFlags="true"' if is_flags else ""
        lines.append(f'      <EnumType Name="{enum}" UnderlyingType="Edm.Int64"{flags}>')
        for position, member in enumerate(enum_members(enum)):
            value = 1 << position if is_flags else position
            lines += [f'        <Member Name="{member}" Value="{value}">',
                      '          <Annotation Term="RESO.OData.Metadata.TrestleName" '
                      f"String={quoteattr(_spaced(member))} />",
                      "        </Member>"]
        lines.append("      </EnumType>")
    lines += ["    </Schema>",
              f'    <Schema Namespace="Default" {EDM_XMLNS}>',
              '      <EntityContainer Name="Container">',
              f'        <EntitySet Name="Property" EntityType="{TRESTLE.namespace}.Property">']
    lines += [f'          <NavigationPropertyBinding Path="{nav}" Target="{target}" />'
              for nav, target in TRESTLE_NAVIGATIONS]
    lines.append("        </EntitySet>")
    lines += [f'        <EntitySet Name="{name}" EntityType="{TRESTLE.namespace}.{name}" />'
              for name in ("Office", "Member", "Media", "OpenHouse")]
    lines += [
        f'        <EntitySet Name="DataSystem" EntityType="{WEB_API}.DataSystem">',
        '          <Annotation Term="Org.OData.Core.V1.OptimisticConcurrency">',
        "            <Collection><PropertyPath>DateTimeStamp</PropertyPath></Collection>",
        "          </Annotation>",
        "        </EntitySet>",
        f'        <EntitySet Name="Enumeration" EntityType="{WEB_API}.Enumeration" />',
        "      </EntityContainer>", "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- RESO DD 2.0

# name -> (key field, fields, navigations as (name, "Target" or "Collection(Target)")).
# The key field's code comes first; ModificationTimestamp is added to every resource.
_COMMON_TAIL = _fields("OriginatingSystemID s25, OriginatingSystemName s255, "
                       "SourceSystemID s25, SourceSystemName s255")
_HISTORY = ("HistoryTransactional", "Collection(HistoryTransactional)")
_SYSTEMS = (("OriginatingSystem", "OUID"), ("SourceSystem", "OUID"))


def _dd(key: str, table: str, *navigations: tuple[str, str], tail: bool = True
        ) -> tuple[Field, list[Field], tuple[tuple[str, str], ...]]:
    key_name, key_code = key.split()
    fields = _fields(table) + (_COMMON_TAIL if tail else [])
    return Field(key_name, key_code), fields, navigations


DD_RESOURCES: dict[str, tuple[Field, list[Field], tuple[tuple[str, str], ...]]] = {
    "Association": _dd("AssociationKey s255", """
        AssociationAddress1 s50, AssociationAddress2 s50, AssociationCity s50
        AssociationCountry e:Country, AssociationEmail s80, AssociationFax s16
        AssociationMlsId s25, AssociationName s255, AssociationNationalAssociationId s25
        AssociationPhone s16, AssociationPostalCode s10, AssociationStateOrProvince
        e:StateOrProvince, AssociationStatus e, AssociationType e, AssociationWebsite s8000
        OriginalEntryTimestamp ts""", ("AssociationMember", "Member"),
        ("AssociationSocialMedia", "Collection(SocialMedia)"), _HISTORY, *_SYSTEMS),
    "Caravan": _dd("CaravanKey s255", """
        CaravanName s50, CaravanDate date, CaravanStartTime ts, CaravanEndTime ts
        CaravanStatus e, CaravanType m, CaravanRemarks s4000, CaravanLocation s255
        CaravanAreas m, CaravanMaxStops l, OriginalEntryTimestamp ts"""),
    "CaravanStop": _dd("CaravanStopKey s255", """
        CaravanKey s255, ListingKey s255, ListingId s255, StopOrder l, StopStartTime ts
        StopEndTime ts, StopStatus e:CaravanStatus, StopDate date, StopRemarks s1024"""),
    "ContactListingNotes": _dd("ContactKey s255", """
        ListingId s255, ListingKey s255, NoteContents s1024, NotedBy e""",
        ("Contact", "Contacts"), _HISTORY, ("Listing", "Property"), tail=False),
    "ContactListings": _dd("ContactListingsKey s255", """
        AgentNotesUnreadYN b, ClassName e, ContactKey s255, ContactListingPreference e
        ContactLoginId s25, ContactNotesUnreadYN b, DirectEmailYN b, LastAgentNoteTimestamp ts
        LastContactNoteTimestamp ts, ListingId s255, ListingKey s255
        ListingModificationTimestamp ts, ListingSentTimestamp ts, PortalLastVisitedTimestamp ts
        ResourceName e, ListingViewedYN b""",
        ("Contact", "Contacts"), _HISTORY, ("Listing", "Property"),
        ("ListingNotes", "Collection(ContactListingNotes)"), tail=False),
    "Contacts": _dd("ContactKey s255", """
        Anniversary date, AssistantEmail s80, AssistantName s150, AssistantPhone s16
        AssistantPhoneExt s10, Birthdate date, BusinessFax s16, Children s1024
        Company s50, ContactLoginId s25, ContactPassword s25, ContactStatus e
        ContactType m, Department s50, DirectPhone s16, Email s80, Email2 s80, Email3 s80
        FirstName s50, FullName s150, HomeAddress1 s50, HomeAddress2 s50, HomeCarrierRoute s9
        HomeCity s50, HomeCountry e:Country, HomeCountyOrParish s50, HomeFax s16
        HomePhone s16, HomePostalCode s10, HomePostalCodePlus4 s4
        HomeStateOrProvince e:StateOrProvince, JobTitle s50, Language m:Languages
        LastName s50, LeadSource s50, MiddleName s50, MobilePhone s16, NamePrefix s10
        NameSuffix s10, Nickname s50, Notes s1024, OfficePhone s16, OfficePhoneExt s10
        OriginalEntryTimestamp ts, OtherAddress1 s50, OtherCity s50, OtherPostalCode s10
        OtherStateOrProvince e:StateOrProvince, OwnerMemberID s25, OwnerMemberKey s255
        Pager s16, PhoneTTYTDD s16, PreferredAddress e, PreferredPhone e, ReferredBy s150
        SpousePartnerName s150, TollFreePhone s16, VoiceMail s16, VoiceMailExt s10
        WorkAddress1 s50, WorkAddress2 s50, WorkCity s50, WorkPostalCode s10
        WorkStateOrProvince e:StateOrProvince""",
        ("ContactsOtherPhone", "Collection(OtherPhone)"),
        ("ContactsSocialMedia", "Collection(SocialMedia)"), _HISTORY,
        ("Media", "Collection(Media)"), *_SYSTEMS, ("OwnerMember", "Member")),
    "EntityEvent": _dd("EntityEventSequence l", """
        ResourceName s255, ResourceRecordKey s255, ResourceRecordUrl s8000""", tail=False),
    "Field": _dd("FieldKey text", "ResourceName text, FieldName text, DisplayName text",
                 tail=False),
    "HistoryTransactional": _dd("HistoryTransactionalKey s255", """
        ChangeType e, ChangedByMemberID s25, ChangedByMemberKey s255, ClassName s255
        FieldKey s255, FieldName s255, NewValue s1024, OriginatingSystemHistoryKey s255
        PreviousValue s1024, ResourceName s255, ResourceRecordID s255, ResourceRecordKey s255
        SourceSystemHistoryKey s255, FieldKeyNumeric l"""),
    "InternetTracking": _dd("EventKey s255", """
        ActorCity s50, ActorEmail s80, ActorID s255, ActorIP s39, ActorKey s255
        ActorLatitude d12.8, ActorLongitude d12.8, ActorOriginatingSystemID s25
        ActorPhone s16, ActorPhoneExt s10, ActorPostalCode s10, ActorRegion s150
        ActorStateOrProvince e:StateOrProvince, ActorType e, ColorDepth l, DeviceType e
        EventDescription s1024, EventLabel s255, EventOriginatingSystemID s25
        EventTarget s8000, EventTimestamp ts, EventType e, ObjectID s255
        ObjectIdType e, ObjectKey s255, ObjectType e, ObjectURL s8000
        OriginatingSystemActorKey s255, ReferringURL s8000, ScreenHeight l
        ScreenWidth l, SessionID s255, SourceSystemActorKey s255, TimeZoneOffset l
        UserAgent s8000""",
        ("ActorOriginatingSystem", "OUID"), ("ActorSourceSystem", "OUID"),
        ("EventOriginatingSystem", "OUID"), ("EventSourceSystem", "OUID"),
        ("ObjectOriginatingSystem", "OUID"), ("ObjectSourceSystem", "OUID")),
    "InternetTrackingSummary": _dd("ListingId s255", """
        ListingKey s255, SummaryDate date, SummaryType e, ClassName e
        DetailViewsCount l, SearchViewsCount l, PhotoViewsCount l, VideoViewsCount l
        VirtualTourViewsCount l, ShareCount l, FavoriteCount l, DirectionsCount l
        EmailCount l, PrintCount l, ContactCount l, MapViewsCount l
        ShowingRequestCount l, OpenHouseViewsCount l, UniqueVisitorsCount l, LeadCount l
        SummaryStartTimestamp ts, SummaryEndTimestamp ts""", tail=False),
    "LockOrBox": _dd("LockOrBoxKey s255", """
        LockOrBoxID s25, LockOrBoxName s50, LockOrBoxType e, LockOrBoxStatus e
        LockOrBoxMake s50, LockOrBoxModel s50, LockOrBoxSerialNumber s25
        LockOrBoxLocation s255, LockOrBoxDescription s1024, LockOrBoxFeatures m
        ListingKey s255, ListingId s255, ShowingAgentKey s255, ShowingAgentMlsID s25
        ShowingOfficeKey s255, ShowingOfficeMlsID s25, InstallDate date, RemovalDate date
        BatteryLevel d5.2, FirmwareVersion s25, LastAccessTimestamp ts, Latitude d12.8
        Longitude d12.8, OriginalEntryTimestamp ts, PasscodeLength i, AccessNotes s1024
        Comments s1024, OwnerName s150, OwnerPhone s16, OwnerEmail s80
        LockOrBoxOriginatingSystemKey s255, LockOrBoxSourceSystemKey s255""",
        _HISTORY, *_SYSTEMS, ("ShowingAgent", "Member"), ("ShowingOffice", "Office")),
    "Lookup": _dd("LookupKey text", """
        LookupName text, LookupValue text, StandardLookupValue text, LegacyODataValue text
        """, tail=False),
    "Media": _dd("MediaKey s255", """
        ChangedByMemberID s25, ChangedByMemberKey s255, ClassName e, ImageHeight l
        ImageOf e, ImageSizeDescription e, ImageWidth l, LongDescription s1024
        MediaAlteration m, MediaCategory e, MediaHTML s8500, MediaObjectID s255
        MediaStatus e, MediaType e, MediaURL s8000, MediaModificationTimestamp ts
        Order l, OriginatingSystemMediaKey s255, Permission m, PreferredPhotoYN b
        ResourceName e, ResourceRecordID s255, ResourceRecordKey s255
        ShortDescription s50, SourceSystemMediaKey s255, MediaCaption s255
        MediaDisplayOrder l, VideoLengthSeconds l, OriginalEntryTimestamp ts
        MediaWatermarkYN b""",
        ("ChangedByMember", "Member"), _HISTORY, *_SYSTEMS),
    "Member": _dd("MemberKey s255", "\n".join(
        f"{f.name} {f.code.rstrip('!')}," for f in MEMBER_FIELDS
        if f.name not in ("MemberKey", "ModificationTimestamp")
        and not f.name.startswith(("OriginatingSystem", "SourceSystem"))) + """
        MemberSocialMediaType m, MemberAlternateId s25, MemberBirthDate date
        MemberLicenseExpirationDate date, MemberFirstLicensedDate date
        MemberSearchOptOutYN b, MemberProfile s4000, MemberPhotoURL s8000
        MemberWebsiteURL s8000, MemberMarketingName s150, MemberTeamName s50
        MemberSpecialties m""",
        _HISTORY, ("Media", "Collection(Media)"),
        ("MemberOtherPhone", "Collection(OtherPhone)"),
        ("MemberSocialMedia", "Collection(SocialMedia)"), ("Office", "Office"), *_SYSTEMS),
    "MemberAssociation": _dd("AssociationKey s255", """
        AssociationMemberStatus e, AssociationMlsId s25, AssociationName s255
        AssociationNationalAssociationId s25, AssociationPrimaryYN b, AssociationJoinDate date
        AssociationLeaveDate date, AssociationDuesPaidYN b, AssociationDuesPaidDate date
        AssociationBillingYN b, AssociationOrientationDate date, MemberKey s255
        MemberMlsId s25, MemberAssociationType e, OriginalEntryTimestamp ts
        MemberAssociationComments s500, MemberNationalAssociationId s25
        MemberAssociationPreferredYN b""",
        ("Association", "Association"), _HISTORY, ("Member", "Member"), *_SYSTEMS),
    "MemberStateLicense": _dd("MemberStateLicenseKey s255", """
        MemberKey s255, MemberStateLicense s50, MemberStateLicenseExpirationDate date
        MemberStateLicenseState e:StateOrProvince, MemberStateLicenseType e
        MemberStateLicenseStatus s50""", _HISTORY, ("Member", "Member"), tail=False),
    "Office": _dd("OfficeKey s255", "\n".join(
        f"{f.name} {f.code.rstrip('!')}," for f in OFFICE_FIELDS
        if f.name not in ("OfficeKey", "ModificationTimestamp")
        and not f.name.startswith(("OriginatingSystem", "SourceSystem"))) + """
        OfficeSocialMediaType m, OfficeAlternateId s25, OfficeWebsiteURL s8000
        OfficeMarketingName s150, OfficeLogoURL s8000, OfficeHours s255
        OfficeCorporateLicenseState e:StateOrProvince, OfficeBrokerNationalAssociationId s25
        OfficeManagerNationalAssociationId s25, OfficeStartDate date
        OfficeDescription s4000, OfficeServices m, OfficeListingsCount l
        OfficeAgentsCount l, OfficeInternetDisplayYN b, OfficeSearchOptOutYN b
        OfficeRegion s150, OfficeLatitude d12.8, OfficeLongitude d12.8""",
        _HISTORY, ("MainOffice", "Office"), ("Media", "Collection(Media)"),
        ("OfficeBroker", "Member"), ("OfficeManager", "Member"),
        ("OfficeSocialMedia", "Collection(SocialMedia)"), *_SYSTEMS),
    "OfficeAssociation": _dd("AssociationKey s255", """
        AssociationMlsId s25, AssociationName s255, AssociationNationalAssociationId s25
        AssociationPrimaryYN b, OfficeKey s255, OfficeMlsId s25
        OfficeAssociationStatus e, OfficeAssociationJoinDate date
        OfficeAssociationLeaveDate date, OfficeNationalAssociationId s25
        OriginalEntryTimestamp ts""",
        ("Association", "Association"), _HISTORY, ("Office", "Office"), *_SYSTEMS),
    "OfficeCorporateLicense": _dd("OfficeCorporateLicenseKey s255", """
        OfficeKey s255, OfficeCorporateLicense s50, OfficeCorporateLicenseExpirationDate date
        OfficeCorporateLicenseState e:StateOrProvince, OfficeCorporateLicenseType e
        OfficeCorporateLicenseStatus s50""", _HISTORY, ("Office", "Office"), tail=False),
    "OpenHouse": _dd("OpenHouseKey s255", """
        AppointmentRequiredYN b, ListingId s255, ListingKey s255, OpenHouseAttendedBy
        e:Attended, OpenHouseDate date, OpenHouseEndTime ts, OpenHouseId s255
        OpenHouseRemarks s500, OpenHouseStartTime ts, OpenHouseStatus e, OpenHouseType e
        OriginalEntryTimestamp ts, OriginatingSystemKey s255, Refreshments s255
        ShowingAgentFirstName s50, ShowingAgentKey s255, ShowingAgentLastName s50
        ShowingAgentMlsID s25, SourceSystemKey s255, OpenHouseMethod e
        LivestreamOpenHouseURL s8000"""),
    "OtherPhone": _dd("OtherPhoneKey s255", """
        ClassName e, OtherPhoneExt s10, OtherPhoneNumber s16, OtherPhoneType e
        ResourceName e, ResourceRecordID s255, ResourceRecordKey s255""",
        _HISTORY, tail=False),
    "OUID": _dd("OrganizationUniqueIdKey s255", """
        ChangedByMemberID s25, ChangedByMemberKey s255, OrganizationAddress1 s50
        OrganizationAddress2 s50, OrganizationAOR e:AOR, OrganizationCarrierRoute s9
        OrganizationCity s50, OrganizationComments s1024, OrganizationContactEmail s80
        OrganizationContactFax s16, OrganizationContactFirstName s50
        OrganizationContactFullName s150, OrganizationContactJobTitle s50
        OrganizationContactLastName s50, OrganizationContactMiddleName s50
        OrganizationContactNamePrefix s10, OrganizationContactNameSuffix s10
        OrganizationContactPhone s16, OrganizationContactPhoneExt s10
        OrganizationCountry e:Country, OrganizationCountyOrParish s50, OrganizationMemberCount l
        OrganizationMlsCode s25, OrganizationMlsVendorName s255, OrganizationMlsVendorOuid s25
        OrganizationName s255, OrganizationNationalAssociationId s25
        OrganizationPostalCode s10, OrganizationPostalCodePlus4 s4
        OrganizationSocialMediaType m, OrganizationStateLicense s50
        OrganizationStateLicenseState e:StateOrProvince
        OrganizationStateOrProvince e:StateOrProvince, OrganizationStatus b
        OrganizationStatusChangeTimestamp ts, OrganizationType e
        OrganizationUniqueId s25, OriginalEntryTimestamp ts""",
        ("ChangedByMember", "Member"), _HISTORY, ("Media", "Collection(Media)"),
        ("OrganizationSocialMedia", "Collection(SocialMedia)"), tail=False),
    "PropertyPowerStorage": _dd("PowerStorageKey s255", """
        ListingKey s255, PowerStorageCapacity d14.2, PowerStorageInstallDate date
        PowerStorageType e""", tail=False),
    "PropertyGreenVerification": _dd("GreenBuildingVerificationKey s255", """
        GreenBuildingVerificationType e, GreenVerificationBody s50, GreenVerificationMetric l
        GreenVerificationRating s50, GreenVerificationSource e, GreenVerificationStatus e
        GreenVerificationURL s8000, GreenVerificationVersion s25, GreenVerificationYear l
        ListingId s255, ListingKey s255""", _HISTORY, ("Listing", "Property"), tail=False),
    "PropertyPowerProduction": _dd("PowerProductionKey s255", """
        ListingId s255, ListingKey s255, PowerProductionAnnual l
        PowerProductionAnnualStatus e, PowerProductionSize d14.2, PowerProductionType e
        PowerProductionYearInstall l, PowerProductionSource e""",
        _HISTORY, ("Listing", "Property"), tail=False),
    "PropertyRooms": _dd("RoomKey s255", """
        ListingId s255, ListingKey s255, RoomArea d14.2, RoomAreaSource e:AreaSource
        RoomAreaUnits e:AreaUnits, RoomDescription s1024, RoomDimensions s50
        RoomFeatures m, RoomLength d14.2, RoomLengthWidthUnits e:LinearUnits
        RoomLevel e, RoomType e, RoomWidth d14.2, RoomLengthWidthSource e:AreaSource""",
        _HISTORY, ("Listing", "Property"), tail=False),
    "PropertyUnitTypes": _dd("UnitTypeKey s255", """
        ListingId s255, ListingKey s255, UnitTypeActualRent d14.2, UnitTypeBathsTotal l
        UnitTypeBedsTotal l, UnitTypeDescription s1024, UnitTypeFurnished e:Furnished
        UnitTypeGarageAttachedYN b, UnitTypeGarageSpaces d14.2, UnitTypeProForma d14.2
        UnitTypeTotalRent l, UnitTypeType e, UnitTypeUnitsTotal l""",
        _HISTORY, ("Listing", "Property"), tail=False),
    "Prospecting": _dd("ProspectingKey s255", """
        ActiveYN b, BccEmailList s1024, BccMeYN b, CcEmailList s1024, ClientActivatedYN b
        ConciergeNotificationsYN b, ConciergeYN b, ContactKey s255, DailySchedule m
        DisplayTemplateID s25, Language e:Languages, LastNewChangedTimestamp ts
        LastViewedTimestamp ts, MessageNew s4000, MessageRevise s4000
        MessageUpdate s4000, NextSendTimestamp ts, OwnerMemberID s25
        OwnerMemberKey s255, ReasonActiveOrDisabled e, SavedSearchKey s255
        ScheduleType e, Subject s255, ToEmailList s1024""", tail=False),
    "Queue": _dd("QueueTransactionKey s255", """
        ClassName e, QueueTransactionType e, ResourceName e, ResourceRecordID s255
        ResourceRecordKey s255, OriginatingSystemQueueKey s255, SourceSystemQueueKey s255
        QueueComments s1024""", tail=True),
    "Rules": _dd("RuleKey s255", """
        ClassName e, FieldKey s255, FieldName s255, OriginalEntryTimestamp ts
        OriginatingSystemRuleKey s255, ResourceName e, RuleAction e, RuleDescription s1024
        RuleEnabledYN b, RuleErrorText s1024, RuleExpression s8000, RuleFormat e
        RuleHelpText s1024, RuleName s255, RuleOrder l, RuleType e, RuleVersion s25
        RuleWarningText s1024, SourceSystemRuleKey s255""", _HISTORY, *_SYSTEMS),
    "SavedSearch": _dd("SavedSearchKey s255", """
        ClassName e, MemberKey s255, MemberMlsId s25, OriginalEntryTimestamp ts
        OriginatingSystemKey s255, OriginatingSystemMemberKey s255
        OriginatingSystemMemberName s255, ResourceName e, SavedSearchDescription s1024
        SavedSearchName s255, SavedSearchType e, SearchQuery s8000
        SearchQueryExceptionDetails s1024, SearchQueryExceptions m, SearchQueryHumanReadable
        s8000, SearchQueryType e, SourceSystemKey s255""",
        _HISTORY, ("Member", "Member"), *_SYSTEMS),
    "Showing": _dd("ShowingKey s255", """
        AgentOriginatingSystemID s25, AgentOriginatingSystemName s255, AgentSourceSystemID s25
        AgentSourceSystemName s255, ListingId s255, ListingKey s255
        ListingOriginatingSystemID s25, ListingOriginatingSystemName s255
        ListingSourceSystemID s25, ListingSourceSystemName s255, OriginalEntryTimestamp ts
        ShowingAgentKey s255, ShowingAgentMlsID s25, ShowingEndTimestamp ts, ShowingId s255
        ShowingOriginatingSystemID s25, ShowingOriginatingSystemName s255
        ShowingRequestedTimestamp ts, ShowingSourceSystemID s25, ShowingSourceSystemName s255
        ShowingStartTimestamp ts, ShowingStatus e, ShowingFeedbackYN b
        ShowingFeedback s4000, ShowingMethod e, ShowingInstructions s1024""",
        ("AgentOriginatingSystem", "OUID"), ("AgentSourceSystem", "OUID"), _HISTORY,
        ("Listing", "Property"), ("ListingOriginatingSystem", "OUID"),
        ("ListingSourceSystem", "OUID"), ("Media", "Collection(Media)"),
        ("ShowingAgent", "Member"), ("ShowingOriginatingSystem", "OUID"),
        ("ShowingSourceSystem", "OUID"), ("SocialMedia", "Collection(SocialMedia)"),
        tail=False),
    "ShowingAppointment": _dd("ShowingAppointmentKey s255", """
        ListingKey s255, ShowingAgentKey s255, ShowingAppointmentDate date
        ShowingAppointmentStartTimestamp ts, ShowingAppointmentEndTimestamp ts
        ShowingAppointmentMethod m, ShowingAppointmentStatus e
        ShowingAppointmentRemarks s1024, OriginalEntryTimestamp ts""", tail=False),
    "ShowingAvailability": _dd("ShowingAvailabilityKey s255", """
        ListingKey s255, ShowingAvailabilityDate date, ShowingAvailabilityStartTimestamp ts
        ShowingAvailabilityEndTimestamp ts, ShowingAvailabilityMethod m
        ShowingAvailabilityRemarks s1024, ShowingAvailabilityType s50
        OriginalEntryTimestamp ts, ShowingAvailabilityTimeZone s50""", tail=False),
    "ShowingRequest": _dd("ShowingRequestKey s255", """
        ListingKey s255, ShowingAgentKey s255, ShowingRequestDate date
        ShowingRequestAlternateDate date, ShowingRequestStartTimestamp ts
        ShowingRequestEndTimestamp ts, ShowingRequestMethod m, ShowingRequestStatus m
        ShowingRequestType m, ShowingRequestRemarks s1024, ShowingRequestorName s150
        ShowingRequestorPhone s16, ShowingRequestorEmail s80
        OriginalEntryTimestamp ts, ShowingRequestedTimestamp ts""", tail=False),
    "SocialMedia": _dd("SocialMediaKey s255", """
        ClassName e, ResourceName e, ResourceRecordID s255, ResourceRecordKey s255
        SocialMediaType e, SocialMediaUrlOrId s8000""", _HISTORY, tail=False),
    "TeamMembers": _dd("TeamMemberKey s255", """
        MemberKey s255, MemberLoginId s25, MemberMlsId s25, OriginalEntryTimestamp ts
        OriginatingSystemKey s255, SourceSystemKey s255, TeamImpersonationLevel e
        TeamKey s255, TeamMemberNationalAssociationId s25, TeamMemberStateLicense s50
        TeamMemberType e""", _HISTORY, ("Member", "Member"), *_SYSTEMS, tail=False),
    "Teams": _dd("TeamKey s255", """
        OriginalEntryTimestamp ts, OriginatingSystemKey s255, SourceSystemKey s255
        TeamAddress1 s50, TeamAddress2 s50, TeamCarrierRoute s9, TeamCity s50
        TeamCountry e:Country, TeamCountyOrParish s50, TeamDescription s1024
        TeamDirectPhone s16, TeamEmail s80, TeamFax s16, TeamLeadKey s255
        TeamLeadLoginId s25, TeamLeadMlsId s25, TeamLeadNationalAssociationId s25
        TeamLeadStateLicense s50, TeamLeadStateLicenseState e:StateOrProvince
        TeamMobilePhone s16, TeamName s50, TeamOfficePhone s16, TeamOfficePhoneExt s10
        TeamPostalCode s10, TeamPostalCodePlus4 s4, TeamPreferredPhone s16
        TeamPreferredPhoneExt s10, TeamStateOrProvince e:StateOrProvince, TeamStatus e
        TeamTollFreePhone s16, TeamVoiceMail s16, TeamVoiceMailExt s10
        TeamSocialMediaType m""",
        _HISTORY, ("Media", "Collection(Media)"), *_SYSTEMS, ("TeamLead", "Member"),
        ("TeamsSocialMedia", "Collection(SocialMedia)")),
    "TransactionManagement": _dd("TransactionKey s255", """
        TransactionStatus e, TransactionName s255""", tail=False),
}
DD_PROPERTY_NAVIGATIONS = (
    ("BuyerAgent", "Member"), ("BuyerOffice", "Office"), ("BuyerTeam", "Teams"),
    ("CoBuyerAgent", "Member"), ("CoBuyerOffice", "Office"), ("CoListAgent", "Member"),
    ("CoListOffice", "Office"),
    ("GreenBuildingVerification", "Collection(PropertyGreenVerification)"), _HISTORY,
    ("ListAgent", "Member"), ("ListOffice", "Office"), ("ListTeam", "Teams"),
    ("Media", "Collection(Media)"), ("OpenHouse", "Collection(OpenHouse)"),
    ("OriginatingSystem", "OUID"),
    ("PowerProduction", "Collection(PropertyPowerProduction)"),
    ("Rooms", "Collection(PropertyRooms)"), ("SocialMedia", "Collection(SocialMedia)"),
    ("SourceSystem", "OUID"), ("UnitTypes", "Collection(PropertyUnitTypes)"),
)


def _dd_annotations(name: str, display: str) -> list[tuple[str, str]]:
    return [("RESO.OData.Metadata.StandardName", display),
            ("RESO.DDWikiUrl", f"https://ddwiki.reso.org/display/DDW20/{name}+Field"),
            ("Core.Description", f"The {display.lower()} of the record.")]


def _dd_entity(name: str, key: Field, fields: Iterable[Field],
               navigations: Iterable[tuple[str, str]]) -> Iterator[str]:
    yield f'<EntityType Name="{name}"><Key><PropertyRef Name="{key.name}" /></Key>'
    for field in fields:
        yield RESO_DD.property_xml(field, _dd_annotations(field.name, _spaced(field.name)))
    for nav, target in navigations:
        if target.startswith("Collection("):
            kind = f"Collection({RESO_DD.namespace}.{target[len('Collection('):-1]})"
        else:
            kind = f"{RESO_DD.namespace}.{target}"
        notes = "".join(f"<Annotation {_attrs(Term=t, String=s)} />"
                        for t, s in _dd_annotations(nav, _spaced(nav)))
        yield f"<NavigationProperty {_attrs(Name=nav, Type=kind)}>{notes}</NavigationProperty>"
    yield "</EntityType>"


@cache
def dd_resources() -> dict[str, tuple[Field, tuple[Field, ...], tuple[tuple[str, str], ...]]]:
    """Every DD resource in document order: key field, all fields (key included), navs."""
    version = Field("ModificationTimestamp", "ts")
    out: dict[str, tuple[Field, tuple[Field, ...], tuple[tuple[str, str], ...]]] = {
        "Property": (Field("ListingKey", "s255"), reso_dd_property_fields(),
                     DD_PROPERTY_NAVIGATIONS),
    }
    for name, (key, fields, navigations) in DD_RESOURCES.items():
        named = {f.name for f in fields}
        listed = [key, *fields] if key.name not in named else list(fields)
        if version.name not in named:
            listed.append(version)
        out[name] = (key, tuple(_sorted(listed)), navigations)
    if len(out) != RESO_DD_RESOURCE_COUNT:
        raise AssertionError(f"{len(out)} DD resources")
    return out


@cache
def reso_dd_metadata_xml() -> bytes:
    """A RESO DD 2.0-shaped `$metadata` document (see the module docstring)."""
    resources = dd_resources()
    parts = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
             "<!-- Generated by tests/wide_metadata.py in the shape of RESO DD 2.0 -->",
             '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
             f'<edmx:DataServices><Schema {EDM_XMLNS} Namespace="{RESO_DD.namespace}">']
    for name, (key, fields, navigations) in resources.items():
        parts += _dd_entity(name, key, fields, navigations)
    parts.append('<EntityContainer Name="Default">')
    parts += [f'<EntitySet Name="{name}" EntityType="{RESO_DD.namespace}.{name}" />'
              for name in resources]
    parts.append(f'</EntityContainer></Schema><Schema {EDM_XMLNS} '
                 f'Namespace="{RESO_DD.enum_namespace}">')
    all_fields = [f for _, fields, _ in resources.values() for f in fields]
    for enum in _enums_used(all_fields):
        parts.append(f'<EnumType Name="{enum}">')
        for member in enum_members(enum):
            display = _spaced(member)
            parts.append(f'<Member Name="{member}"><Annotation '
                         f'{_attrs(Term="RESO.OData.Metadata.StandardName", String=display)} />'
                         "</Member>")
        parts.append("</EnumType>")
    parts.append("</Schema></edmx:DataServices></edmx:Edmx>")
    return "".join(parts).encode("utf-8")


def write_metadata_files(directory: Path) -> tuple[Path, Path]:
    """Both documents written under `directory`: (Trestle-like path, RESO DD-like path)."""
    directory.mkdir(parents=True, exist_ok=True)
    trestle = directory / TRESTLE_FILE_NAME
    reso_dd = directory / RESO_DD_FILE_NAME
    trestle.write_bytes(trestle_metadata_xml())
    reso_dd.write_bytes(reso_dd_metadata_xml())
    return trestle, reso_dd
