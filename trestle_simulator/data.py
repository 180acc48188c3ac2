"""Full records, generated one at a time from the seed and the feed plan.

A record depends only on (seed, resource, ordinal) and the plan, never on what was
generated before it, so pages can be generated lazily, in any order, on any thread, and
two servers with one seed serve byte-identical data.

Fields the generator knows (StandardStatus, ListPrice, City…) get consistent, realistic
values; every other declared field gets a value from a per-field pool (`values.py`). Each
value is then fitted to the declaration of the metadata actually served, so the same
generator works for the project's default metadata and for any loaded EDMX file.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .clock import TICKS_PER_DAY, TICKS_PER_SECOND, format_date, format_ticks
from .metadata import Schema
from .plan import FeedPlan
from .values import POOL_SIZE, Converter, ValuePool, geography_point, make_converter
from .vocabulary import (
    EMOJI,
    FIRST_NAMES,
    LAST_NAMES,
    MEDIA_DESCRIPTIONS,
    OFFICE_BRANDS,
    OFFICE_WORDS,
    OPEN_HOUSE_REMARKS,
    PLACES,
    REFRESHMENTS,
    REMARK_SENTENCES,
    SCHOOLS,
    STREET_NAMES,
    STREET_SUFFIXES,
    SUBDIVISIONS,
    Place,
)

Record = dict[str, Any]
TEMPLATE_BITS = 8
TEMPLATES = 1 << TEMPLATE_BITS
ORIGINATING_SYSTEM = "SimMLS"
# Values that must stay exactly as generated even with fill="max": keys and references
# (they must still point at records), counters that other rows must agree with
# (PhotosCount = number of Media rows) and the timestamps replication depends on.
EXACT_FIELDS = frozenset(
    {
        "ListingKey",
        "MemberKey",
        "OfficeKey",
        "MediaKey",
        "OpenHouseKey",
        "ResourceRecordKey",
        "ListAgentKey",
        "ListOfficeKey",
        "CoListAgentKey",
        "BuyerAgentKey",
        "BuyerOfficeKey",
        "ShowingAgentKey",
        "PhotosCount",
        "Order",
    }
)

STATUS_WEIGHTS = (
    ("Active", 30),
    ("Closed", 33),
    ("Pending", 8),
    ("ActiveUnderContract", 7),
    ("Canceled", 5),
    ("Expired", 6),
    ("Withdrawn", 5),
    ("ComingSoon", 4),
    ("Hold", 2),
)
MLS_STATUS = {
    "Active": "Active",
    "Closed": "Sold",
    "Pending": "Pending",
    "ActiveUnderContract": "Under Contract",
    "Canceled": "Cancelled",
    "Expired": "Expired",
    "Withdrawn": "Withdrawn",
    "ComingSoon": "Coming Soon",
    "Hold": "Temp Off Market",
}
TYPE_WEIGHTS = (
    ("Residential", 68),
    ("ResidentialLease", 10),
    ("Land", 8),
    ("ResidentialIncome", 5),
    ("CommercialSale", 4),
    ("CommercialLease", 2),
    ("Farm", 1),
    ("ManufacturedInPark", 2),
)
SUBTYPES = {
    "Residential": ("SingleFamilyResidence", "Condominium", "Townhouse", "Duplex", "Cabin"),
    "ResidentialLease": ("SingleFamilyResidence", "Apartment", "Condominium", "Townhouse"),
    "Land": ("UnimprovedLand",),
    "ResidentialIncome": ("Duplex", "MultiFamily"),
    "CommercialSale": ("MultiFamily",),
    "CommercialLease": ("Apartment",),
    "Farm": ("FarmRanch",),
    "ManufacturedInPark": ("ManufacturedHome", "MobileHome"),
}
MULTI_SELECTS = (
    "Appliances",
    "InteriorFeatures",
    "ExteriorFeatures",
    "Heating",
    "Cooling",
    "Flooring",
    "ParkingFeatures",
    "PoolFeatures",
    "Utilities",
    "View",
    "ArchitecturalStyle",
    "Roof",
    "Sewer",
    "WaterSource",
    "LotFeatures",
    "CommunityFeatures",
    "SecurityFeatures",
    "LaundryFeatures",
    "ConstructionMaterials",
    "SpecialListingConditions",
    "ListingTerms",
)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in table], [weight for _, weight in table])[0]


def _phone(rng: random.Random, area_code: str) -> str:
    return f"{area_code}-555-{rng.randint(100, 9999):04d}"


class RecordFactory:
    """Builds the full record of any generated row of the five core resources."""

    def __init__(
        self, schema: Schema, plan: FeedPlan, fill: str, suppressed: frozenset[str]
    ) -> None:
        self._schema = schema
        self._plan = plan
        self._fill = fill
        self._suppressed = suppressed
        self._templates: dict[str, list[Record]] = {}
        self._converters: dict[str, dict[str, Converter]] = {}
        self._flag_members: dict[str, list[str]] = {}
        for resource in ("Property", "Member", "Office", "Media", "OpenHouse"):
            if resource in schema.entity_sets:
                self._prepare(resource)
        self._identities: dict[tuple[str, int], Record] = {}

    def _prepare(self, resource: str) -> None:
        """Converters and record templates, computed once: every record reuses them.

        A template holds a value for every declared field, drawn from that field's pool.
        A record starts as a copy of one of TEMPLATES templates (a C-speed dict copy even
        for 588 fields) and then gets its known fields; across records each generic field
        still varies as its pool does.
        """
        entity = self._schema.entity_type_of(resource)
        pools = ValuePool(self._plan.seed, resource, self._fill)
        columns: list[tuple[str, list[Any]]] = []
        self._converters[resource] = {}
        for name, prop in entity.properties.items():
            enum = self._schema.enum_of(prop)
            columns.append((name, pools.pool(prop, enum)))
            mode = "realistic" if name in EXACT_FIELDS else self._fill
            self._converters[resource][name] = make_converter(prop, enum, mode)
            if resource == "Property" and name in MULTI_SELECTS and enum is not None:
                self._flag_members[name] = [member.name for member in enum.members]
        rng = random.Random(f"{self._plan.seed}:{resource}:templates")
        mask = POOL_SIZE - 1
        self._templates[resource] = [
            {name: pool[rng.getrandbits(8) & mask] for name, pool in columns}
            for _ in range(TEMPLATES)
        ]

    # -- assembly

    def _assemble(self, resource: str, known: Record, rng: random.Random) -> Record:
        record = dict(self._templates[resource][rng.getrandbits(TEMPLATE_BITS)])
        converters = self._converters[resource]
        refill = self._fill == "max"
        for name, wanted in known.items():
            convert = converters.get(name)
            if convert is None:
                continue  # the served metadata does not declare this field
            value = convert(wanted)
            if value is not None or (wanted is None and not refill):
                record[name] = value
            # else: no fit for this declaration; keep the pool's value
        if resource == "Property":
            for name in self._suppressed:
                if name in record:
                    record[name] = None
        return record

    def _rng(self, resource: str, ordinal: object) -> random.Random:
        return random.Random(f"{self._plan.seed}:{resource}:{ordinal}")

    # -- shared identities (agents and offices are referenced by listings)

    def member_identity(self, member: int) -> Record:
        cached = self._identities.get(("Member", member))
        if cached is not None:
            return cached
        rng = self._rng("MemberIdentity", member)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        place = PLACES[member % len(PLACES)]
        office = self._plan.member_offices[member]
        ascii_last = last.encode("ascii", "ignore").decode().replace("'", "").lower()
        identity = {
            "key": self._plan.member_keys[member],
            "first": first,
            "last": last,
            "full": f"{first} {last}",
            "mls_id": f"A{100000 + member}",
            "email": f"{first[0].lower()}.{ascii_last}{member}@example.com",
            "phone": _phone(rng, place.area_code),
            "place": place,
            "office": office,
        }
        self._identities[("Member", member)] = identity
        return identity

    def office_identity(self, office: int) -> Record:
        cached = self._identities.get(("Office", office))
        if cached is not None:
            return cached
        rng = self._rng("OfficeIdentity", office)
        place = PLACES[(office * 7) % len(PLACES)]
        identity = {
            "key": self._plan.office_keys[office],
            "name": f"{rng.choice(OFFICE_BRANDS)} {rng.choice(OFFICE_WORDS)}",
            "mls_id": f"O{10000 + office}",
            "phone": _phone(rng, place.area_code),
            "place": place,
        }
        self._identities[("Office", office)] = identity
        return identity

    # -- resources

    def property(self, listing: int) -> Record:
        rng = self._rng("Property", listing)
        return self._assemble("Property", self._property_fields(listing, rng), rng)

    def member(self, member: int) -> Record:
        rng = self._rng("Member", member)
        who = self.member_identity(member)
        office = self.office_identity(who["office"])
        place: Place = who["place"]
        modified = self._plan.member_ticks[member]
        known = {
            "MemberKey": who["key"],
            "MemberMlsId": who["mls_id"],
            "MemberFirstName": who["first"],
            "MemberLastName": who["last"],
            "MemberFullName": who["full"],
            "MemberNickname": who["first"][:3] if rng.random() < 0.1 else None,
            "MemberEmail": who["email"],
            "MemberDirectPhone": who["phone"],
            "MemberMobilePhone": _phone(rng, place.area_code),
            "MemberStatus": "Active" if rng.random() < 0.92 else "Inactive",
            "MemberType": rng.choice(
                ("Realtor", "Realtor", "Realtor", "Assistant", "DesignatedBroker", "OfficeManager")
            ),
            "MemberStateLicense": f"{place.state}-{rng.randint(100000, 999999)}",
            "MemberStateLicenseState": place.state,
            "MemberCity": place.city,
            "MemberStateOrProvince": place.state,
            "MemberPostalCode": rng.choice(place.postal_codes),
            "JobTitle": rng.choice(("REALTOR®", "Broker Associate", "Sales Agent", None)),
            "OfficeKey": office["key"],
            "OfficeMlsId": office["mls_id"],
            "OfficeName": office["name"],
            "OriginatingSystemName": ORIGINATING_SYSTEM,
            "SourceSystemName": ORIGINATING_SYSTEM,
            "OriginalEntryTimestamp": format_ticks(
                modified - rng.randrange(0, 900 * TICKS_PER_DAY)
            ),
            "ModificationTimestamp": format_ticks(modified),
        }
        return self._assemble("Member", known, rng)

    def office(self, office: int) -> Record:
        rng = self._rng("Office", office)
        who = self.office_identity(office)
        place: Place = who["place"]
        modified = self._plan.office_ticks[office]
        brokers = [
            m
            for m in range(min(len(self._plan.member_offices), 200))
            if self._plan.member_offices[m] == office
        ]
        known = {
            "OfficeKey": who["key"],
            "OfficeMlsId": who["mls_id"],
            "OfficeName": who["name"],
            "OfficePhone": who["phone"],
            "OfficeEmail": f"info{office}@example.com",
            "OfficeAddress1": f"{rng.randint(10, 9999)} {rng.choice(STREET_NAMES)} "
            f"{rng.choice(STREET_SUFFIXES)}",
            "OfficeCity": place.city,
            "OfficeStateOrProvince": place.state,
            "OfficePostalCode": rng.choice(place.postal_codes),
            "OfficeStatus": "Active" if rng.random() < 0.95 else "Inactive",
            "OfficeType": "Realtor",
            "OfficeBrokerKey": self._plan.member_keys[brokers[0]] if brokers else None,
            "FranchiseAffiliation": rng.choice(
                ("Independent", "Keller Williams", "RE/MAX", "Coldwell Banker", None)
            ),
            "IDXOfficeParticipationYN": rng.random() < 0.9,
            "OriginatingSystemName": ORIGINATING_SYSTEM,
            "SourceSystemName": ORIGINATING_SYSTEM,
            "OriginalEntryTimestamp": format_ticks(
                modified - rng.randrange(0, 2000 * TICKS_PER_DAY)
            ),
            "ModificationTimestamp": format_ticks(modified),
        }
        return self._assemble("Office", known, rng)

    def media(self, listing: int, sequence: int) -> Record:
        rng = self._rng("Media", f"{listing}.{sequence}")
        photos = self._plan.photo_ticks[listing] or 0
        return self._assemble("Media", self.media_fields(listing, sequence, photos, rng), rng)

    def media_at(self, listing: int, sequence: int, modified: int, variant: int) -> Record:
        """Media row `sequence` of a listing as re-sent after its photos changed."""
        rng = self._rng("Media", f"{listing}.{sequence}.{variant}")
        known = self.media_fields(listing, sequence, modified, rng)
        known["MediaURL"] = f"{known['MediaURL']}?v={variant}"
        return self._assemble("Media", known, rng)

    def media_fields(
        self, listing: int, sequence: int, modified: int, rng: random.Random
    ) -> Record:
        """What the Media row `sequence` of a listing holds; reused when photos change."""
        listing_key = self._plan.property_keys[listing]
        is_photo = sequence < 25 and rng.random() < 0.93
        stamp = format_ticks(modified)
        key = self._plan.media_key(listing, sequence)
        return {
            "MediaKey": key,
            "ResourceRecordKey": listing_key,
            "ResourceRecordID": listing_id(listing),
            "ResourceName": "Property",
            "MediaObjectID": f"{listing_id(listing)}-{sequence + 1}",
            "MediaURL": f"https://media.simulator.example/{listing_key[:16]}/{key[:20]}."
            f"{'jpg' if is_photo else 'pdf'}",
            "MediaCategory": "Photo" if is_photo else rng.choice(("FloorPlan", "Document")),
            "MediaType": "jpeg" if is_photo else "pdf",
            "Order": sequence + 1,
            "ShortDescription": rng.choice(MEDIA_DESCRIPTIONS),
            "LongDescription": rng.choice(MEDIA_DESCRIPTIONS) + " — " + rng.choice(REMARK_SENTENCES)
            if rng.random() < 0.2
            else None,
            "ImageWidth": 2048 if is_photo else None,
            "ImageHeight": 1536 if is_photo else None,
            "ImageSizeDescription": "Largest" if is_photo else None,
            "PreferredPhotoYN": sequence == 0,
            "OriginatingSystemName": ORIGINATING_SYSTEM,
            "MediaModificationTimestamp": stamp,
            "ModificationTimestamp": stamp,
        }

    def open_house(self, index: int) -> Record:
        rng = self._rng("OpenHouse", index)
        listing, sequence = self._plan.open_houses[index]
        modified = self._plan.open_house_ticks[index]
        agent = self.member_identity(self._plan.listing_members[listing])
        start = modified + (3 + 7 * sequence) * TICKS_PER_DAY
        start -= start % (3600 * TICKS_PER_SECOND)  # on the hour
        known = {
            "OpenHouseKey": self._plan.open_house_keys[index],
            "OpenHouseId": f"OH{100000 + index}",
            "ListingKey": self._plan.property_keys[listing],
            "ListingId": listing_id(listing),
            "OpenHouseDate": format_date(start),
            "OpenHouseStartTime": format_ticks(start),
            "OpenHouseEndTime": format_ticks(start + 2 * 3600 * TICKS_PER_SECOND),
            "OpenHouseStatus": rng.choice(("Active", "Active", "Ended", "Canceled")),
            "OpenHouseType": rng.choice(("Public", "Public", "Broker")),
            "OpenHouseRemarks": rng.choice(OPEN_HOUSE_REMARKS),
            "Refreshments": rng.choice(REFRESHMENTS),
            "ShowingAgentKey": agent["key"],
            "ShowingAgentFirstName": agent["first"],
            "ShowingAgentLastName": agent["last"],
            "AppointmentRequiredYN": rng.random() < 0.1,
            "OriginatingSystemName": ORIGINATING_SYSTEM,
            "OriginalEntryTimestamp": format_ticks(modified - rng.randrange(0, 5 * TICKS_PER_DAY)),
            "ModificationTimestamp": format_ticks(modified),
        }
        return self._assemble("OpenHouse", known, rng)

    # -- the listing itself

    def _property_fields(self, listing: int, rng: random.Random) -> Record:
        plan = self._plan
        modified = plan.property_ticks[listing]
        photos = plan.photo_ticks[listing]
        entered = min(modified, photos or modified) - rng.randrange(
            TICKS_PER_DAY, 400 * TICKS_PER_DAY
        )
        status = _weighted(rng, STATUS_WEIGHTS)
        kind = _weighted(rng, TYPE_WEIGHTS)
        place = rng.choice(PLACES)
        agent = self.member_identity(plan.listing_members[listing])
        office = self.office_identity(agent["office"])
        known: Record = {
            "ListingKey": plan.property_keys[listing],
            "ListingKeyNumeric": int(plan.property_keys[listing][:15], 16),
            "ListingId": listing_id(listing),
            "OriginatingSystemName": ORIGINATING_SYSTEM,
            "OriginatingSystemKey": f"{listing + 1000000}",
            "SourceSystemName": ORIGINATING_SYSTEM,
            "StandardStatus": status,
            "MlsStatus": MLS_STATUS[status],
            "PropertyType": kind,
            "PropertySubType": rng.choice(SUBTYPES[kind]),
            "ModificationTimestamp": format_ticks(modified),
            "OriginalEntryTimestamp": format_ticks(entered),
            "PhotosCount": plan.media_counts[listing],
            "PhotosChangeTimestamp": format_ticks(photos) if photos is not None else None,
            "ListAgentKey": agent["key"],
            "ListAgentMlsId": agent["mls_id"],
            "ListAgentFullName": agent["full"],
            "ListAgentFirstName": agent["first"],
            "ListAgentLastName": agent["last"],
            "ListAgentEmail": agent["email"],
            "ListAgentDirectPhone": agent["phone"],
            "ListOfficeKey": office["key"],
            "ListOfficeMlsId": office["mls_id"],
            "ListOfficeName": office["name"],
            "ListOfficePhone": office["phone"],
        }
        known.update(self._timeline(rng, status, entered, modified))
        known.update(self._location(rng, place))
        known.update(self._structure(rng, kind))
        known.update(self._money(rng, place, status, kind))
        known.update(self._text(rng, place))
        for name, names in self._flag_members.items():
            if names:
                count = rng.randint(1, min(6, len(names)))
                known[name] = ",".join(sorted(rng.sample(names, count)))
        if rng.random() < 0.1:
            known["CoListAgentKey"] = plan.member_keys[rng.randrange(len(plan.member_keys))]
        if status in ("Closed", "Pending", "ActiveUnderContract"):
            buyer = self.member_identity(rng.randrange(len(plan.member_keys)))
            known["BuyerAgentKey"] = buyer["key"]
            known["BuyerOfficeKey"] = plan.office_keys[buyer["office"]]
        return known

    @staticmethod
    def _timeline(rng: random.Random, status: str, entered: int, modified: int) -> Record:
        span = max(modified - entered, TICKS_PER_DAY)
        on_market = entered + rng.randrange(0, TICKS_PER_DAY)
        changed = entered + rng.randrange(0, span)
        fields: Record = {
            "ListingContractDate": format_date(entered),
            "OnMarketDate": format_date(on_market),
            "ExpirationDate": format_date(entered + 180 * TICKS_PER_DAY),
            "DaysOnMarket": min(9999, span // TICKS_PER_DAY),
            "CumulativeDaysOnMarket": min(9999, span // TICKS_PER_DAY + rng.randint(0, 60)),
            "PriceChangeTimestamp": format_ticks(changed) if rng.random() < 0.4 else None,
            "StatusChangeTimestamp": format_ticks(changed),
            "MajorChangeTimestamp": format_ticks(changed),
            "CloseDate": format_date(modified) if status == "Closed" else None,
        }
        return fields

    @staticmethod
    def _location(rng: random.Random, place: Place) -> Record:
        number = str(rng.randint(100, 19999))
        street = rng.choice(STREET_NAMES)
        suffix = rng.choice(STREET_SUFFIXES)
        unit = str(rng.randint(1, 450)) if rng.random() < 0.15 else None
        postal = rng.choice(place.postal_codes)
        latitude = round(place.latitude + rng.uniform(-0.08, 0.08), 8)
        longitude = round(place.longitude + rng.uniform(-0.08, 0.08), 8)
        unit_text = f" #{unit}" if unit else ""
        return {
            "StreetNumber": number,
            "StreetName": street,
            "StreetSuffix": suffix,
            "UnitNumber": unit,
            "UnparsedAddress": f"{number} {street} {suffix}{unit_text}, {place.city}, "
            f"{place.state} {postal}",
            "City": place.city,
            "StateOrProvince": place.state,
            "PostalCode": postal,
            "PostalCodePlus4": f"{rng.randint(0, 9999):04d}" if rng.random() < 0.5 else None,
            "CountyOrParish": place.county,
            "Country": "US",
            "Latitude": latitude,
            "Longitude": longitude,
            "Coordinates": geography_point(latitude, longitude),
            "X_Location": geography_point(latitude, longitude),
            "SubdivisionName": rng.choice(SUBDIVISIONS) if rng.random() < 0.6 else None,
            "ElementarySchool": f"{rng.choice(SCHOOLS)} Elementary",
            "MiddleOrJuniorSchool": f"{rng.choice(SCHOOLS)} Middle",
            "HighSchool": f"{rng.choice(SCHOOLS)} High",
            "HighSchoolDistrict": f"{place.county} ISD",
            "ParcelNumber": f"{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-"
            f"{rng.randint(0, 99):02d}",
            "Zoning": rng.choice(("R-1", "R-2", "SF-3", "MF-4", "PUD", "AG")),
            "Directions": f"From {place.city} center, head north on {street} {suffix}; "
            "home is on the right.",
        }

    @staticmethod
    def _structure(rng: random.Random, kind: str) -> Record:
        if kind == "Land":
            acres = round(rng.uniform(0.5, 80), 4)
            return {"LotSizeAcres": acres, "LotSizeSquareFeet": round(acres * 43560, 2)}
        bedrooms = rng.choices((1, 2, 3, 4, 5, 6), (8, 20, 35, 25, 9, 3))[0]
        full = max(1, min(bedrooms, rng.randint(1, 4)))
        half = rng.randint(0, 2)
        living = round(rng.uniform(450, 900) * bedrooms + rng.uniform(0, 400), 2)
        acres = round(rng.uniform(0.05, 1.5), 4)
        garage = float(rng.choice((0, 1, 2, 2, 3)))
        fireplaces = rng.choice((0, 0, 1, 1, 2))
        return {
            "BedroomsTotal": bedrooms,
            "BathroomsFull": full,
            "BathroomsHalf": half,
            "BathroomsTotalInteger": full + half,
            "LivingArea": living,
            "LivingAreaUnits": "SquareFeet",
            "LivingAreaSource": rng.choice(("Assessor", "Builder", "Appraiser", "PublicRecords")),
            "LotSizeAcres": acres,
            "LotSizeSquareFeet": round(acres * 43560, 2),
            "YearBuilt": rng.randint(1900, 2025),
            "Stories": rng.choice((1, 1, 2, 2, 3)),
            "GarageSpaces": garage,
            "GarageYN": garage > 0,
            "ParkingTotal": garage + rng.choice((0.0, 1.0, 2.0)),
            "FireplaceYN": fireplaces > 0,
            "FireplacesTotal": fireplaces,
            "PoolPrivateYN": rng.random() < 0.2,
            "NewConstructionYN": rng.random() < 0.07,
            "SeniorCommunityYN": rng.random() < 0.04,
            "WaterfrontYN": rng.random() < 0.05,
            "ViewYN": rng.random() < 0.3,
        }

    @staticmethod
    def _money(rng: random.Random, place: Place, status: str, kind: str) -> Record:
        if kind in ("ResidentialLease", "CommercialLease"):
            price = float(rng.randrange(900, 9000, 25))
        else:
            price = round(place.price_level * rng.lognormvariate(0, 0.45), -3)
            if rng.random() < 0.15:
                price -= 0.01 * rng.choice((1, 100))  # 349,999.99-style prices
            price = round(max(price, 25_000.0), 2)
        original = round(price * rng.choice((1.0, 1.0, 1.03, 1.05, 1.1)), 2)
        hoa = rng.random() < 0.45
        return {
            "ListPrice": price,
            "OriginalListPrice": original,
            "PreviousListPrice": original if original != price else None,
            "ClosePrice": round(price * rng.uniform(0.94, 1.06), 2) if status == "Closed" else None,
            "TaxAnnualAmount": round(price * rng.uniform(0.008, 0.022), 2),
            "TaxYear": 2025,
            "TaxAssessedValue": int(price * rng.uniform(0.7, 1.0)),
            "AssociationYN": hoa,
            "AssociationFee": round(rng.uniform(40, 900), 2) if hoa else None,
            "AssociationFeeFrequency": rng.choice(("Monthly", "Quarterly", "Annually"))
            if hoa
            else None,
            "AssociationName": f"{rng.choice(SUBDIVISIONS)} HOA" if hoa else None,
            "BuyerAgencyCompensation": rng.choice(("2.5%", "3%", "2%", "$5,000")),
            "InternetEntireListingDisplayYN": rng.random() < 0.97,
            "InternetAddressDisplayYN": rng.random() < 0.95,
            "IDXParticipationYN": rng.random() < 0.95,
        }

    @staticmethod
    def _text(rng: random.Random, place: Place) -> Record:
        sentences = rng.sample(REMARK_SENTENCES, rng.randint(2, 7))
        if rng.random() < 0.1:
            sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(EMOJI))
        remarks = " ".join(sentences)
        if rng.random() < 0.02:
            # Now and then a listing writes right up to the field's limit.
            remarks = (remarks + " ") * (5000 // len(remarks) + 1)
        tour = (
            f"https://tours.example.com/{rng.randint(10000, 99999)}" if rng.random() < 0.3 else None
        )
        return {
            "PublicRemarks": remarks,
            "SyndicationRemarks": remarks if rng.random() < 0.3 else None,
            "VirtualTourURLUnbranded": tour,
        }


def listing_id(listing: int) -> str:
    """The MLS number: unique, human-looking, unrelated to the key's order."""
    return f"SIM{(listing * 7919 + 1000003) % 10**8:08d}"


Generator = Callable[[Any], Record]
