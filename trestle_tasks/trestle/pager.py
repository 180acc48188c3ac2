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

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from trestle_tasks.core.errors import TopCeilingError, UnexpectedResponseError
from trestle_tasks.core.masking import mask_url
from trestle_tasks.core.timestamps import ODataTimestamp, census_ticks, common_timestamp_ticks
from trestle_tasks.trestle.client import Page, TrestleClient
from trestle_tasks.trestle.query import Expr, ODataQuery, after_keyset, all_of, gt, le

KEY_ONLY_TOP = 300_000
MAX_TOP = 1_000
TIMESTAMP_FIELD = "ModificationTimestamp"

log = logging.getLogger(__name__)


def range_filter(lower_ticks: int | None, upper_ticks: int) -> Expr | None:
    return all_of(
        gt(TIMESTAMP_FIELD, ODataTimestamp(lower_ticks)) if lower_ticks is not None else None,
        le(TIMESTAMP_FIELD, ODataTimestamp(upper_ticks)),
    )


def walk_links(client: TrestleClient, first: ODataQuery | str) -> Iterator[Page]:
    """Every page of one query, following each nextLink as the server built it.

    A link sent twice, or a page whose records are those of the page before under a new
    link, means the server is not moving through the collection: the walk would never
    end (a 3-hour soft limit on a worker, forever under `--local`), so it stops."""
    page = client.get_page(first)
    yield page
    seen = {page.url}
    while page.next_link is not None:
        if page.next_link in seen:
            raise UnexpectedResponseError(
                f"{mask_url(page.url)} sent a nextLink it had already sent "
                f"({mask_url(page.next_link)}): the server is not advancing through the "
                "collection and the walk would never end; stopped it"
            )
        seen.add(page.next_link)
        previous, page = page, client.get_page(page.next_link)
        if page.records and _same_records(previous.records, page.records):
            raise UnexpectedResponseError(
                f"{mask_url(page.url)} answered the records of the page before it again: "
                "the server is not advancing through the collection and the walk would "
                "never end; stopped it"
            )
        yield page


def _same_records(before: list[dict[str, object]], after: list[dict[str, object]]) -> bool:
    """Whether a page repeats the one before (first and last record: cheap, and two pages
    of one walk never share both)."""
    return (len(before) == len(after) and before[0] == after[0]
            and before[-1] == after[-1])


def replication_query(query: ODataQuery, top: int = MAX_TOP) -> ODataQuery:
    """The replication form of a query: `replication=true`, no $skip, ordered by key."""
    return query.with_(replication=True, skip=None, top=top)


@dataclass(frozen=True)
class KeysetRange:
    """Records with lower < (timestamp, key) and timestamp <= upper, in keyset order."""

    resource: str
    key_field: str
    timestamp_field: str = "ModificationTimestamp"
    lower: tuple[ODataTimestamp, str | None] | None = None  # key None: after the whole tick
    upper: ODataTimestamp | None = None


def walk_keyset(
    client: TrestleClient,
    window: KeysetRange,
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
    passed: set[tuple[int, str | None]] = set()  # every cursor of this walk so far
    while True:
        after = (
            after_keyset(window.timestamp_field, window.key_field, cursor)
            if cursor is not None else None
        )
        page, query = _page_within_ceiling(client, query, all_of(query.filter, ceiling, after))
        _check_in_window(page, window, cursor)
        yield page
        if page.next_link is None:
            return
        if not page.records:
            raise UnexpectedResponseError(
                f"{page.url} returned an empty page with a nextLink; the walk cannot advance"
            )
        last = page.records[-1]
        previous = cursor
        cursor = (_timestamp_of(last, window.timestamp_field, page.url),
                  _key_of(last, window.key_field, page.url))
        _check_advanced(page.url, previous, cursor, passed, window)
        # nextLink on a full page may lead to an empty last page; asking after the cursor
        # gives the same answer, so we never follow the $skip link itself.


def _page_within_ceiling(client: TrestleClient, query: ODataQuery,
                         where: Expr | None) -> tuple[Page, ODataQuery]:
    """The page, and the query the walk goes on with: a server that refuses the page size
    (400 naming its largest `$top`: Trestle may lower it when photos come inline) is asked
    again with pages that size, for the rest of the walk too."""
    while True:
        try:
            return client.get_page(query.with_(filter=where)), query
        except TopCeilingError as error:
            if not 0 < error.ceiling < (query.top or 0):
                raise  # not smaller than what was asked: asking again would not help
            log.warning("%s takes at most %d records a page here, not %s: the walk goes on "
                        "with pages of %d (set TRESTLE_PAGE_SIZE to it to skip this request)",
                        query.resource, error.ceiling, query.top, error.ceiling)
            query = query.with_(top=error.ceiling)


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
    passed: set[str] = set()  # every key cursor of this census so far
    while True:
        # Only the two fields are decoded (a page is 300,000 records), and nothing of a
        # page is held while the next one arrives: memory is one page's at any size.
        page = client.get_slim_page(query.with_(filter=all_of(
            within, gt(key_field, after) if after is not None else None)),
            (key_field, timestamp_field))
        url, next_link = page.url, page.next_link
        versions = [(_usable_key(key, key_field, url), _census_ticks_of(stamp))
                    for key, stamp in page.rows]
        del page
        if after is not None and versions and versions[0][0] == after:
            raise _not_advancing(url, f"{key_field} gt {after!r}",
                                 f"the record {after!r} itself")
        last = versions[-1][0] if versions else None
        yield versions
        del versions
        if next_link is None:
            return
        if last is None:
            raise UnexpectedResponseError(
                f"{url} returned an empty page with a nextLink; the census cannot advance"
            )
        # Keys are compared by the server's collation, which Python cannot know: a key
        # seen before as the last of a page is the sure sign the census goes round.
        if last in passed or last == after:
            raise _not_advancing(url, f"{key_field} gt {after!r}", f"again up to {last!r}")
        after = last
        passed.add(after)


def _check_in_window(page: Page, window: KeysetRange,
                     cursor: tuple[ODataTimestamp, str | None] | None) -> None:
    """Every record of a keyset page is inside what was asked for: after the cursor and
    at most `upper`. A server that ignores the filter answers the same records whatever
    the cursor, and the walk would go round them until a time limit (forever under
    `--local`). Timestamps are compared; keys only for equality (a key's order is the
    server's collation). A record whose timestamp does not parse is the loader's to
    reject, not a reason to stop the walk."""
    lower = cursor[0].ticks if cursor is not None else None
    upper = window.upper.ticks if window.upper is not None else None
    for record in page.records:
        ticks = _ticks_or_none(record.get(window.timestamp_field))
        if ticks is None:
            continue
        if upper is not None and ticks > upper:
            raise _outside(page.url, window, record, f"after the window's end {window.upper}")
        if cursor is None or lower is None or ticks > lower:
            continue
        if ticks < lower or cursor[1] is None or record.get(window.key_field) == cursor[1]:
            raise _outside(page.url, window, record,
                           f"not after the cursor ({cursor[0]}, {cursor[1]!r})")


def _check_advanced(url: str, previous: tuple[ODataTimestamp, str | None] | None,
                    cursor: tuple[ODataTimestamp, str | None],
                    passed: set[tuple[int, str | None]], window: KeysetRange) -> None:
    """The cursor moved past every earlier one (by timestamp; by key within one tick,
    where only a repeat can be told without the server's collation)."""
    mark = (cursor[0].ticks, cursor[1])
    if mark in passed or (previous is not None and cursor[0].ticks < previous[0].ticks):
        raise _not_advancing(
            url, f"after ({previous[0] if previous else None}, "
                 f"{previous[1] if previous else None!r})",
            f"a page ending at ({cursor[0]}, {cursor[1]!r}) again")
    passed.add(mark)


def _not_advancing(url: str, asked: str, got: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"{mask_url(url)}: asked for records {asked}, the server answered {got}: it ignores "
        "the filter and the cursor does not advance, so the walk would never end; stopped "
        "it (not retried: the server must be fixed)"
    )


def _outside(url: str, window: KeysetRange, record: dict[str, object],
             where: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"{mask_url(url)} answered a record outside the range asked for "
        f"({window.key_field} {record.get(window.key_field)!r}, {window.timestamp_field} "
        f"{record.get(window.timestamp_field)!r}: {where}): the server ignores the filter "
        "and the walk would never end; stopped it (not retried: the server must be fixed)"
    )


def _ticks_or_none(value: object) -> int | None:
    ticks = common_timestamp_ticks(value)  # the fast path: every record of a page
    if ticks is not None or value is None:
        return ticks
    try:
        return ODataTimestamp.parse(value).ticks
    except (ValueError, OverflowError):
        return None


def _census_ticks_of(value: object) -> int | None:
    if value is None:
        return None
    ticks = common_timestamp_ticks(value)  # a census reads 300,000 of them a request
    if ticks is not None:
        return ticks
    # One record's unreadable timestamp (`0000-00-00T00:00:00Z`, or an instant past year
    # 9999) must not fail the census, or the resource never reconciles or plans again: it
    # counts as unknown, so the record is fetched by key and the loader rejects it alone.
    return census_ticks(value)


def _key_of(record: dict[str, object], key_field: str, url: str) -> str:
    return _usable_key(record.get(key_field), key_field, url)


def _usable_key(key: object, key_field: str, url: str) -> str:
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
