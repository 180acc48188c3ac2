"""Two resources never write to one table or view (issue 22, item 12): `OpenHouse` and
`Open_House` both fold to `open_house`, and `PropertyFields`' table is `Property`'s view
`property_fields`. Before, migrate took both and one resource's rows overwrote the
other's; now it refuses, naming both, before it creates anything."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.edmx_builder import edmx
from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.core.errors import SchemaMismatchError
from trestle_tasks.store.store import Store

DOCUMENT = edmx({"OpenHouse": [], "Open_House": [], "Property": [], "PropertyFields": [],
                 "Member": []})


def tables(target: StoreTarget) -> set[str]:
    inspector = sa.inspect(target.engine)
    return {name.lower() for name in (*inspector.get_table_names(schema=target.schema),
                                      *inspector.get_view_names(schema=target.schema))}


@pytest.mark.parametrize(("first", "second", "place"), [
    ("OpenHouse", "Open_House", "open_house"),
    ("Property", "PropertyFields", "property_fields"),
    ("PropertyFields", "Property", "property_fields"),
])
def test_migrate_refuses_a_table_or_view_another_resource_owns(
        store_target: StoreTarget, first: str, second: str, place: str) -> None:  # noqa: F811
    store = Store(store_target.engine, schema=store_target.schema)
    with pytest.raises(SchemaMismatchError) as together:
        store.migrate(DOCUMENT, [first, "Member", second])
    assert first in str(together.value) and second in str(together.value)
    assert place in str(together.value)
    assert tables(store_target) & {"open_house", "property", "property_fields",
                                   "member"} == set()  # refused before creating anything

    store.migrate(DOCUMENT, [first])  # alone, it is fine; then the other one is refused
    before = tables(store_target)
    with pytest.raises(SchemaMismatchError) as later:
        store.migrate(DOCUMENT, [second])
    assert first in str(later.value) and second in str(later.value)
    assert tables(store_target) == before
    assert store.resources() == [first]
    store.migrate(DOCUMENT, [first, "Member"])  # the owner migrates on as before
