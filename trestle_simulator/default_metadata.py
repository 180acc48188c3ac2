"""The project's own $metadata: a realistic RESO subset written as field tables.

It is shaped like Trestle's document (same namespaces, enum types in a `...Enums` schema,
multi-selects as IsFlags enums, timestamps with Precision 27, Media and OpenHouse as
navigation properties of Property) but is our own text, small enough to read, with the
fields the pipeline treats specially and a spread of every type it must store.
"""

from __future__ import annotations

from functools import cache
from xml.sax.saxutils import quoteattr

NAMESPACE = "CoreLogic.DataStandard.RESO.DD"
ENUM_NAMESPACE = f"{NAMESPACE}.Enums"

# name -> (is_flags, members). Member names are RESO's (no spaces), as Trestle sends them.
ENUMS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "StandardStatus": (
        False,
        (
            "Active",
            "ActiveUnderContract",
            "Canceled",
            "Closed",
            "ComingSoon",
            "Delete",
            "Expired",
            "Hold",
            "Incomplete",
            "Pending",
            "Withdrawn",
        ),
    ),
    "PropertyType": (
        False,
        (
            "BusinessOpportunity",
            "CommercialLease",
            "CommercialSale",
            "Farm",
            "Land",
            "ManufacturedInPark",
            "Residential",
            "ResidentialIncome",
            "ResidentialLease",
        ),
    ),
    "PropertySubType": (
        False,
        (
            "Apartment",
            "Cabin",
            "Condominium",
            "Duplex",
            "FarmRanch",
            "ManufacturedHome",
            "MobileHome",
            "MultiFamily",
            "SingleFamilyResidence",
            "Townhouse",
            "UnimprovedLand",
        ),
    ),
    "StateOrProvince": (
        False,
        (
            "AZ",
            "CA",
            "CO",
            "FL",
            "GA",
            "IL",
            "MA",
            "NC",
            "NY",
            "OR",
            "TX",
            "WA",
        ),
    ),
    "Country": (False, ("CA", "MX", "US")),
    "AreaUnits": (False, ("SquareFeet", "SquareMeters")),
    "AreaSource": (
        False,
        (
            "Appraiser",
            "Assessor",
            "Builder",
            "Estimated",
            "Measured",
            "Owner",
            "Plans",
            "PublicRecords",
        ),
    ),
    "FeeFrequency": (False, ("Annually", "Monthly", "Quarterly", "SemiAnnually", "Weekly")),
    "Appliances": (
        True,
        (
            "BarFridge",
            "BuiltInRange",
            "ConvectionOven",
            "Cooktop",
            "Dishwasher",
            "Disposal",
            "Dryer",
            "ElectricRange",
            "Freezer",
            "GasCooktop",
            "GasWaterHeater",
            "Microwave",
            "Oven",
            "RangeHood",
            "Refrigerator",
            "StainlessSteelAppliances",
            "TanklessWaterHeater",
            "Washer",
            "WaterSoftener",
            "WineRefrigerator",
        ),
    ),
    "InteriorFeatures": (
        True,
        (
            "BeamedCeilings",
            "BuiltinFeatures",
            "CathedralCeilings",
            "CeilingFans",
            "CrownMolding",
            "DoubleVanity",
            "EatInKitchen",
            "GraniteCounters",
            "HighCeilings",
            "KitchenIsland",
            "OpenFloorplan",
            "PantryCloset",
            "SoakingTub",
            "WalkInClosets",
            "WetBar",
        ),
    ),
    "ExteriorFeatures": (
        True,
        (
            "Balcony",
            "BuiltInBarbecue",
            "FirePit",
            "Garden",
            "Lighting",
            "OutdoorKitchen",
            "PrivateYard",
            "RainGutters",
            "Storage",
        ),
    ),
    "Heating": (
        True,
        (
            "Baseboard",
            "Central",
            "Electric",
            "ForcedAir",
            "Gas",
            "HeatPump",
            "Radiant",
            "Solar",
            "WoodStove",
        ),
    ),
    "Cooling": (
        True,
        (
            "AtticFan",
            "CeilingFans",
            "CentralAir",
            "Electric",
            "HeatPump",
            "MultiUnits",
            "WallUnits",
            "Zoned",
        ),
    ),
    "Flooring": (
        True,
        ("Bamboo", "Carpet", "Concrete", "Hardwood", "Laminate", "Marble", "Tile", "Vinyl", "Wood"),
    ),
    "ParkingFeatures": (
        True,
        (
            "Attached",
            "Carport",
            "Covered",
            "Driveway",
            "Garage",
            "GarageDoorOpener",
            "OnStreet",
            "Oversized",
            "RvAccess",
        ),
    ),
    "PoolFeatures": (
        True,
        ("Heated", "InGround", "Indoor", "Infinity", "SaltWater", "Community", "Fenced"),
    ),
    "Utilities": (
        True,
        (
            "CableAvailable",
            "ElectricityConnected",
            "NaturalGasConnected",
            "PhoneAvailable",
            "SewerConnected",
            "UndergroundUtilities",
            "WaterConnected",
        ),
    ),
    "View": (
        True,
        (
            "Bay",
            "City",
            "Canyon",
            "Creek",
            "Golf",
            "Lake",
            "Mountains",
            "Ocean",
            "Panoramic",
            "Park",
            "River",
            "TreesWoods",
        ),
    ),
    "ArchitecturalStyle": (
        True,
        (
            "Bungalow",
            "CapeCod",
            "Colonial",
            "Contemporary",
            "Craftsman",
            "Mediterranean",
            "MidCenturyModern",
            "Ranch",
            "SpanishMission",
            "Traditional",
            "Victorian",
        ),
    ),
    "Roof": (True, ("Asphalt", "Composition", "Metal", "Shingle", "Slate", "Tile", "Wood")),
    "Sewer": (True, ("PublicSewer", "SepticTank", "Cesspool", "Other")),
    "WaterSource": (True, ("Public", "PrivateUtility", "Well", "SharedWell", "Cistern")),
    "LotFeatures": (
        True,
        (
            "CornerLot",
            "CulDeSac",
            "Landscaped",
            "Level",
            "SlopedDown",
            "SprinklersAutomatic",
            "Wooded",
        ),
    ),
    "CommunityFeatures": (
        True,
        (
            "Clubhouse",
            "FitnessCenter",
            "Golf",
            "Park",
            "Playground",
            "Pool",
            "Sidewalks",
            "StreetLights",
            "TennisCourts",
        ),
    ),
    "SecurityFeatures": (
        True,
        ("CarbonMonoxideDetectors", "GatedCommunity", "SecuritySystem", "SmokeDetectors"),
    ),
    "LaundryFeatures": (
        True,
        ("GasDryerHookup", "InGarage", "InsideRoom", "LaundryCloset", "UpperLevel", "WasherHookup"),
    ),
    "ConstructionMaterials": (
        True,
        (
            "Block",
            "Brick",
            "Concrete",
            "FiberCement",
            "Frame",
            "Stone",
            "Stucco",
            "Vinyl",
            "WoodSiding",
        ),
    ),
    "SpecialListingConditions": (
        True,
        ("Auction", "BankOwned", "HudOwned", "Probate", "ShortSale", "Standard", "Trust"),
    ),
    "ListingTerms": (
        True,
        ("Cash", "Conventional", "FHA", "LeaseOption", "OwnerWillCarry", "USDALoan", "VaLoan"),
    ),
    "MemberStatus": (False, ("Active", "Inactive")),
    "MemberType": (
        False,
        ("Assistant", "DesignatedBroker", "MlsStaff", "OfficeManager", "Realtor", "NonMember"),
    ),
    "MemberDesignation": (
        True,
        (
            "AccreditedBuyersRepresentative",
            "CertifiedResidentialSpecialist",
            "GraduateRealtorInstitute",
            "SellerRepresentativeSpecialist",
            "SeniorsRealEstateSpecialist",
        ),
    ),
    "Languages": (
        True,
        ("Chinese", "English", "French", "German", "Korean", "Portuguese", "Spanish", "Vietnamese"),
    ),
    "OfficeStatus": (False, ("Active", "Inactive")),
    "OfficeType": (False, ("Affiliate", "Appraiser", "MLS", "Realtor")),
    "MediaCategory": (
        False,
        ("BrandedVirtualTour", "Document", "FloorPlan", "Photo", "UnbrandedVirtualTour", "Video"),
    ),
    "MediaType": (False, ("doc", "gif", "jpeg", "mov", "mp4", "pdf", "png", "tiff")),
    "ImageSizeDescription": (False, ("Large", "Largest", "Medium", "Small", "Thumbnail")),
    "ResourceName": (False, ("Member", "Office", "OpenHouse", "Property")),
    "OpenHouseStatus": (False, ("Active", "Canceled", "Ended")),
    "OpenHouseType": (False, ("Broker", "Public")),
}

# (name, type, facets). Types without a dot are enum names in ENUM_NAMESPACE.
Field = tuple[str, str, dict[str, int | bool]]


def _s(name: str, max_length: int) -> Field:
    return (name, "Edm.String", {"MaxLength": max_length})


def _dec(name: str, precision: int, scale: int) -> Field:
    return (name, "Edm.Decimal", {"Precision": precision, "Scale": scale})


def _i32(name: str, precision: int) -> Field:
    return (name, "Edm.Int32", {"Precision": precision})


def _ts(name: str) -> Field:
    return (name, "Edm.DateTimeOffset", {"Precision": 27})


def _b(name: str) -> Field:
    return (name, "Edm.Boolean", {})


def _d(name: str) -> Field:
    return (name, "Edm.Date", {})


def _e(name: str, enum: str | None = None) -> Field:
    return (name, enum or name, {})


def _key(name: str) -> Field:
    return (name, "Edm.String", {"MaxLength": 255, "Nullable": False})


PROPERTY_FIELDS: tuple[Field, ...] = (
    _key("ListingKey"),
    ("ListingKeyNumeric", "Edm.Int64", {"Precision": 19}),
    _s("ListingId", 255),
    _s("OriginatingSystemName", 255),
    _s("OriginatingSystemKey", 255),
    _s("SourceSystemName", 255),
    _e("StandardStatus"),
    _s("MlsStatus", 50),
    _e("PropertyType"),
    _e("PropertySubType"),
    _d("ListingContractDate"),
    _d("OnMarketDate"),
    _d("CloseDate"),
    _d("ExpirationDate"),
    _i32("DaysOnMarket", 4),
    _i32("CumulativeDaysOnMarket", 4),
    _dec("ListPrice", 14, 2),
    _dec("OriginalListPrice", 14, 2),
    _dec("PreviousListPrice", 14, 2),
    _dec("ClosePrice", 14, 2),
    _dec("TaxAnnualAmount", 14, 2),
    _i32("TaxYear", 4),
    ("TaxAssessedValue", "Edm.Int64", {"Precision": 19}),
    _s("ParcelNumber", 50),
    _b("AssociationYN"),
    _dec("AssociationFee", 14, 2),
    _e("AssociationFeeFrequency", "FeeFrequency"),
    _s("AssociationName", 50),
    _s("BuyerAgencyCompensation", 25),
    _s("UnparsedAddress", 255),
    _s("StreetNumber", 25),
    _s("StreetDirPrefix", 2),
    _s("StreetName", 50),
    _s("StreetSuffix", 25),
    _s("UnitNumber", 25),
    _s("City", 50),
    _e("StateOrProvince"),
    _s("PostalCode", 10),
    _s("PostalCodePlus4", 4),
    _s("CountyOrParish", 50),
    _e("Country"),
    _dec("Latitude", 12, 8),
    _dec("Longitude", 12, 8),
    ("Coordinates", "Edm.GeographyPoint", {}),
    _s("SubdivisionName", 50),
    _s("ElementarySchool", 50),
    _s("MiddleOrJuniorSchool", 50),
    _s("HighSchool", 50),
    _s("HighSchoolDistrict", 50),
    _s("Zoning", 25),
    _i32("BedroomsTotal", 3),
    _i32("BathroomsTotalInteger", 3),
    _i32("BathroomsFull", 3),
    _i32("BathroomsHalf", 3),
    _dec("LivingArea", 14, 2),
    _e("LivingAreaUnits", "AreaUnits"),
    _e("LivingAreaSource", "AreaSource"),
    _dec("LotSizeAcres", 16, 4),
    _dec("LotSizeSquareFeet", 14, 2),
    _i32("YearBuilt", 4),
    _i32("Stories", 3),
    _dec("GarageSpaces", 14, 2),
    _b("GarageYN"),
    _dec("ParkingTotal", 14, 2),
    _b("FireplaceYN"),
    _i32("FireplacesTotal", 3),
    _b("PoolPrivateYN"),
    _b("NewConstructionYN"),
    _b("SeniorCommunityYN"),
    _b("WaterfrontYN"),
    _b("ViewYN"),
    _b("InternetEntireListingDisplayYN"),
    _b("InternetAddressDisplayYN"),
    _b("IDXParticipationYN"),
    _e("Appliances"),
    _e("InteriorFeatures"),
    _e("ExteriorFeatures"),
    _e("Heating"),
    _e("Cooling"),
    _e("Flooring"),
    _e("ParkingFeatures"),
    _e("PoolFeatures"),
    _e("Utilities"),
    _e("View"),
    _e("ArchitecturalStyle"),
    _e("Roof"),
    _e("Sewer"),
    _e("WaterSource"),
    _e("LotFeatures"),
    _e("CommunityFeatures"),
    _e("SecurityFeatures"),
    _e("LaundryFeatures"),
    _e("ConstructionMaterials"),
    _e("SpecialListingConditions"),
    _e("ListingTerms"),
    _s("PublicRemarks", 4000),
    _s("SyndicationRemarks", 4000),
    _s("PrivateRemarks", 4000),
    _s("Directions", 1024),
    _s("ShowingInstructions", 1024),
    _s("ShowingContactPhone", 16),
    _s("OwnerName", 50),
    _s("VirtualTourURLUnbranded", 8000),
    _s("ListAgentKey", 255),
    _s("ListAgentMlsId", 25),
    _s("ListAgentFullName", 150),
    _s("ListAgentEmail", 80),
    _s("ListAgentDirectPhone", 16),
    _s("ListOfficeKey", 255),
    _s("ListOfficeMlsId", 25),
    _s("ListOfficeName", 255),
    _s("ListOfficePhone", 16),
    _s("CoListAgentKey", 255),
    _s("BuyerAgentKey", 255),
    _s("BuyerOfficeKey", 255),
    _i32("PhotosCount", 4),
    _ts("PhotosChangeTimestamp"),
    _ts("PriceChangeTimestamp"),
    _ts("StatusChangeTimestamp"),
    _ts("MajorChangeTimestamp"),
    _ts("OriginalEntryTimestamp"),
    _ts("ModificationTimestamp"),
)

MEMBER_FIELDS: tuple[Field, ...] = (
    _key("MemberKey"),
    _s("MemberMlsId", 25),
    _s("MemberFirstName", 50),
    _s("MemberLastName", 50),
    _s("MemberFullName", 150),
    _s("MemberNickname", 50),
    _s("MemberEmail", 80),
    _s("MemberDirectPhone", 16),
    _s("MemberMobilePhone", 16),
    _e("MemberStatus"),
    _e("MemberType"),
    _e("MemberDesignation"),
    _e("MemberLanguages", "Languages"),
    _s("MemberStateLicense", 50),
    _e("MemberStateLicenseState", "StateOrProvince"),
    _s("MemberCity", 50),
    _e("MemberStateOrProvince", "StateOrProvince"),
    _s("MemberPostalCode", 10),
    _s("JobTitle", 50),
    _s("OfficeKey", 255),
    _s("OfficeMlsId", 25),
    _s("OfficeName", 255),
    _s("OriginatingSystemName", 255),
    _ts("OriginalEntryTimestamp"),
    _ts("ModificationTimestamp"),
)

OFFICE_FIELDS: tuple[Field, ...] = (
    _key("OfficeKey"),
    _s("OfficeMlsId", 25),
    _s("OfficeName", 255),
    _s("OfficePhone", 16),
    _s("OfficeEmail", 80),
    _s("OfficeAddress1", 50),
    _s("OfficeCity", 50),
    _e("OfficeStateOrProvince", "StateOrProvince"),
    _s("OfficePostalCode", 10),
    _e("OfficeStatus"),
    _e("OfficeType"),
    _s("OfficeBrokerKey", 255),
    _s("FranchiseAffiliation", 50),
    _b("IDXOfficeParticipationYN"),
    _s("OriginatingSystemName", 255),
    _ts("OriginalEntryTimestamp"),
    _ts("ModificationTimestamp"),
)

MEDIA_FIELDS: tuple[Field, ...] = (
    _key("MediaKey"),
    _s("ResourceRecordKey", 255),
    _s("ResourceRecordID", 255),
    _e("ResourceName"),
    _s("MediaObjectID", 255),
    _s("MediaURL", 8000),
    _e("MediaCategory"),
    _e("MediaType"),
    _i32("Order", 4),
    _s("ShortDescription", 50),
    _s("LongDescription", 1024),
    _i32("ImageWidth", 8),
    _i32("ImageHeight", 8),
    _e("ImageSizeDescription"),
    _b("PreferredPhotoYN"),
    _s("OriginatingSystemName", 255),
    _ts("MediaModificationTimestamp"),
    _ts("ModificationTimestamp"),
)

OPEN_HOUSE_FIELDS: tuple[Field, ...] = (
    _key("OpenHouseKey"),
    _s("OpenHouseId", 255),
    _s("ListingKey", 255),
    _s("ListingId", 255),
    _d("OpenHouseDate"),
    _ts("OpenHouseStartTime"),
    _ts("OpenHouseEndTime"),
    _e("OpenHouseStatus"),
    _e("OpenHouseType"),
    _s("OpenHouseRemarks", 500),
    _s("Refreshments", 255),
    _s("ShowingAgentKey", 255),
    _s("ShowingAgentFirstName", 50),
    _s("ShowingAgentLastName", 50),
    _b("AppointmentRequiredYN"),
    _s("OriginatingSystemName", 255),
    _ts("OriginalEntryTimestamp"),
    _ts("ModificationTimestamp"),
)

ENTITIES: dict[str, tuple[str, tuple[Field, ...]]] = {
    "Property": ("ListingKey", PROPERTY_FIELDS),
    "Member": ("MemberKey", MEMBER_FIELDS),
    "Office": ("OfficeKey", OFFICE_FIELDS),
    "Media": ("MediaKey", MEDIA_FIELDS),
    "OpenHouse": ("OpenHouseKey", OPEN_HOUSE_FIELDS),
}

NAVIGATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "Property": (("Media", "Media"), ("OpenHouse", "OpenHouse")),
}


def _property_xml(field: Field) -> str:
    name, type_name, facets = field
    qualified = type_name if "." in type_name else f"{ENUM_NAMESPACE}.{type_name}"
    attrs = [f"Name={quoteattr(name)}", f"Type={quoteattr(qualified)}"]
    if facets.get("Nullable") is False:
        attrs.append('Nullable="false"')
    for facet in ("MaxLength", "Precision", "Scale"):
        if facet in facets:
            attrs.append(f'{facet}="{facets[facet]}"')
    return f"        <Property {' '.join(attrs)} />"


def _enum_xml(name: str, is_flags: bool, members: tuple[str, ...]) -> list[str]:
    flags = ' IsFlags="true"' if is_flags else ""
    lines = [f'      <EnumType Name="{name}" UnderlyingType="Edm.Int64"{flags}>']
    for position, member in enumerate(members):
        value = 1 << position if is_flags else position
        lines.append(f'        <Member Name="{member}" Value="{value}" />')
    lines.append("      </EnumType>")
    return lines


@cache
def default_metadata_xml() -> bytes:
    """The EDMX text served at $metadata when no metadata file is configured."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "  <edmx:DataServices>",
        f'    <Schema Namespace="{NAMESPACE}" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for entity, (key, fields) in ENTITIES.items():
        lines += [
            f'      <EntityType Name="{entity}">',
            "        <Key>",
            f'          <PropertyRef Name="{key}" />',
            "        </Key>",
        ]
        lines += [_property_xml(field) for field in fields]
        for nav_name, target in NAVIGATIONS.get(entity, ()):
            lines.append(
                f'        <NavigationProperty Name="{nav_name}" '
                f'Type="Collection({NAMESPACE}.{target})" />'
            )
        lines.append("      </EntityType>")
    lines += [
        "    </Schema>",
        f'    <Schema Namespace="{ENUM_NAMESPACE}" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for name, (is_flags, members) in ENUMS.items():
        lines += _enum_xml(name, is_flags, members)
    lines += [
        "    </Schema>",
        '    <Schema Namespace="Default" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
        '      <EntityContainer Name="Container">',
    ]
    for entity in ENTITIES:
        bindings = NAVIGATIONS.get(entity, ())
        if not bindings:
            lines.append(f'        <EntitySet Name="{entity}" EntityType="{NAMESPACE}.{entity}" />')
            continue
        lines.append(f'        <EntitySet Name="{entity}" EntityType="{NAMESPACE}.{entity}">')
        for nav_name, target in bindings:
            lines.append(
                f'          <NavigationPropertyBinding Path="{nav_name}" Target="{target}" />'
            )
        lines.append("        </EntitySet>")
    lines += [
        "      </EntityContainer>",
        "    </Schema>",
        "  </edmx:DataServices>",
        "</edmx:Edmx>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
