"""Several feeds in one deployment: load_feeds (defaults, overrides, every error)."""

from __future__ import annotations

import dataclasses
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.feeds import DEFAULT_FEED, feed_variable, load_feeds
from trestle_tasks.core.settings import BY_ENV, FEED_SCOPED, SPECS, load_settings

MYSQL = "mysql+pymysql://etl:dbpass@127.0.0.1:3306/trestle"
PG = "postgresql+psycopg://etl:dbpass@127.0.0.1:5432/trestle"


def two_feeds(**extra: str) -> dict[str, str]:
    return {
        "TRESTLE_FEEDS": "north,south",
        "DATABASE_URL": MYSQL,
        "FEED_NORTH_TRESTLE_CLIENT_ID": "north-id",
        "FEED_NORTH_TRESTLE_CLIENT_SECRET": "north-secret",
        "FEED_SOUTH_TRESTLE_CLIENT_ID": "south-id",
        "FEED_SOUTH_TRESTLE_CLIENT_SECRET": "south-secret",
        **extra,
    }


def problems_of(environ: dict[str, str], env_file: object = None) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_feeds(environ, env_file=env_file)  # type: ignore[arg-type]
    assert str(caught.value).startswith("invalid settings: ")
    return caught.value.problems


# --- one feed: today's configuration --------------------------------------------------


def test_without_trestle_feeds_there_is_one_feed_read_as_load_settings_reads_it():
    environ = {"TRESTLE_CLIENT_ID": "id", "TRESTLE_CLIENT_SECRET": "s", "DATABASE_URL": MYSQL,
               "SYNC_INTERVAL_MINUTES": "7"}
    feeds = load_feeds(environ, env_file=None)
    assert list(feeds) == [DEFAULT_FEED]
    assert feeds[DEFAULT_FEED] == load_settings(environ, env_file=None)
    assert feeds[DEFAULT_FEED].feed == "default"
    assert feeds[DEFAULT_FEED].database_schema is None  # the URL's own database, as today


def test_without_trestle_feeds_problems_are_load_settings_problems():
    environ = {"TRESTLE_PAGE_SIZE": "0"}
    with pytest.raises(ConfigurationError) as expected:
        load_settings(environ, env_file=None)
    assert problems_of(environ) == expected.value.problems
    assert load_feeds({}, env_file=None, require_credentials=False)[
        DEFAULT_FEED].client_id is None


def test_a_feed_variable_without_trestle_feeds_is_an_error_other_feed_names_are_not_ours():
    environ = {"TRESTLE_CLIENT_ID": "id", "TRESTLE_CLIENT_SECRET": "s",
               "FEED_NORTH_TRESTLE_CLIENT_ID": "north", "FEED_READER_HOME": "/srv"}
    [problem] = problems_of(environ)
    assert problem.startswith("FEED_NORTH_TRESTLE_CLIENT_ID: ")
    assert "TRESTLE_FEEDS is not set" in problem
    del environ["FEED_NORTH_TRESTLE_CLIENT_ID"]
    assert list(load_feeds(environ, env_file=None)) == ["default"]


def test_database_schema_is_read_for_the_single_feed_too():
    environ = {"TRESTLE_CLIENT_ID": "id", "TRESTLE_CLIENT_SECRET": "s",
               "DATABASE_URL": PG, "DATABASE_SCHEMA": "mls"}
    assert load_feeds(environ, env_file=None)["default"].database_schema == "mls"


# --- several feeds ---------------------------------------------------------------------


def test_each_feed_overlays_its_own_variables_on_the_global_ones_in_order():
    feeds = load_feeds(two_feeds(
        SYNC_INTERVAL_MINUTES="5", TRESTLE_RESOURCES="Property,Member",
        FEED_SOUTH_SYNC_INTERVAL_MINUTES="15", FEED_SOUTH_TRESTLE_RESOURCES="Property",
        FEED_NORTH_SYNC_MAX_CONCURRENT_WINDOWS="2",
        FEED_NORTH_TRESTLE_BASE_URL="https://north.example/odata/",
        REDIS_URL="redis://redis.example:6400/4"), env_file=None)
    assert list(feeds) == ["north", "south"]
    north, south = feeds["north"], feeds["south"]
    assert (north.feed, south.feed) == ("north", "south")
    assert (north.client_id, south.client_id) == ("north-id", "south-id")
    assert north.client_secret is not None and north.client_secret.reveal() == "north-secret"
    assert (north.sync_interval_minutes, south.sync_interval_minutes) == (5.0, 15.0)
    assert (north.resources, south.resources) == (("Property", "Member"), ("Property",))
    assert (north.max_concurrent_windows, south.max_concurrent_windows) == (2, 8)
    assert north.base_url == "https://north.example/odata"
    assert south.base_url == "https://api.cotality.com/trestle/odata"
    assert north.redis_url == south.redis_url == "redis://redis.example:6400/4"
    assert north.feed_names == south.feed_names == ("north", "south")


@pytest.mark.parametrize("url", [MYSQL, PG])
def test_a_feed_other_than_default_gets_a_schema_of_its_own(url):
    feeds = load_feeds(two_feeds(DATABASE_URL=url, FEED_SOUTH_DATABASE_SCHEMA="mls_south",
                                 TRESTLE_FEEDS="default,north,south",
                                 TRESTLE_CLIENT_ID="d", TRESTLE_CLIENT_SECRET="d"),
                       env_file=None)
    assert {n: f.database_schema for n, f in feeds.items()} == {
        "default": None, "north": "feed_north", "south": "mls_south"}
    assert {f.database_url for f in feeds.values()} == {url}


def test_on_sqlite_a_feed_other_than_default_needs_a_database_file_of_its_own(tmp_path):
    base = two_feeds(DATABASE_URL=f"sqlite:///{tmp_path}/all.sqlite3",
                     FEED_SOUTH_DATABASE_URL=f"sqlite:///{tmp_path}/south.sqlite3")
    [problem] = problems_of(base)
    assert problem.startswith("FEED_NORTH_DATABASE_URL: is required: feed north is on SQLite")
    feeds = load_feeds({**base, "FEED_NORTH_DATABASE_URL": f"sqlite:///{tmp_path}/n.sqlite3"},
                       env_file=None)
    assert [f.database_schema for f in feeds.values()] == [None, None]
    [problem] = problems_of({**base, "FEED_NORTH_DATABASE_SCHEMA": "north"})
    assert problem.startswith("FEED_NORTH_DATABASE_SCHEMA='north': SQLite has no schemas")


@pytest.mark.parametrize("names, fragment", [
    ("North", "not feed names: 'North'"),
    ("north,north", "names a feed twice"),
    ("9lives", "not feed names"),
    ("a" * 32, "not feed names"),
    ("north,sou-th", "not feed names: 'sou-th'"),
    (" , ", "must name at least one feed"),
])
def test_feed_names_are_checked(names, fragment):
    [problem] = problems_of(two_feeds(TRESTLE_FEEDS=names))
    assert problem.startswith("TRESTLE_FEEDS=") and fragment in problem


@pytest.mark.parametrize("env", sorted(set(BY_ENV) - FEED_SCOPED))
def test_a_cluster_wide_variable_given_per_feed_is_named(env):
    [problem] = problems_of(two_feeds(**{f"FEED_SOUTH_{env}": "x"}))
    assert problem.startswith(f"FEED_SOUTH_{env}: {env} is cluster-wide")


def test_unknown_feeds_and_unknown_variables_are_errors_all_at_once():
    problems = problems_of(two_feeds(
        FEED_NORHT_TRESTLE_CLIENT_ID="typo", FEED_north_SYNC_WINDOW_SIZE="500",
        FEED_SOUTH_CLIENT_ID="x", FEED_SOUTH_REDIS_URL="redis://x",
        FEED_NORTH_TRESTLE_PAGE_SIZE="0", TRESTLE_HTTP_TIMEOUT="soon"))
    named = sorted(re.split(r"[=:]", p)[0] for p in problems)
    assert named == sorted(["FEED_NORHT_TRESTLE_CLIENT_ID", "FEED_north_SYNC_WINDOW_SIZE",
                            "FEED_SOUTH_CLIENT_ID", "FEED_SOUTH_REDIS_URL",
                            "FEED_NORTH_TRESTLE_PAGE_SIZE", "TRESTLE_HTTP_TIMEOUT"])
    assert any("names no feed of TRESTLE_FEEDS (north, south)" in p for p in problems)
    assert any("'CLIENT_ID' is not a setting (feed south)" in p for p in problems)
    # A bad global value read by both feeds is named once.
    assert sum(p.startswith("TRESTLE_HTTP_TIMEOUT") for p in problems) == 1


def test_names_holding_underscores_take_the_variable_that_exists():
    feeds = load_feeds({
        "TRESTLE_FEEDS": "a,a_trestle", "DATABASE_URL": MYSQL,
        "FEED_A_TRESTLE_CLIENT_ID": "a", "FEED_A_TRESTLE_CLIENT_SECRET": "a",
        "FEED_A_TRESTLE_TRESTLE_CLIENT_ID": "b", "FEED_A_TRESTLE_TRESTLE_CLIENT_SECRET": "b",
    }, env_file=None)
    assert [f.client_id for f in feeds.values()] == ["a", "b"]


def test_a_missing_credential_names_the_feed_variable():
    environ = two_feeds()
    del environ["FEED_SOUTH_TRESTLE_CLIENT_SECRET"]
    [problem] = problems_of(environ)
    assert problem.startswith("FEED_SOUTH_TRESTLE_CLIENT_SECRET: is required")
    feeds = load_feeds(environ, env_file=None, require_credentials=False)
    assert feeds["south"].client_secret is None


def test_two_feeds_on_one_credential_are_an_error():
    environ = two_feeds(FEED_SOUTH_TRESTLE_CLIENT_ID="north-id")
    [problem] = problems_of(environ)
    assert problem.startswith("feeds north and south use the same credential")
    # Another token URL is another credential (another Trestle, or a simulator).
    load_feeds({**environ, "FEED_SOUTH_TRESTLE_TOKEN_URL": "http://127.0.0.1:9/token"},
               env_file=None)
    # Without per-feed ids both take the global one: the same credential.
    shared = {k: v for k, v in two_feeds().items() if "CLIENT_ID" not in k}
    [problem] = problems_of({**shared, "TRESTLE_CLIENT_ID": "one"})
    assert "use the same credential" in problem


@pytest.mark.parametrize("extra", [
    {"FEED_SOUTH_DATABASE_SCHEMA": "feed_north"},
    {"FEED_SOUTH_DATABASE_SCHEMA": "FEED_NORTH"},  # one case apart: too close to be meant
    # A MySQL schema is a database: the default feed's URL database, named as a schema.
    {"TRESTLE_FEEDS": "default,north,south", "TRESTLE_CLIENT_ID": "d",
     "TRESTLE_CLIENT_SECRET": "d", "FEED_SOUTH_DATABASE_SCHEMA": "trestle"},
    {"FEED_SOUTH_DATABASE_URL": "mysql+pymysql://other:pw@127.0.0.1/x",
     "FEED_SOUTH_DATABASE_SCHEMA": "feed_north"},
])
def test_two_feeds_whose_tables_would_meet_are_an_error(extra):
    problems = problems_of(two_feeds(**extra))
    [problem] = problems
    assert "would keep their tables in the same place" in problem
    assert "dbpass" not in problem and "pw@" not in problem
    assert "FEED_SOUTH_DATABASE_SCHEMA or FEED_SOUTH_DATABASE_URL" in problem


def test_same_schema_on_other_servers_or_databases_is_fine():
    load_feeds(two_feeds(FEED_SOUTH_DATABASE_URL="mysql+pymysql://etl@10.0.0.2/trestle",
                         FEED_NORTH_DATABASE_SCHEMA="mls", FEED_SOUTH_DATABASE_SCHEMA="mls"),
               env_file=None)
    load_feeds(two_feeds(DATABASE_URL=PG, FEED_SOUTH_DATABASE_URL=PG.replace("trestle", "b"),
                         FEED_NORTH_DATABASE_SCHEMA="mls", FEED_SOUTH_DATABASE_SCHEMA="mls"),
               env_file=None)


@pytest.mark.parametrize("schema", ["1abc", "a-b", "a" * 65, "feed north"])
def test_schema_names_are_checked(schema):
    [problem] = problems_of(two_feeds(FEED_NORTH_DATABASE_SCHEMA=schema))
    assert problem.startswith("FEED_NORTH_DATABASE_SCHEMA=")
    assert "letter or _" in problem


def test_feeds_are_read_from_env_file_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in two_feeds(
        FEED_SOUTH_SYNC_INTERVAL_MINUTES="30").items()) + "\n")
    feeds = load_feeds({"FEED_SOUTH_SYNC_INTERVAL_MINUTES": "45"}, env_file=env_file)
    assert list(feeds) == ["north", "south"]
    assert feeds["south"].sync_interval_minutes == 45.0
    assert feeds["north"].client_id == "north-id"
    env_file.write_text(env_file.read_text() + "this is not a setting\n")
    problems = problems_of({}, env_file=env_file)
    assert any("could not be parsed" in p for p in problems)



def _public_text() -> str:
    """Everything the problems below say with placeholder secrets: a drawn "secret" found
    in it would be found without leaking."""
    try:
        load_feeds(_leaky_environ("placeholder-secret", "placeholder-pw"), env_file=None)
    except ConfigurationError as error:
        shown = load_feeds(two_feeds(FEED_SOUTH_DATABASE_URL=MYSQL.replace("/trestle", "/x")),
                           env_file=None)
        return str(error) + repr(shown) + " ".join(BY_ENV) + MYSQL + PG
    raise AssertionError("the environment below must have problems")


def _leaky_environ(client_secret: str, db_password: str) -> dict[str, str]:
    return two_feeds(
        FEED_NORTH_TRESTLE_CLIENT_SECRET=client_secret,
        FEED_SOUTH_DATABASE_URL=f"mysql+pymysql://etl:{db_password}@127.0.0.1/trestle",
        FEED_SOUTH_DATABASE_SCHEMA="feed_north",  # a clash that shows the URL
        FEED_SOUTH_TRESTLE_CLIENT_ID="north-id",  # a clash of credentials
        FEED_NORTH_TRESTLE_PAGE_SIZE="0", FEED_SOUTH_REDIS_URL=f"redis://:{db_password}@x")


_PUBLIC = _public_text()
_SECRET_TEXT = st.text(string.ascii_letters + string.digits + "!$%^*-_", min_size=8,
                       max_size=30).filter(lambda t: t not in _PUBLIC)


@given(_SECRET_TEXT, _SECRET_TEXT)
@settings(max_examples=40)
def test_secrets_never_show_in_problems(client_secret, db_password):
    environ = _leaky_environ(client_secret, db_password)
    with pytest.raises(ConfigurationError) as caught:
        load_feeds(environ, env_file=None)
    shown = str(caught.value) + " ".join(caught.value.problems)
    assert client_secret not in shown and db_password not in shown
    assert len(caught.value.problems) == 4
    del environ["FEED_NORTH_TRESTLE_PAGE_SIZE"], environ["FEED_SOUTH_REDIS_URL"]
    environ["FEED_SOUTH_TRESTLE_CLIENT_ID"] = "south-id"
    environ["FEED_SOUTH_DATABASE_SCHEMA"] = "other"
    feeds = load_feeds(environ, env_file=None)
    assert client_secret not in repr(feeds) and db_password not in repr(feeds)


# --- properties -------------------------------------------------------------------------

# Another valid value for each feed-scoped variable (credentials and schemas are drawn
# apart per feed, so no two feeds clash).
OTHER_VALUES = {
    "TRESTLE_TOKEN_URL": "https://token.example/connect/token",
    "TRESTLE_BASE_URL": "https://odata.example/odata",
    "TRESTLE_RESOURCES": "Property,Office",
    "TRESTLE_HTTP_TIMEOUT": "20",
    "TRESTLE_RETRY_BUDGET": "90",
    "TRESTLE_PAGE_SIZE": "250",
    "TRESTLE_QUOTA_PER_MINUTE": "120",
    "TRESTLE_QUOTA_PER_HOUR": "5000",
    "SYNC_WINDOW_SIZE": "5000",
    "SYNC_WINDOW_LANES": "1",
    "SYNC_INTERVAL_MINUTES": "30",
    "SYNC_MAX_CONCURRENT_WINDOWS": "2",
    "SYNC_RETRY_DELAY": "3",
    "SYNC_REPLICATION_MIN_RECORDS": "0",
    "SYNC_SETTLE_SECONDS": "5",
    "STORE_INDEXED_FIELDS": "Property.LivingArea",
    "STORE_DEFER_INDEXES": "false",
    "DATABASE_URL": PG,
    "DB_BATCH_SIZE": "200",
    "SYNC_POLL_QUOTA_SHARE": "0.02",
    "SYNC_POLL_MIN_SECONDS": "5",
    "SYNC_POLL_MAX_SECONDS": "600",
}
_PER_FEED_DRAWN = sorted(FEED_SCOPED - {"TRESTLE_CLIENT_ID", "TRESTLE_CLIENT_SECRET",
                                        "DATABASE_SCHEMA"})

feed_name = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)


@st.composite
def deployments(draw: st.DrawFn) -> tuple[list[str], dict[str, dict[str, str]]]:
    names = draw(st.lists(feed_name, min_size=1, max_size=5, unique=True))
    # No name may be another's prefix plus `_`: FEED_A_B_… would then be ambiguous to a
    # reader too (load_feeds settles it by which rest is a setting; tested above).
    names = [n for n in names if not any(o != n and n.startswith(o + "_") for o in names)]
    own = {name: {env: OTHER_VALUES[env] for env in
                  draw(st.lists(st.sampled_from(_PER_FEED_DRAWN), unique=True))}
           for name in names}
    for i, name in enumerate(names):
        own[name]["TRESTLE_CLIENT_ID"] = f"client-{i}"
        own[name]["TRESTLE_CLIENT_SECRET"] = f"secret-{i}"
        if draw(st.booleans()):
            own[name]["DATABASE_SCHEMA"] = f"s{i}_{name}"
    return names, own


@given(deployments())
@settings(max_examples=60, deadline=None)
def test_each_feed_is_load_settings_of_the_overlaid_environment(deployment):
    names, own = deployment
    environ = {"TRESTLE_FEEDS": ",".join(names), "DATABASE_URL": MYSQL,
               "REDIS_URL": "redis://redis.example:6400/3", "SYNC_INTERVAL_MINUTES": "9",
               **{feed_variable(n, env): value for n in names for env, value in own[n].items()}}
    feeds = load_feeds(environ, env_file=None)
    assert list(feeds) == names
    shared = {k: v for k, v in environ.items() if not k.startswith("FEED_")}
    for name in names:
        alone = load_settings({**shared, **own[name]}, env_file=None)
        schema = own[name].get("DATABASE_SCHEMA")
        if schema is None and name != DEFAULT_FEED:
            schema = f"feed_{name}"
        assert feeds[name] == dataclasses.replace(alone, feed=name, database_schema=schema)


def test_readme_lists_exactly_the_feed_scoped_variables():
    readme = (REPO_ROOT / "docs" / "configuration.md").read_text()
    section = readme.split("\n## Several feeds\n", 1)[1].split("\n## ", 1)[0]
    listed = section.split("Per feed (", 1)[1].split(")", 1)[0]
    assert set(re.findall(r"`([A-Z_]+)`", listed)) == set(FEED_SCOPED)
    assert "`TRESTLE_FEEDS`" in readme and "`DATABASE_SCHEMA`" in readme


def test_feed_scoped_names_are_settings():
    assert set(FEED_SCOPED) <= {spec.env for spec in SPECS}


def test_a_feed_may_cap_its_own_pace_below_the_quota():
    """FEED_<NAME>_TRESTLE_QUOTA_PER_MINUTE / _PER_HOUR: the lower of the two, a minute's
    worth, paces that feed's limiter; the other feed follows the quota headers alone."""
    from trestle_tasks.coordination.quota import MINUTE_MS
    from trestle_tasks.worker import factory

    feeds = load_feeds(two_feeds(FEED_NORTH_TRESTLE_QUOTA_PER_MINUTE="100",
                                 FEED_NORTH_TRESTLE_QUOTA_PER_HOUR="3000"), env_file=None)
    north, south = feeds["north"], feeds["south"]
    assert (north.quota_per_minute, north.quota_per_hour) == (100, 3000)
    assert north.quota_cap_per_minute == 50.0 and south.quota_cap_per_minute is None
    clock = [1_700_000_000.0]
    limiter = factory.local_quota_limiter(north)
    limiter._clock = lambda: clock[0]  # type: ignore[attr-defined]
    waits = [limiter.try_acquire() for _ in range(3)]
    # A burst of two, then one request every minute / (50 - 2).
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(MINUTE_MS / 48, rel=1e-6)


@pytest.mark.parametrize(("variable", "value"), [
    ("TRESTLE_QUOTA_PER_MINUTE", "2"), ("TRESTLE_QUOTA_PER_HOUR", "100"),
    ("TRESTLE_QUOTA_PER_MINUTE", "lots")])
def test_a_quota_cap_too_small_to_pace_is_an_error(variable, value):
    [problem] = problems_of(two_feeds(**{f"FEED_SOUTH_{variable}": value}))
    assert problem.startswith(f"FEED_SOUTH_{variable}=")
