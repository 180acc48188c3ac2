"""Turn the query string of a collection request into a validated request, or a 400.

Validation follows what Trestle measurably does: fields must be in metadata, suppressed
fields may not be filtered or ordered on, $top has a ceiling that depends on whether only
keys are selected, and $skip cannot be combined with replication.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .metadata import EntityType
from .odata_filter import (
    ExpandItem,
    Expr,
    ODataSyntaxError,
    fields_referenced,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
)

DEFAULT_PAGE_SIZE = 10
TOP_CEILING = 1000
KEY_ONLY_TOP_CEILING = 300_000
EXPANDABLE = frozenset({"Media", "OpenHouse"})
SUPPORTED_OPTIONS = frozenset(
    {"$filter", "$select", "$top", "$skip", "$orderby", "$count", "$expand"}
)


class QueryError(Exception):
    """A request Trestle would refuse; `status` and `code` go into the error response."""

    def __init__(self, message: str, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Expansion:
    name: str  # navigation property, also the target entity set
    select: list[str] | None
    expr: Expr | None
    orderby: tuple[tuple[str, bool], ...]
    top: int | None
    skip: int


@dataclass
class CollectionQuery:
    params: list[tuple[str, str]]  # as received (decoded), to build the next link
    expr: Expr | None = None
    filter_text: str = ""
    select: list[str] | None = None
    orderby: tuple[tuple[str, bool], ...] = ()
    top: int = DEFAULT_PAGE_SIZE
    top_given: bool = False
    skip: int = 0
    count: bool = False
    expand: list[Expansion] = field(default_factory=list)
    replication: bool = False


def _single(params: list[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name, value in params:
        if name.startswith("$"):
            if name in seen:
                raise QueryError(f"query option {name} is given more than once")
            if name not in SUPPORTED_OPTIONS:
                raise QueryError(f"query option {name} is not supported")
        seen.setdefault(name, value)
    return seen


def _non_negative(name: str, text: str) -> int:
    if not text.strip().isdigit():
        raise QueryError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def _boolean(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise QueryError(f"{name} must be true or false, got {text!r}")
    return lowered == "true"


def check_fields(
    entity: EntityType, names: Iterable[str], suppressed: frozenset[str], usage: str | None
) -> None:
    """400 for a field the metadata does not declare or (for `usage`) a suppressed one."""
    for name in names:
        if name not in entity.properties:
            raise QueryError(f"The field '{name}' is not in metadata for {entity.name}")
        if usage and name in suppressed:
            raise QueryError(
                f"The field '{name}' is suppressed (provider Level) and cannot be used in {usage}"
            )


def parse_collection_query(
    params: list[tuple[str, str]],
    entity: EntityType,
    suppressed: frozenset[str],
    entity_of: dict[str, EntityType],
    expand_top_ceiling: int = TOP_CEILING,
) -> CollectionQuery:
    """Parse and validate; `entity_of` gives the entity type of each expandable set."""
    options = _single(params)
    query = CollectionQuery(params=list(params))
    try:
        if "replication" in options:
            query.replication = _boolean("replication", options["replication"])
        if "$filter" in options:
            query.filter_text = options["$filter"]
            query.expr = parse_filter(options["$filter"])
            check_fields(entity, sorted(fields_referenced(query.expr)), suppressed, "$filter")
        if "$select" in options:
            names = parse_select(options["$select"])
            if "*" not in names:
                check_fields(entity, names, frozenset(), None)
                query.select = list(dict.fromkeys(names))
        if "$orderby" in options:
            query.orderby = tuple(parse_orderby(options["$orderby"]))
            check_fields(entity, [name for name, _ in query.orderby], suppressed, "$orderby")
        if "$count" in options:
            query.count = _boolean("$count", options["$count"])
        if "$skip" in options:
            if query.replication:
                raise QueryError("$skip is not allowed with replication=true")
            query.skip = _non_negative("$skip", options["$skip"])
        if "$expand" in options:
            query.expand = [
                _expansion(item, entity, suppressed, entity_of)
                for item in parse_expand(options["$expand"])
            ]
    except ODataSyntaxError as exc:
        raise QueryError(str(exc)) from exc
    if "$top" in options:
        query.top = _non_negative("$top", options["$top"])
        query.top_given = True
    ceiling = top_ceiling(entity, query.select, bool(query.expand))
    if query.expand:
        ceiling = min(ceiling, expand_top_ceiling)
    if query.top > ceiling:
        raise QueryError(f"maximum limit/$top value for this kind of query is {ceiling}")
    return query


# Trestle's metadata documentation marks some fields of each resource InKeyIndex ("may be
# queried in batches up to 300,000 at a time"): every resource page lists its key and
# ModificationTimestamp, Media and PropertyRooms a few more. A $select of only these may
# ask for up to KEY_ONLY_TOP_CEILING records a page, other queries for TOP_CEILING.
KEY_INDEX_COMMON = ("ModificationTimestamp",)
KEY_INDEX_EXTRAS: dict[str, tuple[str, ...]] = {
    "Media": ("MediaModificationTimestamp", "OriginatingSystemID", "ResourceRecordID",
              "ResourceRecordKey", "SourceSystemID"),
    "PropertyRooms": ("ListingId", "ListingKey"),
}


def key_index_fields(entity: EntityType) -> frozenset[str]:
    """The entity's InKeyIndex fields that its metadata declares."""
    extras = (*KEY_INDEX_COMMON, *KEY_INDEX_EXTRAS.get(entity.name, ()))
    return frozenset(entity.key) | {name for name in extras if name in entity.properties}


def top_ceiling(entity: EntityType, select: list[str] | None, expanding: bool) -> int:
    """300,000 when only InKeyIndex fields are selected (a census), else 1,000."""
    key_only = (select is not None and set(select) <= key_index_fields(entity)
                and not expanding)
    return KEY_ONLY_TOP_CEILING if key_only else TOP_CEILING


def _expansion(
    item: ExpandItem,
    entity: EntityType,
    suppressed: frozenset[str],
    entity_of: dict[str, EntityType],
) -> Expansion:
    if item.name not in entity.navigations:
        raise QueryError(
            f"The navigation property '{item.name}' is not in metadata for {entity.name}"
        )
    if item.name not in EXPANDABLE or item.name not in entity_of:
        raise QueryError(f"$expand of '{item.name}' is not supported")
    target = entity_of[item.name]
    select = None
    if item.select is not None and "*" not in item.select:
        check_fields(target, item.select, frozenset(), None)
        select = list(dict.fromkeys(item.select))
    if item.filter is not None:
        check_fields(target, sorted(fields_referenced(item.filter)), frozenset(), "$filter")
    orderby = tuple(item.orderby or ())
    check_fields(target, [name for name, _ in orderby], frozenset(), "$orderby")
    return Expansion(item.name, select, item.filter, orderby, item.top, item.skip or 0)
