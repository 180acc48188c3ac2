"""An EDMX document read into what the simulator needs to serve and generate data.

The simulator serves the document text verbatim and uses this model for everything else:
which entity sets exist, their keys, each property's type and facets (to validate
$select and to generate values that fit), enumeration members and navigation properties.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"


@dataclass(frozen=True)
class EnumMember:
    name: str
    value: int


@dataclass(frozen=True)
class EnumType:
    qualified_name: str
    members: tuple[EnumMember, ...]
    is_flags: bool


@dataclass(frozen=True)
class PropertyDef:
    """One declared structural property with the facets that bound its values."""

    name: str
    type: str  # qualified, e.g. "Edm.String" or "CoreLogic.DataStandard.RESO.DD.Enums.View"
    nullable: bool = True
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def is_collection(self) -> bool:
        return self.type.startswith("Collection(")

    @property
    def element_type(self) -> str:
        return self.type[len("Collection(") : -1] if self.is_collection else self.type


@dataclass(frozen=True)
class NavigationDef:
    name: str
    target_type: str  # qualified element type
    is_collection: bool


@dataclass
class EntityType:
    qualified_name: str
    name: str
    key: tuple[str, ...]
    properties: dict[str, PropertyDef] = field(default_factory=dict)
    navigations: dict[str, NavigationDef] = field(default_factory=dict)
    base_type: str | None = None


@dataclass
class Schema:
    """Everything declared by one EDMX document, plus the document itself."""

    xml: bytes
    entity_types: dict[str, EntityType]  # by qualified name
    enum_types: dict[str, EnumType]  # by qualified name
    entity_sets: dict[str, str]  # set name -> qualified entity type name

    def entity_type_of(self, entity_set: str) -> EntityType:
        return self.entity_types[self.entity_sets[entity_set]]

    def enum_of(self, prop: PropertyDef) -> EnumType | None:
        return self.enum_types.get(prop.element_type)


def _int_attr(element: ET.Element, name: str) -> int | None:
    raw = element.get(name)
    if raw is None or not raw.strip().lstrip("-").isdigit():
        return None  # "max", "variable" or absent: no bound
    return int(raw)


def _qualify(namespace: str, name: str) -> str:
    return f"{namespace}.{name}"


def parse_edmx(xml: bytes) -> Schema:
    """Read an OData v4 EDMX document. Raises ValueError when it is not one."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - a local, trusted metadata file
    except ET.ParseError as exc:
        raise ValueError(f"metadata is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{EDMX_NS}}}Edmx":
        raise ValueError("metadata is not an EDMX document (no edmx:Edmx root)")

    entity_types: dict[str, EntityType] = {}
    enum_types: dict[str, EnumType] = {}
    entity_sets: dict[str, str] = {}
    for schema in root.iter(f"{{{EDM_NS}}}Schema"):
        namespace = schema.get("Namespace", "")
        for element in schema.findall(f"{{{EDM_NS}}}EnumType"):
            qualified = _qualify(namespace, element.get("Name", ""))
            members = tuple(
                EnumMember(member.get("Name", ""), int(member.get("Value", str(position))))
                for position, member in enumerate(element.findall(f"{{{EDM_NS}}}Member"))
            )
            is_flags = element.get("IsFlags", "false").lower() == "true"
            enum_types[qualified] = EnumType(qualified, members, is_flags)
        for element in schema.findall(f"{{{EDM_NS}}}EntityType"):
            entity = _parse_entity_type(namespace, element)
            entity_types[entity.qualified_name] = entity
        for container in schema.findall(f"{{{EDM_NS}}}EntityContainer"):
            for entity_set in container.findall(f"{{{EDM_NS}}}EntitySet"):
                entity_sets[entity_set.get("Name", "")] = entity_set.get("EntityType", "")

    _inherit_base_types(entity_types)
    missing = {t for t in entity_sets.values() if t not in entity_types}
    if missing:
        raise ValueError(f"entity sets refer to undeclared entity types: {sorted(missing)}")
    return Schema(xml, entity_types, enum_types, entity_sets)


def _parse_entity_type(namespace: str, element: ET.Element) -> EntityType:
    name = element.get("Name", "")
    key = tuple(
        ref.get("Name", "") for ref in element.findall(f"{{{EDM_NS}}}Key/{{{EDM_NS}}}PropertyRef")
    )
    entity = EntityType(_qualify(namespace, name), name, key, base_type=element.get("BaseType"))
    for prop in element.findall(f"{{{EDM_NS}}}Property"):
        definition = PropertyDef(
            name=prop.get("Name", ""),
            type=prop.get("Type", "Edm.String"),
            nullable=prop.get("Nullable", "true").lower() != "false",
            max_length=_int_attr(prop, "MaxLength"),
            precision=_int_attr(prop, "Precision"),
            scale=_int_attr(prop, "Scale"),
        )
        entity.properties[definition.name] = definition
    for nav in element.findall(f"{{{EDM_NS}}}NavigationProperty"):
        nav_type = nav.get("Type", "")
        is_collection = nav_type.startswith("Collection(")
        target = nav_type[len("Collection(") : -1] if is_collection else nav_type
        entity.navigations[nav.get("Name", "")] = NavigationDef(
            nav.get("Name", ""), target, is_collection
        )
    return entity


def _inherit_base_types(entity_types: dict[str, EntityType]) -> None:
    """Give derived types (e.g. Trestle's Realtor: Member) their base's key and properties."""
    for entity in entity_types.values():
        chain: list[EntityType] = []
        base_name = entity.base_type
        while base_name and base_name in entity_types and len(chain) < 16:
            chain.append(entity_types[base_name])
            base_name = entity_types[base_name].base_type
        for base in chain:
            if not entity.key:
                entity.key = base.key
            entity.properties = {**base.properties, **entity.properties}
            entity.navigations = {**base.navigations, **entity.navigations}


def load_schema(metadata_path: str | Path | None) -> Schema:
    """The default metadata when no path is given, else the EDMX file at that path."""
    if metadata_path is None:
        from .default_metadata import default_metadata_xml

        return parse_edmx(default_metadata_xml())
    path = Path(metadata_path)
    try:
        xml = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read metadata file {path}: {exc.strerror}") from exc
    return parse_edmx(xml)
