"""The pipeline's EDMX reader against real Trestle metadata, RESO DD 2.0, and edge cases."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import RESO_DD_METADATA, TRESTLE_2019_METADATA
from tests.store_data import SMALL_EDMX
from trestle_tasks.errors import MetadataError
from trestle_tasks.trestle.metadata import parse_metadata


@pytest.fixture(scope="module")
def trestle():  # type: ignore[no-untyped-def]
    return parse_metadata(TRESTLE_2019_METADATA.read_bytes())


@pytest.fixture(scope="module")
def reso_dd():  # type: ignore[no-untyped-def]
    return parse_metadata(RESO_DD_METADATA.read_text(encoding="utf-8"))


def test_trestle_resources_keys_and_field_kinds(trestle) -> None:  # type: ignore[no-untyped-def]
    assert list(trestle.resources) == ["Property", "Office", "Member", "Media", "OpenHouse",
                                       "DataSystem", "Enumeration"]
    keys = {name: spec.key for name, spec in trestle.resources.items()}
    assert keys["Property"] == ("ListingKey",) and keys["Media"] == ("MediaKey",)
    prop = trestle.resource("Property")
    # The document declares 602 properties on Property (FACTS.md counts 588).
    assert len(prop.fields) == 602
    kinds = Counter(f.kind for f in prop.fields)
    assert kinds["enum"] == 153 and kinds["datetime"] == 13 and kinds["geography"] == 1
    modified = prop.field("ModificationTimestamp")
    assert modified.type == "Edm.DateTimeOffset" and modified.precision == 27
    price = prop.field("ListPrice")
    assert (price.kind, price.precision, price.scale) == ("decimal", 14, 2)
    key = prop.key_field
    assert (key.max_length, key.nullable) == (255, False)
    appliances = prop.field("Appliances")
    assert appliances.enum is not None and appliances.enum.is_flags and appliances.is_multi_valued
    assert "Dishwasher" in appliances.enum.members
    status = prop.field("StandardStatus")
    assert status.enum is not None and not status.enum.is_flags and not status.is_multi_valued
    unbounded = prop.field("X_LivingAreaRange")
    assert unbounded.kind == "string" and unbounded.max_length is None
    media = {n.name: n for n in prop.navigations}["Media"]
    assert media.is_collection and media.target_set == "Media"
    assert trestle.resource("DataSystem").field("Resources").kind == "complex"


def test_reso_dd_collections_and_navigation(reso_dd) -> None:  # type: ignore[no-untyped-def]
    assert len(reso_dd.resources) == 41
    prop = reso_dd.resource("Property")
    assert len(prop.fields) == 632
    features = prop.field("AccessibilityFeatures")
    assert features.is_collection and features.kind == "enum" and features.is_multi_valued
    assert features.edm_type == "Collection(org.reso.metadata.enums.AccessibilityFeatures)"
    agent = {n.name: n for n in prop.navigations}["ListAgent"]
    assert not agent.is_collection and agent.target_set == "Member"
    assert reso_dd.resource("EntityEvent").key_field.type == "Edm.Int64"


def test_aliases_and_inherited_fields() -> None:
    small = parse_metadata(SMALL_EDMX)
    features = small.resource("Property").field("InteriorFeatures")
    assert features.enum is not None and features.enum.qualified_name == \
        "Test.DD.Enums.InteriorFeatures"
    derived = parse_metadata(SMALL_EDMX.replace(
        '<EntityType Name="EventLog">',
        '<EntityType Name="Special" BaseType="Test.DD.Media">'
        '<Property Name="Extra" Type="Edm.Int32"/></EntityType>'
        '<EntityType Name="EventLog">').replace(
        '<EntitySet Name="EventLog"',
        '<EntitySet Name="Special" EntityType="Test.DD.Special"/><EntitySet Name="EventLog"'))
    special = derived.resource("Special")
    assert special.key == ("MediaKey",)
    assert [f.name for f in special.fields][-1] == "Extra"
    assert special.has_field("MediaURL")


@pytest.mark.parametrize("document, message", [
    ("not xml at all", "well-formed"),
    ("<root/>", "not an EDMX"),
    ('<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"/>', "no Schema"),
])
def test_unusable_documents_are_refused(document: str, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(document)


def test_composite_keys_are_refused_where_a_single_key_is_needed() -> None:
    small = parse_metadata(SMALL_EDMX.replace(
        '<Key><PropertyRef Name="MediaKey"/></Key>',
        '<Key><PropertyRef Name="MediaKey"/><PropertyRef Name="Order"/></Key>'))
    with pytest.raises(MetadataError, match="composite"):
        small.resource("Media").key_field
    with pytest.raises(MetadataError):
        small.resource("Nothing")
