"""Test data for the store: a small EDMX with one field of every kind, and Hypothesis
strategies for records that are valid against it (and for ways to make them invalid).

The trestle-2019 and RESO DD 2.0 documents are used as they are, from tests.conftest.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from trestle_tasks.store.migrate import migrate
from trestle_tasks.trestle.metadata import FieldSpec, ResourceSpec, parse_metadata
from trestle_tasks.trestle.timestamps import TICKS_PER_SECOND, ODataTimestamp

SMALL_EDMX = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
 <edmx:DataServices>
  <Schema Namespace="Test.DD" xmlns="http://docs.oasis-open.org/odata/ns/edm">
   <EntityType Name="Property">
    <Key><PropertyRef Name="ListingKey"/></Key>
    <Property Name="ListingKey" Type="Edm.String" Nullable="false" MaxLength="64"/>
    <Property Name="ListingId" Type="Edm.String" MaxLength="32"/>
    <Property Name="StandardStatus" Type="Test.DD.Enums.StandardStatus"/>
    <Property Name="ListPrice" Type="Edm.Decimal" Precision="14" Scale="2"/>
    <Property Name="City" Type="Edm.String" MaxLength="50"/>
    <Property Name="PostalCode" Type="Edm.String" MaxLength="10"/>
    <Property Name="BedroomsTotal" Type="Edm.Int32"/>
    <Property Name="BathroomsTotalInteger" Type="Edm.Int16"/>
    <Property Name="ModificationTimestamp" Type="Edm.DateTimeOffset" Precision="27"/>
    <Property Name="PhotosChangeTimestamp" Type="Edm.DateTimeOffset" Precision="27"/>
    <Property Name="PhotosCount" Type="Edm.Int32"/>
    <Property Name="PublicRemarks" Type="Edm.String" MaxLength="4000"/>
    <Property Name="Appliances" Type="Test.DD.Enums.Appliances"/>
    <Property Name="InteriorFeatures" Type="Collection(E.InteriorFeatures)"/>
    <Property Name="Tags" Type="Collection(Edm.String)"/>
    <Property Name="ListingContractDate" Type="Edm.Date"/>
    <Property Name="NewConstructionYN" Type="Edm.Boolean"/>
    <Property Name="Latitude" Type="Edm.Decimal" Precision="12" Scale="8"/>
    <Property Name="LotSizeAcres" Type="Edm.Double"/>
    <Property Name="TaxAnnualAmount" Type="Edm.Int64"/>
    <Property Name="Stories" Type="Edm.Byte"/>
    <Property Name="X_Location" Type="Edm.GeographyPoint"/>
    <NavigationProperty Name="Media" Type="Collection(Test.DD.Media)"/>
   </EntityType>
   <EntityType Name="Media">
    <Key><PropertyRef Name="MediaKey"/></Key>
    <Property Name="MediaKey" Type="Edm.String" Nullable="false" MaxLength="255"/>
    <Property Name="ResourceRecordKey" Type="Edm.String" MaxLength="255"/>
    <Property Name="ResourceName" Type="Edm.String" MaxLength="50"/>
    <Property Name="Order" Type="Edm.Int32"/>
    <Property Name="MediaURL" Type="Edm.String" MaxLength="8000"/>
    <Property Name="ModificationTimestamp" Type="Edm.DateTimeOffset" Precision="27"/>
   </EntityType>
   <EntityType Name="EventLog">
    <Key><PropertyRef Name="EventSequence"/></Key>
    <Property Name="EventSequence" Type="Edm.Int64" Nullable="false"/>
    <Property Name="EventType" Type="Edm.String" MaxLength="50"/>
   </EntityType>
  </Schema>
  <Schema Namespace="Test.DD.Enums" Alias="E" xmlns="http://docs.oasis-open.org/odata/ns/edm">
   <EnumType Name="StandardStatus">
    <Member Name="Active"/><Member Name="Pending"/><Member Name="Closed"/>
    <Member Name="ActiveUnderContract"/>
   </EnumType>
   <EnumType Name="Appliances" IsFlags="true">
    <Member Name="Dishwasher"/><Member Name="Dryer"/><Member Name="Oven"/>
    <Member Name="Refrigerator"/><Member Name="Washer"/>
   </EnumType>
   <EnumType Name="InteriorFeatures">
    <Member Name="Bar"/><Member Name="BuiltInFeatures"/><Member Name="CeilingFans"/>
   </EnumType>
  </Schema>
  <Schema Namespace="Test.Service" xmlns="http://docs.oasis-open.org/odata/ns/edm">
   <EntityContainer Name="Container">
    <EntitySet Name="Property" EntityType="Test.DD.Property">
     <NavigationPropertyBinding Path="Media" Target="Media"/>
    </EntitySet>
    <EntitySet Name="Media" EntityType="Test.DD.Media"/>
    <EntitySet Name="EventLog" EntityType="Test.DD.EventLog"/>
   </EntityContainer>
  </Schema>
 </edmx:DataServices>
</edmx:Edmx>
"""

SMALL = parse_metadata(SMALL_EDMX)
PROPERTY = SMALL.resource("Property")


def migrate_small(target: Any, resources: tuple[str, ...] = ("Property", "Media", "EventLog")
                  ) -> None:
    migrate(target.engine, SMALL, resources, schema=target.schema)


# --- values ---------------------------------------------------------------------------

# Everything a database can store: no U+0000 and no lone surrogates.
STORABLE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TICKS = ODataTimestamp.parse("0001-01-02T00:00:00Z").ticks
MAX_TICKS = ODataTimestamp.parse("9999-12-30T00:00:00Z").ticks


@st.composite
def timestamps(draw: st.DrawFn, min_ticks: int = MIN_TICKS, max_ticks: int = MAX_TICKS) -> str:
    """An Edm.DateTimeOffset as a server may write it: 0-7 fractional digits, any offset."""
    ticks = draw(st.integers(min_ticks, max_ticks))
    digits = draw(st.integers(0, 7))
    ticks -= ticks % (10 ** (7 - digits))
    minutes = draw(st.sampled_from([0, 0, 0, -300, 330, 600, -720, 840]))
    seconds, fraction = divmod(ticks + minutes * 60 * TICKS_PER_SECOND, TICKS_PER_SECOND)
    moment = EPOCH + timedelta(seconds=seconds)
    # Not strftime: %Y is not zero-padded below year 1000 on glibc.
    local = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
             f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")
    frac = f".{fraction:07d}"[: 1 + digits] if digits else ""
    if minutes == 0 and draw(st.booleans()):
        zone = "Z"
    else:
        sign = "-" if minutes < 0 else "+"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{local}{frac}{zone}"


def decimals_for(field: FieldSpec) -> st.SearchStrategy[Decimal]:
    precision, scale = field.precision or 18, field.scale or 0
    bound = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
    return st.decimals(min_value=-bound, max_value=bound, places=scale,
                       allow_nan=False, allow_infinity=False)


def value_for(field: FieldSpec) -> st.SearchStrategy[Any]:
    """Any value valid for `field`, in the JSON form the client hands to the store."""
    kind = field.kind
    if field.is_collection:
        inner = FieldSpec(field.name, field.type, field.kind, max_length=field.max_length,
                          precision=field.precision, scale=field.scale, enum=field.enum)
        return st.lists(value_for(inner), max_size=4)
    if kind == "enum":
        assert field.enum is not None
        members = st.sampled_from(field.enum.members)
        if field.enum.is_flags:
            return st.lists(members, unique=True, max_size=4).map(",".join)
        return members
    if kind == "string":
        return st.text(STORABLE, max_size=min(field.max_length or 300, 300))
    if kind == "integer":
        low, high = {"Edm.Byte": (0, 255), "Edm.Int16": (-(2**15), 2**15 - 1),
                     "Edm.Int32": (-(2**31), 2**31 - 1)}.get(
            field.type, (-(2**63), 2**63 - 1))
        return st.integers(low, high)
    if kind == "decimal":
        return decimals_for(field)
    if kind == "float":
        return st.decimals(min_value=-10**12, max_value=10**12, places=6, allow_nan=False,
                           allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "date":
        return st.dates().map(date.isoformat)
    if kind == "datetime":
        return timestamps()
    if kind == "geography":
        coordinate = st.decimals(min_value=-180, max_value=180, places=7, allow_nan=False,
                                 allow_infinity=False)
        return st.tuples(coordinate, coordinate).map(
            lambda c: {"type": "Point", "coordinates": [c[0], c[1]]})
    raise AssertionError(f"no strategy for {kind}")


@st.composite
def records(draw: st.DrawFn, spec: ResourceSpec = PROPERTY, key: str | None = None,
            modification: st.SearchStrategy[str] | None = None) -> dict[str, Any]:
    """A valid record: the key, ModificationTimestamp, and any subset of the other fields
    (absent, null or a value)."""
    record: dict[str, Any] = {}
    key_field = spec.key_field
    for field in spec.fields:
        if field.name == key_field.name:
            continue
        if field.name == "ModificationTimestamp":
            record[field.name] = draw(modification or timestamps())
            continue
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        record[field.name] = None if choice == 1 else draw(value_for(field))
    record[key_field.name] = key if key is not None else draw(
        st.text(STORABLE, min_size=1, max_size=key_field.max_length or 64)
        .filter(lambda k: k.strip() != ""))
    return record


def unique_prefix() -> str:
    return uuid.uuid4().hex[:10]
