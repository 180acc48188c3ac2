"""Normalization: column names are consistent and collision-free for arbitrary
field names — 200-character, non-ASCII, punctuation, names equal but for case — and every
column created in a real database maps back to exactly one field."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.store_data import unique_prefix
from tests.store_fixtures import StoreTarget, module_store_target  # noqa: F401
from trestle_tasks.store.naming import (
    MAX_IDENTIFIER,
    RESERVED_COLUMNS,
    assign_column_names,
    is_plain_identifier,
    table_name,
)

RESO_LIKE = st.from_regex(r"[A-Z][A-Za-z0-9]{0,40}", fullmatch=True)
ANY_NAME = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)
LONG = st.text(st.characters(blacklist_categories=("Cs",)), min_size=150, max_size=200)
NAMES = st.lists(st.one_of(RESO_LIKE, ANY_NAME, LONG, st.sampled_from(RESERVED_COLUMNS),
                           RESO_LIKE.map(str.lower), RESO_LIKE.map(str.upper)),
                 min_size=1, max_size=30, unique=True)


def check_assignment(names: list[str], mapping: dict[str, str]) -> None:
    assert set(mapping) >= set(names)
    columns = list(mapping.values())
    folded = [c.lower() for c in columns]
    assert len(set(folded)) == len(folded), "two columns equal when case is ignored"
    assert not set(folded) & {r.lower() for r in RESERVED_COLUMNS}
    for name, column in mapping.items():
        assert is_plain_identifier(column) and len(column) <= MAX_IDENTIFIER
        if is_plain_identifier(name) and name.lower() not in {r.lower() for r in
                                                               RESERVED_COLUMNS}:
            # A usable RESO name is kept unless an earlier name took it (ignoring case).
            earlier = [n for n in names[: names.index(name)] if mapping[n].lower() ==
                       name.lower()]
            assert column == name or earlier


@given(names=NAMES)
def test_assignment_is_collision_free_and_deterministic(names: list[str]) -> None:
    mapping = assign_column_names(names)
    check_assignment(names, mapping)
    assert assign_column_names(names) == mapping  # same input, same columns


@given(first=NAMES, later=NAMES)
def test_assigned_names_never_change(first: list[str], later: list[str]) -> None:
    taken = assign_column_names(first)
    grown = assign_column_names(later, taken=taken)
    assert {k: grown[k] for k in taken} == taken
    names = first + [n for n in later if n not in first]
    check_assignment(names, grown)


@given(resource=ANY_NAME)
def test_table_names_are_plain_identifiers(resource: str) -> None:
    name = table_name(resource)
    assert is_plain_identifier(name) and name == name.lower()
    assert table_name(resource) == name


def test_table_names_follow_the_contract() -> None:
    assert [table_name(r) for r in ("Property", "Member", "Office", "OpenHouse", "Media",
                                    "OUID", "PropertyGreenVerification")] == [
        "property", "member", "office", "open_house", "media", "ouid",
        "property_green_verification"]


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    return module_store_target


@given(names=NAMES)
def test_columns_in_the_database_trace_back_to_their_fields(target: StoreTarget,
                                                            names: list[str]) -> None:
    mapping = assign_column_names(names)
    # The scaffold's own key column is `id`: a field column of that name (any case, for
    # SQLite and MariaDB) would clash with the test table, not with anything of ours.
    assume("id" not in {column.lower() for column in mapping.values()})
    table = sa.Table(f"n_{unique_prefix()}", sa.MetaData(schema=target.schema),
                     sa.Column("id", sa.Integer, primary_key=True),
                     *[sa.Column(column, sa.String(20)) for column in mapping.values()])
    table.create(target.engine)
    try:
        with target.engine.begin() as conn:
            # One dict, not keyword arguments: a column may be called `fn` (or `self`).
            conn.execute(table.insert().values({"id": 1, **{c: f"v{i}" for i, c in
                                                            enumerate(mapping.values())}}))
        reflected = sa.inspect(target.engine).get_columns(table.name, schema=target.schema)
        back = {c["name"] for c in reflected} - {"id"}
        assert back == set(mapping.values())
        by_column = {column: field for field, column in mapping.items()}
        assert len(by_column) == len(mapping)
        with target.engine.connect() as conn:
            row = conn.execute(sa.select(table)).mappings().one()
        for i, column in enumerate(mapping.values()):
            assert row[column] == f"v{i}"
    finally:
        table.drop(target.engine)
