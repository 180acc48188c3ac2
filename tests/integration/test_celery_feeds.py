"""Several feeds through real Celery workers: one simulator serving two feeds (two
credentials, overlapping listing keys, different data), one MariaDB server, each feed's
tables in a schema of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.redis_space import own_credential, redis_url
from trestle_simulator.config import FeedConfig, SimulatorConfig
from trestle_simulator.server import start_in_thread
from trestle_tasks.core.feeds import load_feeds
from trestle_tasks.worker import factory

from .sync_fixtures import ADMIN_URLS, canonical, create_database, drop_database
from .test_celery_sync import clean_redis, start_worker, stop, trestle_etl  # noqa: F401
from .test_metrics import scrape

pytestmark = pytest.mark.integration

RESOURCES = ("Property", "Member", "Office")


@pytest.fixture
def two_feeds():
    config = SimulatorConfig(records=120, minute_quota=None, hour_quota=None, feeds={
        "north": FeedConfig(credentials={"north-id": "north-secret"}, seed=11),
        "south": FeedConfig(credentials={"south-id": "south-secret"}, seed=22),
    })
    sim = start_in_thread(config)
    for client_id in ("north-id", "south-id"):
        own_credential(sim.token_url, client_id)
    yield sim
    sim.stop()


@pytest.fixture
def feed_database(tmp_path):
    url, name = create_database("mariadb", tmp_path)
    schemas = {feed: f"{name}_{feed}" for feed in ("north", "south")}
    yield url, schemas
    drop_database("mariadb", name)
    engine = sa.create_engine(ADMIN_URLS["mariadb"], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for schema in schemas.values():
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema}`")
    engine.dispose()


def feeds_env(sim, url: str, schemas: dict[str, str], **extra: str) -> dict[str, str]:
    """The workers' environment: one token and OData URL (one Trestle host), a credential
    and a schema per feed."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "CELERY_", "SYNC_",
                                "FEED_"))}
    env.update({"TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                "DATABASE_URL": url, "REDIS_URL": redis_url("celery"),
                "TRESTLE_RESOURCES": ",".join(RESOURCES), "TRESTLE_FEEDS": "north,south",
                "LOG_FORMAT": "json"})
    for feed, schema in schemas.items():
        env.update({f"FEED_{feed.upper()}_TRESTLE_CLIENT_ID": f"{feed}-id",
                    f"FEED_{feed.upper()}_TRESTLE_CLIENT_SECRET": f"{feed}-secret",
                    f"FEED_{feed.upper()}_DATABASE_SCHEMA": schema})
    env.update(extra)
    return env


def stored(env: dict[str, str], feed: str, resource: str) -> set[str]:
    settings = load_feeds(env, env_file=None, require_credentials=False)[feed]
    store = factory.store(settings)
    try:
        return {canonical(r) for r in store.records(resource)}
    finally:
        store.dispose()
        factory._per_process.clear()


def scrape_metrics(env: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape of `trestle-etl metrics` started with `env` (every feed)."""
    process = subprocess.Popen([sys.executable, "-m", "trestle_tasks", "metrics", "--port", "0"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "/metrics" in line, process.stderr.read() if process.poll() else line  # type: ignore[union-attr]
        return scrape(line.split("at ", 1)[1].split(";", 1)[0])
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_two_feeds_with_overlapping_keys_stay_apart_and_both_equal_their_feeds(
        clean_redis, two_feeds, feed_database):  # noqa: F811
    sim = two_feeds
    url, schemas = feed_database
    env = feeds_env(sim, url, schemas, SYNC_WINDOW_SIZE="300")
    workers = [start_worker(env, f"feeds{i}-{uuid.uuid4().hex[:6]}") for i in range(2)]
    try:
        result = trestle_etl(env, "sync", "--wait", "--timeout", "200")
        assert result.returncode == 0, result.stderr
        assert "north/Property" in result.stdout and "south/Property" in result.stdout
        north, south = sim.feed("north"), sim.feed("south")
        keys = {r["ListingKey"] for r in north.records("Property")}
        assert keys == {r["ListingKey"] for r in south.records("Property")}  # they overlap
        for resource in RESOURCES:
            assert stored(env, "north", resource) == {canonical(r)
                                                      for r in north.records(resource)}
            assert stored(env, "south", resource) == {canonical(r)
                                                      for r in south.records(resource)}
        assert stored(env, "north", "Property") != stored(env, "south", "Property")
        # One metrics endpoint serves both feeds, each series labelled with its feed.
        samples = scrape_metrics(env)
        for feed in ("north", "south"):
            for resource in RESOURCES:
                assert samples[("trestle_records_upserted_total",
                                (("feed", feed), ("resource", resource)))] == \
                    len(sim.feed(feed).records(resource))
            assert samples[("trestle_metrics_scrape_errors_total",
                            (("feed", feed), ("source", "database")))] == 0
        # Nothing went to the URL's own database: each feed's tables are in its schema.
        engine = sa.create_engine(url)
        try:
            assert not sa.inspect(engine).has_table("property")
        finally:
            engine.dispose()
    finally:
        for worker in workers:
            stop(worker)


def test_a_wrong_secret_fails_that_feed_alone(clean_redis, two_feeds,  # noqa: F811
                                              feed_database):
    sim = two_feeds
    url, schemas = feed_database
    env = feeds_env(sim, url, schemas, FEED_SOUTH_TRESTLE_CLIENT_SECRET="not-the-secret",
                    TRESTLE_RETRY_BUDGET="0")
    workers = [start_worker(env, f"feeds{i}-{uuid.uuid4().hex[:6]}") for i in range(2)]
    try:
        result = trestle_etl(env, "sync", "--wait", "--timeout", "200")
        assert result.returncode != 0
        assert "not-the-secret" not in result.stdout + result.stderr
        north = sim.feed("north")
        for resource in RESOURCES:
            assert stored(env, "north", resource) == {canonical(r)
                                                      for r in north.records(resource)}
    finally:
        for worker in workers:
            stop(worker)
