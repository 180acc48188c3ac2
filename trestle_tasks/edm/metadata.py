"""An EDMX (`$metadata`) document read into resource and field specs for the pipeline.

Pure: it takes the document's bytes or text and returns frozen values; it fetches nothing.
The simulator has its own reader on purpose (two independent readings of the same
document cannot agree on the same mistake), so nothing here is shared with it.

What is kept is what the store needs to build tables and validate records: for every
entity set its key, and for every structural property its Edm type (or enumeration),
whether it is a collection, MaxLength, Precision, Scale and Nullable; enumerations with
their members and IsFlags; navigation properties with the entity set they lead to.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from trestle_tasks.core.errors import MetadataError

log = logging.getLogger(__name__)

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"

# How a value of a field is read and stored; every Edm type the store knows maps to one.
FieldKind = Literal[
    "string", "boolean", "integer", "decimal", "float", "date", "datetime", "time",
    "duration", "guid", "binary", "geography", "enum", "complex", "stream", "unknown",
]

KIND_OF_EDM: dict[str, FieldKind] = {
    "Edm.String": "string",
    "Edm.Boolean": "boolean",
    "Edm.Byte": "integer",
    "Edm.SByte": "integer",
    "Edm.Int16": "integer",
    "Edm.Int32": "integer",
    "Edm.Int64": "integer",
    "Edm.Decimal": "decimal",
    "Edm.Double": "float",
    "Edm.Single": "float",
    "Edm.Date": "date",
    "Edm.DateTimeOffset": "datetime",
    "Edm.TimeOfDay": "time",
    "Edm.Duration": "duration",
    "Edm.Guid": "guid",
    "Edm.Binary": "binary",
    "Edm.Stream": "stream",
}

# Inclusive ranges of the integer types: a value outside is the wrong type, not a big number.
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class EnumSpec:
    """An enumeration type. IsFlags means a field of this type holds several members."""

    qualified_name: str
    members: tuple[str, ...]
    is_flags: bool = False
    underlying_type: str = "Edm.Int32"

    @property
    def name(self) -> str:
        return self.qualified_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class FieldSpec:
    """One structural property of an entity type, with the facets that bound its values."""

    name: str
    type: str  # qualified element type: "Edm.String", "Ns.Enums.View", "Ns.SomeComplexType"
    kind: FieldKind
    is_collection: bool = False
    nullable: bool = True
    max_length: int | None = None  # None: unbounded (or "max")
    precision: int | None = None
    scale: int | None = None  # None: not declared (any number of fractional digits)
    enum: EnumSpec | None = None

    @property
    def is_multi_valued(self) -> bool:
        """A collection, or a multi-select enumeration (IsFlags), which Trestle sends as
        one comma-separated string."""
        return self.is_collection or (self.enum is not None and self.enum.is_flags)

    @property
    def edm_type(self) -> str:
        """The declared type as written, `Collection(...)` included."""
        return f"Collection({self.type})" if self.is_collection else self.type


@dataclass(frozen=True)
class NavigationSpec:
    name: str
    target_type: str  # qualified entity type
    is_collection: bool
    target_set: str | None = None  # from the container's NavigationPropertyBinding


@dataclass(frozen=True)
class ResourceSpec:
    """An entity set: what the feed calls a resource (Property, Member, Media …)."""

    name: str
    entity_type: str
    key: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    navigations: tuple[NavigationSpec, ...] = ()
    _by_name: Mapping[str, FieldSpec] = field(default_factory=dict, init=False, compare=False,
                                              repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    @property
    def key_field(self) -> FieldSpec:
        """The single key field; RESO resources all have one."""
        if len(self.key) != 1:
            raise MetadataError(
                f"{self.name} has a composite key {self.key}; only single keys are supported",
                resource=self.name,
            )
        return self._by_name[self.key[0]]

    def field(self, name: str) -> FieldSpec | None:
        return self._by_name.get(name)

    def declared_field(self, name: str) -> FieldSpec:
        """The field `name`, which the caller knows is declared (KeyError if not)."""
        return self._by_name[name]

    def has_field(self, name: str) -> bool:
        return name in self._by_name

    @property
    def navigation_names(self) -> frozenset[str]:
        return frozenset(n.name for n in self.navigations)

    def record_names(self) -> list[str]:
        """Every key a record of this resource may have: its declared fields, then its
        navigation properties (an `$expand`)."""
        return [*(f.name for f in self.fields), *sorted(self.navigation_names)]


@dataclass(frozen=True)
class ServiceMetadata:
    resources: Mapping[str, ResourceSpec]  # by entity set name, in document order
    enums: Mapping[str, EnumSpec]  # by qualified name

    def resource(self, name: str) -> ResourceSpec:
        try:
            return self.resources[name]
        except KeyError:
            raise MetadataError(f"$metadata declares no entity set {name!r}",
                                resource=name) from None


# --- parsing ---------------------------------------------------------------------------


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> Iterable[ET.Element]:
    return (child for child in element if _tag(child) == name)


# Facet values a column can be built from: PostgreSQL's NUMERIC allows a precision up to
# 1,000 (MySQL's DECIMAL 65: types.py clamps); a length or precision below 1, or a negative
# scale, has no column at all, and the DDL of the whole resource would fail on it.
_FACET_RANGES = {"MaxLength": (1, None), "Precision": (1, 1000), "Scale": (0, 1000)}


def _int_facet(element: ET.Element, name: str) -> int | None:
    text = element.get(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        # "max", "variable", "floating": no numeric bound
        return None
    low, high = _FACET_RANGES.get(name, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        # A bad facet costs its bound, not the resource: the field is stored unbounded
        # (text, or a decimal of the database's widest form) and still checked otherwise.
        log.warning("$metadata: %s of %s is %s=%s, outside %s..%s; the field is treated "
                    "as having no %s", element.get("Name"), element.get("Type"), name,
                    text, low, "" if high is None else high, name)
        return None
    return value


def _split_collection(type_name: str) -> tuple[str, bool]:
    if type_name.startswith("Collection(") and type_name.endswith(")"):
        return type_name[len("Collection(") : -1], True
    return type_name, False


@dataclass
class _EntityTypeDraft:
    qualified_name: str
    base_type: str | None
    key: tuple[str, ...]
    properties: list[ET.Element]
    navigations: list[ET.Element]


def parse_metadata(document: bytes | str) -> ServiceMetadata:
    """Read a `$metadata` document; MetadataError when it is not EDMX we can use."""
    try:
        root = ET.fromstring(document)  # noqa: S314 - the feed's own metadata, no DTDs allowed
    except ET.ParseError as exc:
        raise MetadataError(f"$metadata is not well-formed XML: {exc}") from None
    if _tag(root) != "Edmx":
        raise MetadataError("$metadata is not an EDMX document (no edmx:Edmx root)")

    schemas = [el for el in root.iter() if _tag(el) == "Schema"]
    if not schemas:
        raise MetadataError("$metadata declares no Schema")

    aliases: dict[str, str] = {}
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        alias = schema.get("Alias")
        if alias:
            aliases[alias] = namespace

    def qualify(type_name: str) -> str:
        """Resolve a schema alias prefix to the namespace it stands for."""
        prefix, dot, rest = type_name.rpartition(".")
        if dot and prefix in aliases:
            return f"{aliases[prefix]}.{rest}"
        return type_name

    enums: dict[str, EnumSpec] = {}
    entity_types: dict[str, _EntityTypeDraft] = {}
    complex_types: set[str] = set()
    containers: list[ET.Element] = []
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        for child in schema:
            tag = _tag(child)
            name = child.get("Name", "")
            qualified = f"{namespace}.{name}" if namespace else name
            if tag == "EnumType":
                enums[qualified] = EnumSpec(
                    qualified_name=qualified,
                    members=tuple(m.get("Name", "") for m in _children(child, "Member")),
                    is_flags=child.get("IsFlags", "false").lower() == "true",
                    underlying_type=child.get("UnderlyingType", "Edm.Int32"),
                )
            elif tag == "EntityType":
                key_el = next(iter(_children(child, "Key")), None)
                key = tuple(
                    ref.get("Name", "") for ref in _children(key_el, "PropertyRef")
                ) if key_el is not None else ()
                entity_types[qualified] = _EntityTypeDraft(
                    qualified_name=qualified,
                    base_type=qualify(base) if (base := child.get("BaseType")) else None,
                    key=key,
                    properties=list(_children(child, "Property")),
                    navigations=list(_children(child, "NavigationProperty")),
                )
            elif tag == "ComplexType":
                complex_types.add(qualified)
            elif tag == "EntityContainer":
                containers.append(child)

    def field_spec(element: ET.Element) -> FieldSpec:
        name = element.get("Name")
        raw_type = element.get("Type")
        if not name or not raw_type:
            raise MetadataError("a Property without Name or Type", field=name or "")
        element_type, is_collection = _split_collection(raw_type)
        element_type = qualify(element_type)
        enum = enums.get(element_type)
        kind: FieldKind
        if enum is not None:
            kind = "enum"
        elif element_type in KIND_OF_EDM:
            kind = KIND_OF_EDM[element_type]
        elif element_type.startswith("Edm.Geography") or element_type.startswith("Edm.Geometry"):
            kind = "geography"
        elif element_type in complex_types or element_type in entity_types:
            kind = "complex"
        else:
            kind = "unknown"
        return FieldSpec(
            name=name,
            type=element_type,
            kind=kind,
            is_collection=is_collection,
            nullable=element.get("Nullable", "true").lower() != "false",
            max_length=_int_facet(element, "MaxLength") if kind == "string" else None,
            precision=_int_facet(element, "Precision"),
            scale=_int_facet(element, "Scale"),
            enum=enum,
        )

    def resolved(qualified: str, seen: frozenset[str] = frozenset()) -> tuple[
        tuple[str, ...], list[FieldSpec], list[NavigationSpec]
    ]:
        """Key, fields and navigations of an entity type, inherited ones first."""
        draft = entity_types.get(qualified)
        if draft is None:
            raise MetadataError(f"entity type {qualified} is not declared")
        if qualified in seen:
            raise MetadataError(f"entity type {qualified} inherits from itself")
        key: tuple[str, ...] = ()
        fields: list[FieldSpec] = []
        navigations: list[NavigationSpec] = []
        if draft.base_type:
            key, fields, navigations = resolved(draft.base_type, seen | {qualified})
        key = draft.key or key
        by_name = {f.name: i for i, f in enumerate(fields)}
        for element in draft.properties:
            spec = field_spec(element)
            if spec.name in by_name:
                fields[by_name[spec.name]] = spec
            else:
                by_name[spec.name] = len(fields)
                fields.append(spec)
        for element in draft.navigations:
            target, is_collection = _split_collection(element.get("Type", ""))
            navigations.append(NavigationSpec(
                name=element.get("Name", ""), target_type=qualify(target),
                is_collection=is_collection,
            ))
        return key, fields, navigations

    entity_sets: list[tuple[str, str, dict[str, str]]] = []
    for container in containers:
        for entity_set in _children(container, "EntitySet"):
            bindings = {
                b.get("Path", ""): b.get("Target", "")
                for b in _children(entity_set, "NavigationPropertyBinding")
            }
            entity_sets.append(
                (entity_set.get("Name", ""), qualify(entity_set.get("EntityType", "")), bindings)
            )
    if not containers:
        # Some documents list entity types only; each keyed type is then its own set.
        entity_sets = [
            (draft.qualified_name.rsplit(".", 1)[-1], draft.qualified_name, {})
            for draft in entity_types.values()
        ]
    set_of_type: dict[str, str] = {}
    for set_name, type_name, _ in entity_sets:
        set_of_type.setdefault(type_name, set_name)

    resources: dict[str, ResourceSpec] = {}
    for set_name, type_name, bindings in entity_sets:
        key, fields, navigations = resolved(type_name)
        if not key:
            continue  # not addressable by key: nothing the store can upsert
        names = {f.name for f in fields}
        missing = [k for k in key if k not in names]
        if missing:
            raise MetadataError(
                f"{set_name}: key {', '.join(missing)} is not a property of {type_name}",
                resource=set_name,
            )
        navigations = [
            NavigationSpec(n.name, n.target_type, n.is_collection,
                           bindings.get(n.name) or set_of_type.get(n.target_type))
            for n in navigations
        ]
        resources[set_name] = ResourceSpec(
            name=set_name, entity_type=type_name, key=key, fields=tuple(fields),
            navigations=tuple(navigations),
        )
    return ServiceMetadata(resources=resources, enums=enums)
