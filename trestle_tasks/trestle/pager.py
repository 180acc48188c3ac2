"""Walking an OData collection to its end: small state machines over `TrestleClient`.

- `walk_links` follows `@odata.nextLink` exactly as given (replication mode, one frozen
  query) and is complete only when a page comes back without a link. A full last page
  followed by an empty page is the normal end.
- `walk_keyset` is for incremental windows over live data: rather than `$skip` links, whose
  offsets shift when records change under the walk, each page is a fresh query strictly
  after the last (ModificationTimestamp, key) seen, so ties larger than a page lose nothing.
- `census_versions` collects every (key, ModificationTimestamp) pair with queries that
  select only InKeyIndex fields (up to 300,000 a page), in keyset order on the key: what a
  reconcile compares with the store to find records missing, stale or gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from trestle_tasks.errors import UnexpectedResponseError
from trestle_tasks.timestamps import ODataTimestamp, common_timestamp_ticks
from trestle_tasks.trestle.client import Page, TrestleClient
from trestle_tasks.trestle.query import Expr, ODataQuery, after_keyset, all_of, gt, le

KEY_ONLY_TOP = 300_000
MAX_TOP = 1_000
TIMESTAMP_FIELD = "ModificationTimestamp"


def range_filter(lower_ticks: int | None, upper_ticks: int) -> Expr | None:
    return all_of(
        gt(TIMESTAMP_FIELD, ODataTimestamp(lower_ticks)) if lower_ticks is not None else None,
        le(TIMESTAMP_FIELD, ODataTimestamp(upper_ticks)),
    )


def walk_links(client: TrestleClient, first: ODataQuery | str) -> Iterator[Page]:
    """Every page of one query, following each nextLink as the server built it."""
    page = client.get_page(first)
    yield page
    seen = {page.url}
    while page.next_link is not None:
        if page.next_link in seen:
            raise UnexpectedResponseError(
                "the server sent a nextLink it had already sent: the walk would never end"
            )
        seen.add(page.next_link)
        page = client.get_page(page.next_link)
        yield page


def replication_query(query: ODataQuery, top: int = MAX_TOP) -> ODataQuery:
    """The replication form of a query: `replication=true`, no $skip, ordered by key."""
    return query.with_(replication=True, skip=None, top=top)


@dataclass(frozen=True)
class KeysetWindow:
    """Records with lower < (timestamp, key) and timestamp <= upper, in keyset order."""

    resource: str
    key_field: str
    timestamp_field: str = "ModificationTimestamp"
    lower: tuple[ODataTimestamp, str | None] | None = None  # key None: after the whole tick
    upper: ODataTimestamp | None = None


def walk_keyset(
    client: TrestleClient,
    window: KeysetWindow,
    *,
    select: tuple[str, ...] = (),
    page_size: int = MAX_TOP,
    base: ODataQuery | None = None,
) -> Iterator[Page]:
    """Every record of the window exactly once, even when records change during the walk.

    A record modified while the walk runs moves past `upper` and is left for the next run;
    the others keep their place in keyset order, so none is skipped or repeated.
    """
    if select and (window.key_field not in select or window.timestamp_field not in select):
        select = (*select, *(f for f in (window.key_field, window.timestamp_field)
                             if f not in select))
    query = (base or ODataQuery(window.resource)).with_(
        select=select,
        orderby=((window.timestamp_field, False), (window.key_field, False)),
        top=page_size,
        skip=None,
    )
    ceiling = le(window.timestamp_field, window.upper) if window.upper is not None else None
    cursor: tuple[ODataTimestamp, str | None] | None = window.lower
    while True:
        after = (
            after_keyset(window.timestamp_field, window.key_field, cursor)
            if cursor is not None else None
        )
        page = client.get_page(query.with_(filter=all_of(query.filter, ceiling, after)))
        yield page
        if page.next_link is None:
            return
        if not page.records:
            raise UnexpectedResponseError(
                f"{page.url} returned an empty page with a nextLink; the walk cannot advance"
            )
        last = page.records[-1]
        cursor = (_timestamp_of(last, window.timestamp_field, page.url),
                  _key_of(last, window.key_field, page.url))
        # nextLink on a full page may lead to an empty last page; asking after the cursor
        # gives the same answer, so we never follow the $skip link itself.


def census_versions(
    client: TrestleClient,
    resource: str,
    key_field: str,
    *,
    timestamp_field: str = "ModificationTimestamp",
    page_size: int = KEY_ONLY_TOP,
    within: Expr | None = None,
) -> Iterator[list[tuple[str, int | None]]]:
    """Every (key, ModificationTimestamp ticks) of the resource, a page at a time.

    Both fields are InKeyIndex fields, so Trestle serves them 300,000 to a request. Keyset
    on the key rather than the server's `$skip` links: a record inserted or deleted during
    the census cannot shift the pages under it. A record without a timestamp has None.
    `within` narrows the census (a run's time range, when planning its windows).
    """
    query = ODataQuery(resource, select=(key_field, timestamp_field),
                       orderby=((key_field, False),), top=page_size)
    after: str | None = None
    while True:
        page = client.get_page(query.with_(filter=all_of(
            within, gt(key_field, after) if after is not None else None)))
        versions = [(_key_of(record, key_field, page.url),
                     _optional_ticks(record, timestamp_field, page.url))
                    for record in page.records]
        yield versions
        if page.next_link is None:
            return
        if not versions:
            raise UnexpectedResponseError(
                f"{page.url} returned an empty page with a nextLink; the census cannot advance"
            )
        after = versions[-1][0]


def _optional_ticks(record: dict[str, object], field: str, url: str) -> int | None:
    value = record.get(field)
    if value is None:
        return None
    ticks = common_timestamp_ticks(value)  # a census reads 300,000 of them a request
    return ticks if ticks is not None else _timestamp_of(record, field, url).ticks


def _key_of(record: dict[str, object], key_field: str, url: str) -> str:
    key = record.get(key_field)
    if not isinstance(key, str) or not key:
        raise UnexpectedResponseError(f"{url}: a record has no usable {key_field}")
    return key


def _timestamp_of(record: dict[str, object], field: str, url: str) -> ODataTimestamp:
    value = record.get(field)
    try:
        return ODataTimestamp.parse(value)
    except ValueError:
        raise UnexpectedResponseError(
            f"{url}: a record's {field} is not a timestamp: {value!r}"
        ) from None
