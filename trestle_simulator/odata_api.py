"""The OData resources: service document, $metadata, collection pages, replication, $count.

Pages are built here; authentication, quotas, faults and latency wrap them in `app.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Response

from .config import SimulatorConfig
from .dataset import Record, ResourceData, Row
from .engine import Search, find
from .feed import Feed
from .metadata import EntityType
from .odata_filter import Timestamp, evaluate, sort_key
from .query import EXPANDABLE, CollectionQuery, Expansion, QueryError, parse_collection_query
from .replication import CursorExpired, ReplicationCursors
from .responses import odata_response, text_response

DEFAULT_CHILD_ORDER = {"Media": (("Order", False),)}
LINK_SAFE = "$,()':"  # kept readable in next links; spaces and '+' are still escaped
ROW_CAP_MESSAGE = "Error getting data!"
EXPIRED_MESSAGE = (
    "The replication link has expired or is unknown (replication links expire after "
    "{ttl:g} seconds without a request); start the replication query again"
)


@dataclass
class Page:
    response: Response
    rows: int  # top-level records returned, for latency and stats


class ODataService:
    def __init__(
        self,
        feed: Feed,
        config: Callable[[], SimulatorConfig],
        cursors: ReplicationCursors,
        empty_expand: Callable[[], bool],
    ) -> None:
        self._feed = feed
        self._config = config
        self._cursors = cursors
        self._empty_expand = empty_expand

    # -- documents

    def service_document(self, root: str) -> Response:
        sets = [
            {"name": name, "kind": "EntitySet", "url": name}
            for name in self._feed.schema.entity_sets
        ]
        return odata_response({"@odata.context": f"{root}/$metadata", "value": sets})

    def metadata(self) -> Response:
        response = Response(self._feed.schema.xml, content_type="application/xml")
        response.headers["OData-Version"] = "4.0"
        return response

    # -- collections

    def _parse(self, resource: str, params: list[tuple[str, str]]) -> CollectionQuery:
        schema = self._feed.schema
        entity = schema.entity_type_of(resource)
        suppressed = self._feed.suppressed if resource == "Property" else frozenset()
        expandable = {
            name: schema.entity_type_of(name) for name in EXPANDABLE if name in schema.entity_sets
        }
        return parse_collection_query(params, entity, suppressed, expandable,
                                      expand_top_ceiling=self._config().expand_top_ceiling)

    def collection(self, resource: str, params: list[tuple[str, str]], root: str) -> Page:
        query = self._parse(resource, params)
        data = self._feed.data(resource)
        if query.replication:
            return self._replication_page(resource, query, "", root, count=query.count)
        if query.skip + query.top > self._config().standard_query_row_cap:
            raise QueryError(ROW_CAP_MESSAGE, status=500, code="InternalServerError")
        found = find(
            data,
            Search(
                query.expr, query.filter_text, query.orderby, query.skip, query.top, query.count
            ),
        )
        link = None
        if query.top > 0 and len(found.rows) == query.top:
            # Full page: always offer a next link, even when nothing follows (Trestle does).
            link = self._skip_link(root, resource, query)
        return self._page(resource, query, data, found.rows, found.total, link, root)

    def entity(self, resource: str, key: str, params: list[tuple[str, str]], root: str) -> Page:
        """`Property('key')`: one record, with $select and $expand honoured."""
        query = self._parse(resource, params)
        data = self._feed.data(resource)
        row = data.get(key)
        if row is None:
            raise QueryError(f"No {resource} record with key '{key}'", 404, "NotFound")
        record = self._render(data, [row], query)[0]
        body = {"@odata.context": f"{root}/$metadata#{resource}/$entity", **record}
        return Page(odata_response(body), 1)

    def count(self, resource: str, params: list[tuple[str, str]]) -> Response:
        query = self._parse(resource, params)
        found = find(
            self._feed.data(resource), Search(query.expr, query.filter_text, (), 0, 0, True)
        )
        return text_response(str(found.total or 0))

    def replication(self, resource: str, cursor_id: str, root: str) -> Page:
        ttl = self._config().replication_link_ttl_s
        try:
            cursor = self._cursors.take(cursor_id, ttl)
        except CursorExpired:
            raise QueryError(EXPIRED_MESSAGE.format(ttl=ttl)) from None
        if cursor.resource != resource:
            raise QueryError(EXPIRED_MESSAGE.format(ttl=ttl))
        return self._replication_page(resource, cursor.query, cursor.after_key, root, count=False)

    def _replication_page(
        self, resource: str, query: CollectionQuery, after_key: str, root: str, count: bool
    ) -> Page:
        """Key order from `after_key`; $orderby is not honoured (Trestle's is unknown)."""
        data = self._feed.data(resource)
        found = find(
            data,
            Search(query.expr, query.filter_text, (), 0, query.top + 1, count, after_key=after_key),
        )
        rows = found.rows[: query.top]
        link = None
        if len(found.rows) > query.top and rows:
            # Each link names a fixed position, so retrying a failed page is safe.
            cursor_id = self._cursors.open(resource, query, rows[-1].key)
            link = f"{root}/{resource}/replication?id={cursor_id}"
        return self._page(resource, query, data, rows, found.total, link, root)

    def _skip_link(self, root: str, resource: str, query: CollectionQuery) -> str:
        params = [(name, value) for name, value in query.params if name != "$skip"]
        params.append(("$skip", str(query.skip + query.top)))
        encoded = urlencode(params, quote_via=quote, safe=LINK_SAFE)
        return f"{root}/{resource}?{encoded}"

    def _page(
        self,
        resource: str,
        query: CollectionQuery,
        data: ResourceData,
        rows: list[Row],
        total: int | None,
        link: str | None,
        root: str,
    ) -> Page:
        body: dict[str, Any] = {"@odata.context": f"{root}/$metadata#{resource}"}
        if total is not None:
            body["@odata.count"] = total
        if query.select is None and not query.expand:
            body["value"] = [data.served(row) for row in rows]  # whole records, as stored
        else:
            body["value"] = self._render(data, rows, query)
        if link is not None:
            body["@odata.nextLink"] = link
        return Page(odata_response(body), len(rows))

    # -- records

    def _render(self, data: ResourceData, rows: list[Row], query: CollectionQuery) -> list[Record]:
        select = query.select
        if select is not None and not query.expand and set(select) <= data.shape.light_fields:
            # Key census and timestamp scans: answer from the index, no record generation.
            return [_from_light(data.light(row), select) for row in rows]
        entity = self._feed.schema.entity_type_of(data.shape.name)
        rendered = []
        for row in rows:
            record = data.record(row)
            if select is None and not query.expand:
                rendered.append(record)  # serialized as is; nothing here modifies it
                continue
            out = dict(record) if select is None else {name: record.get(name) for name in select}
            for expansion in query.expand:
                out[expansion.name] = self._expand(entity, record, expansion)
            rendered.append(out)
        return rendered

    def _expand(self, entity: EntityType, parent: Record, expansion: Expansion) -> list[Record]:
        if (
            expansion.name == "Media"
            and isinstance(parent.get("PhotosCount"), int)
            and parent["PhotosCount"] > 0
            and self._empty_expand()
        ):
            return []  # measured on Trestle under quota pressure: HTTP 200, no media
        child = self._feed.data(expansion.name)
        parent_key = parent.get(entity.key[0]) if entity.key else None
        if child.shape.parent_field is None or not isinstance(parent_key, str):
            return []
        records = [child.record(row) for row in child.children(parent_key)]
        if expansion.expr is not None:
            records = [record for record in records if evaluate(expansion.expr, record)]
        order = list(expansion.orderby or DEFAULT_CHILD_ORDER.get(expansion.name, ()))
        order.append((child.shape.key_field, False))
        for name, descending in reversed(order):
            records.sort(key=lambda record: sort_key(record.get(name)), reverse=descending)
        stop = None if expansion.top is None else expansion.skip + expansion.top
        records = records[expansion.skip : stop]
        if expansion.select is None:
            return [dict(record) for record in records]
        return [{name: record.get(name) for name in expansion.select} for record in records]


def _from_light(light: Record, select: list[str]) -> Record:
    out: Record = {}
    for name in select:
        value = light.get(name)
        out[name] = value.text if isinstance(value, Timestamp) else value
    return out
