"""The operator's commands on a deployment of two feeds, through `python -m trestle_tasks`:
without --feed each acts on every feed and names the feed on each line; --feed picks one;
export, whose output is one feed's records, asks which."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_space import own_credential, redis_url
from trestle_simulator.config import FeedConfig, SimulatorConfig
from trestle_simulator.server import RunningSimulator, start_in_thread

from .cli_process import clean_env, table_names, trestle_etl

pytestmark = pytest.mark.integration

FEEDS = ("north", "south")


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(records=40, minute_quota=None, hour_quota=None, feeds={
        feed: FeedConfig(credentials={f"{feed}-id": f"{feed}-secret"}, seed=seed)
        for feed, seed in zip(FEEDS, (5, 6), strict=True)})
    running = start_in_thread(config)
    for feed in FEEDS:
        own_credential(running.token_url, f"{feed}-id")
    yield running
    running.stop()


def feeds_env(sim: RunningSimulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Two feeds on SQLite: each its own database file, as SQLite has no schemas."""
    env = clean_env(TRESTLE_FEEDS=",".join(FEEDS), TRESTLE_TOKEN_URL=sim.token_url,
                    TRESTLE_BASE_URL=sim.odata_root, TRESTLE_RESOURCES="Property,Office",
                    REDIS_URL=redis_url(), LOCK_DIR=str(tmp_path))
    for feed in FEEDS:
        prefix = f"FEED_{feed.upper()}_"
        env.update({f"{prefix}TRESTLE_CLIENT_ID": f"{feed}-id",
                    f"{prefix}TRESTLE_CLIENT_SECRET": f"{feed}-secret",
                    f"{prefix}DATABASE_URL": f"sqlite:///{tmp_path / feed}.sqlite3"})
    env.update(extra)
    return env


def test_every_command_acts_on_every_feed_and_names_it(sim, tmp_path):
    # South caps its pace (far above what this test needs, so nothing waits on it).
    env = feeds_env(sim, tmp_path, FEED_SOUTH_TRESTLE_QUOTA_PER_MINUTE="600")

    migrated = trestle_etl("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "feed north:" in migrated.stdout and "feed south:" in migrated.stdout
    for feed in FEEDS:
        assert {"property", "office"} <= table_names(f"sqlite:///{tmp_path / feed}.sqlite3")

    synced = trestle_etl("sync", "--local", env=env, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    for feed in FEEDS:
        for resource in ("Property", "Office"):
            assert f"{feed}/{resource}" in synced.stdout

    # A listing leaves the south feed only: reconcile over both feeds finds it there.
    gone = sim.feed("south").keys("Property")[0]
    assert sim.feed("south").delete("Property", gone)
    reconciled = trestle_etl("reconcile", env=env, cwd=tmp_path)
    assert reconciled.returncode == 0, reconciled.stderr
    rows = {line.split()[0]: line.split()[1:] for line in reconciled.stdout.splitlines()[1:]}
    assert set(rows) == {f"{f}/{r}" for f in FEEDS for r in ("Property", "Office")}
    census, _missing, _stale, gone_count = (int(x.replace(",", ""))
                                            for x in rows["south/Property"][:4])
    assert (census, gone_count) == (len(sim.feed("south").records("Property")), 1)
    assert int(rows["north/Property"][3]) == 0  # the same key is still in north

    status = trestle_etl("status", "--json", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    reports = json.loads(status.stdout)["feeds"]
    assert set(reports) == set(FEEDS)
    assert reports["south"]["quota_cap_per_minute"] == 600
    assert reports["north"]["quota_cap_per_minute"] is None
    text = trestle_etl("status", env=env, cwd=tmp_path).stdout
    south_text = text.split("== feed south ==")[1]
    assert "Quota cap: this feed paces at most 600 requests a minute" in south_text
    assert text.count("Quota cap:") == 1

    one = trestle_etl("export", "--resource", "Property", env=env, cwd=tmp_path)
    assert one.returncode == 2 and "choose one with --feed" in one.stderr
    exported = trestle_etl("export", "--resource", "Property", "--feed", "north", env=env,
                           cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    keys = {json.loads(line)["ListingKey"] for line in exported.stdout.splitlines()}
    assert keys == set(sim.feed("north").keys("Property"))


def test_check_config_shows_each_feed_and_checks_it(sim, tmp_path):
    env = feeds_env(sim, tmp_path, FEED_SOUTH_TRESTLE_CLIENT_SECRET="not-the-secret")
    checked = trestle_etl("check-config", env=env, cwd=tmp_path)
    out = checked.stdout
    assert checked.returncode != 0
    assert "Feed north (its own: FEED_NORTH_<VARIABLE>):" in out
    assert "Checks of feed south" in out
    north, south = out.split("Feed south")
    assert "FAIL" not in north  # the wrong secret fails its own feed alone
    assert "FAIL" in south
    assert "not-the-secret" not in out + checked.stderr
    # The deployment's settings once; a feed's own settings under its feed.
    shown = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert shown.count("REDIS_URL") == 1 and shown.count("TRESTLE_CLIENT_ID") == 2

    only = trestle_etl("check-config", "--feed", "north", env=env, cwd=tmp_path)
    assert only.returncode == 0, only.stdout + only.stderr
    assert "Feed south" not in only.stdout


def test_the_demo_shows_two_feeds_each_in_its_own_file(tmp_path):
    env = clean_env()
    env.pop("REDIS_URL", None)
    result = trestle_etl("demo", "--feeds", "2", "--records", "120", "--database",
                         str(tmp_path / "demo.sqlite3"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for feed in FEEDS:
        assert f"{feed}/Property" in result.stdout
        assert f"Feed {feed} database: {tmp_path / f'demo-{feed}.sqlite3'}" in result.stdout
        assert "property" in table_names(f"sqlite:///{tmp_path / f'demo-{feed}.sqlite3'}")


def test_migrate_goes_on_with_the_other_feeds_when_one_is_refused(sim, tmp_path):
    env = feeds_env(sim, tmp_path, FEED_NORTH_TRESTLE_CLIENT_SECRET="not-the-secret",
                    TRESTLE_RETRY_BUDGET="0")
    migrated = trestle_etl("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 1
    [line] = migrated.stderr.strip().splitlines()
    assert line.startswith("trestle-etl: error: 1 of 2 feeds could not be migrated: feed "
                           "north: "), line
    assert "not-the-secret" not in migrated.stdout + migrated.stderr
    assert "property" in table_names(f"sqlite:///{tmp_path / 'south'}.sqlite3")
    assert "property" not in table_names(f"sqlite:///{tmp_path / 'north'}.sqlite3")
