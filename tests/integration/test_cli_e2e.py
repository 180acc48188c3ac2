"""End to end through the command line: migrate, sync, edit, sync, reconcile, export.

Each run drives `python -m trestle_tasks` in subprocesses against the simulator (served
from this process, so the test can edit its feed) and a fresh database, configured by a
`.env` file written from one of the per-environment profiles in docs/deployment.md. The
profiles are read from the document itself, so the documented files are the tested ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.redis_space import redis_url

from .cli_process import REPO_ROOT, clean_env, table_names, trestle_etl
from .conftest import start_simulator
from .sync_fixtures import canonical, create_database, drop_database

pytestmark = pytest.mark.integration

RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")
TABLES = {"property", "member", "office", "open_house", "media", "etl_sync_log"}
TEST_REDIS_URL = redis_url()


def documented_profiles() -> dict[str, dict[str, str]]:
    """{'development': {VAR: value}, ...} from the env-file block of docs/deployment.md."""
    text = (REPO_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    profiles: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        header = re.match(r"#\s*(\w+)\.env\b", line.strip())
        if header:
            current = profiles.setdefault(header.group(1), {})
        elif line.startswith("```"):
            current = None
        elif current is not None and "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            current[name.strip()] = value.strip()
    return profiles


PROFILES = documented_profiles()


def test_the_deployment_guide_documents_three_profiles():
    assert set(PROFILES) == {"development", "staging", "production"}
    assert all("DATABASE_URL" in values for values in PROFILES.values())


def profile_env_file(profile: str, sim, database_url: str, log_dir: Path) -> str:
    """The documented profile with this machine's endpoints in place of the examples'."""
    values = dict(PROFILES[profile])
    values.update({
        "TRESTLE_CLIENT_ID": sim.client_id,
        "TRESTLE_CLIENT_SECRET": sim.client_secret,
        "TRESTLE_TOKEN_URL": sim.token_url,
        "TRESTLE_BASE_URL": sim.odata_root,
        "DATABASE_URL": database_url,
    })
    if "REDIS_URL" in values:
        values["REDIS_URL"] = TEST_REDIS_URL
    if "LOG_DIR" in values:
        values["LOG_DIR"] = str(log_dir)
    return "".join(f"{name}={value}\n" for name, value in values.items())


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The sync summary table: resource -> [status, fetched, upserted, rejected, requests]."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in RESOURCES and len(cells) >= 6:
            rows[cells[0]] = cells[1:6]
    return rows


def fetched(row: list[str]) -> int:
    return int(row[1].replace(",", ""))


def exported(stdout: str) -> dict[str, str]:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {record["ListingKey"]: canonical(record) for record in records}


def fetched_in_sync_log(database_url: str, run_id: str, resource: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                sa.text("SELECT records_fetched FROM etl_sync_log "
                        "WHERE run_id = :run AND resource = :resource"),
                {"run": run_id, "resource": resource}).scalar_one())
    finally:
        engine.dispose()


# Every documented profile, and every supported database, at least once: a profile's
# settings and a dialect's SQL are independent, so the diagonal covers what the full
# grid did in a third of the suite's time.
CASES = [
    pytest.param(profile, dialect, id=f"{profile}-{dialect}")
    for profile, dialect in (("development", "sqlite"), ("staging", "mariadb"),
                             ("production", "postgresql"))
]


@pytest.fixture
def database(request, tmp_path):
    dialect = request.param
    try:
        url, name = create_database(dialect, tmp_path)
    except sa.exc.OperationalError as error:
        pytest.skip(f"{dialect} is not reachable: {error.orig}")
    yield url
    drop_database(dialect, name)


@pytest.mark.parametrize(("profile", "database"), CASES, indirect=["database"])
def test_migrate_sync_edit_sync_reconcile_export(profile, database, tmp_path):
    sim = start_simulator(records=250, seed=61)
    log_dir = tmp_path / "logs"
    (tmp_path / ".env").write_text(profile_env_file(profile, sim, database, log_dir))
    env = clean_env()  # everything comes from the profile's .env
    try:
        migrated = trestle_etl("migrate", env=env, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        assert table_names(database) >= TABLES

        first = trestle_etl("sync", "--local", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        rows = summary_rows(first.stdout)
        assert set(rows) == set(RESOURCES), first.stdout
        for resource in RESOURCES:
            assert rows[resource][0] == "succeeded", first.stdout
            assert fetched(rows[resource]) == len(sim.records(resource)), resource

        changed = set(sim.mutate("Property", count=9, seed=5)["modified"])
        assert len(changed) == 9
        second = trestle_etl("sync", "--local", "--resource", "Property", "--resource",
                             "Member", env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        rows = summary_rows(second.stdout)
        assert fetched(rows["Property"]) == 9, second.stdout  # only what changed
        assert fetched(rows["Member"]) == 0, second.stdout
        run_id = second.stdout.splitlines()[1].split()[-1]
        assert fetched_in_sync_log(database, run_id, "Property") == 9

        gone = sorted(changed)[:3] + [k for k in sim.keys("Property") if k not in changed][:2]
        for key in gone:
            assert sim.delete("Property", key)
        # A listing made visible to the feed with a timestamp years below the watermark.
        template = sim.records("Property")[0]
        sim.upsert("Property", [{**template, "ListingKey": "0000arrivedlate0",
                                 "ListingId": "ARRIVED1", "PhotosCount": 0,
                                 "PhotosChangeTimestamp": None,
                                 "ModificationTimestamp": "2020-01-01T00:00:00.1234567Z"}])
        looked = trestle_etl("reconcile", "--local", "--dry-run", "--resource", "Property",
                             env=env, cwd=tmp_path)
        assert looked.returncode == 0, looked.stderr
        # census, missing, stale, gone, fetched, deleted: measured, nothing changed
        assert re.search(r"Property\s+246\s+1\s+0\s+5\s+0\s+0\s+1\b", looked.stdout), \
            looked.stdout
        reconciled = trestle_etl("reconcile", "--local", "--resource", "Property", env=env,
                                 cwd=tmp_path)
        assert reconciled.returncode == 0, reconciled.stderr
        assert re.search(r"Property\s+246\s+1\s+0\s+5\s+1\s+5\s+\d+", reconciled.stdout), \
            reconciled.stdout

        export = trestle_etl("export", "--resource", "Property", env=env, cwd=tmp_path)
        assert export.returncode == 0, export.stderr
        feed = {r["ListingKey"]: canonical(r) for r in sim.records("Property")}
        assert exported(export.stdout) == feed
        everything = trestle_etl("export", "--resource", "Property", "--include-deleted",
                                 env=env, cwd=tmp_path)
        assert everything.returncode == 0, everything.stderr
        with_deleted = exported(everything.stdout)
        assert set(with_deleted) == set(feed) | set(gone)

        status = trestle_etl("status", "--json", env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert set(report["watermarks"]) == set(RESOURCES)
        assert sim.client_secret not in "".join(
            r.stdout + r.stderr for r in (migrated, first, second, reconciled, status))

        if "LOG_DIR" in PROFILES[profile]:  # the profile's log files are written
            api_lines = (log_dir / "api.log").read_text().splitlines()
            assert api_lines and all(json.loads(line) for line in api_lines)
            assert sim.client_secret not in (log_dir / "application.log").read_text()
    finally:
        sim.stop()
