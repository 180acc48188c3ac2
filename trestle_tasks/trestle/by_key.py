"""Fetching named records: `$filter` on their keys, packed into URLs of bounded length.

Trestle documents no URL length limit; its `text/html` error pages suggest IIS, whose
default query-string limit is 2,048 characters. A batch therefore holds as many
`Key eq '…'` terms as keep the encoded query string within `MAX_QUERY_CHARS` (1,900: room
for a proxy or gateway to add a parameter), about 40 sixteen-character keys, and each
batch is one request through the client (and so through the quota limiter) like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from trestle_tasks.trestle.client import Page, TrestleClient
from trestle_tasks.trestle.pager import MAX_TOP, walk_links
from trestle_tasks.trestle.query import Expand, Expr, ODataQuery, any_of, eq

MAX_QUERY_CHARS = 1900


class KeyTooLongError(ValueError):
    """One key alone does not fit in a URL of the allowed length."""


def key_batches(base: ODataQuery, key_field: str, keys: Iterable[str], *,
                max_query_chars: int = MAX_QUERY_CHARS,
                on_too_long: Callable[[str], None] | None = None) -> Iterator[ODataQuery]:
    """Queries of `base` filtered to consecutive runs of `keys`, each as long as fits.

    Greedy: a key joins the current batch while the encoded query string stays within
    `max_query_chars`; then the batch is yielded and the key starts the next one. A key
    that alone does not fit is given to `on_too_long` and left out — one such key must
    not stop the fetch of all the others — or, without `on_too_long`, raises
    KeyTooLongError.
    """
    batch: list[Expr] = []
    current: ODataQuery | None = None
    for key in keys:
        term = eq(key_field, key)
        candidate = base.with_(filter=any_of([*batch, term]))
        if len(candidate.query_string()) > max_query_chars:
            alone = base.with_(filter=any_of([term]))
            if len(alone.query_string()) > max_query_chars:
                if on_too_long is None:
                    raise KeyTooLongError(f"the key {key[:40]!r} alone makes a query string "
                                          f"longer than {max_query_chars} characters")
                on_too_long(key)
                continue  # the batch so far goes on filling with the next keys
            if current is not None:
                yield current
            batch, candidate = [], alone
        batch.append(term)
        current = candidate
    if current is not None:
        yield current


def fetch_by_keys(client: TrestleClient, resource: str, key_field: str, keys: Sequence[str],
                  *, expand: tuple[Expand, ...] = (),
                  orderby: tuple[tuple[str, bool], ...] | None = None,
                  max_query_chars: int = MAX_QUERY_CHARS,
                  on_too_long: Callable[[str], None] | None = None) -> Iterator[Page]:
    """The current version of each record named in `keys` (those still in the feed).

    A batch never holds more than `MAX_TOP` keys, so it is one page; its nextLink (a full
    page is always followed by one on Trestle) is still walked to the end. `key_field` may
    be a parent's key (open houses by ListingKey): then give an `orderby` that is unique,
    since several rows may share one key and the walk pages with `$skip` links. A key too
    long for any URL goes to `on_too_long` (see `key_batches`).
    """
    base = ODataQuery(resource, top=MAX_TOP, orderby=orderby or ((key_field, False),),
                      expand=expand)
    for start in range(0, len(keys), MAX_TOP):
        for query in key_batches(base, key_field, keys[start:start + MAX_TOP],
                                 max_query_chars=max_query_chars,
                                 on_too_long=on_too_long):
            yield from walk_links(client, query)
