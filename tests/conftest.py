"""Shared test configuration: Hypothesis profiles and service fixtures.

The `ci` profile (selected when CI is set, or with HYPOTHESIS_PROFILE=ci) is derandomized
so a run is reproducible, prints the blob of a failing example so it can be replayed, and
keeps example counts small enough for the whole suite to stay well under 20 minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.redis_space import forget_this_run
from tests.wide_metadata import write_metadata_files

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def trestle_metadata_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wide Trestle-like `$metadata` (tests/wide_metadata.py) as a file, for the
    simulator's `metadata_path`. Nothing outside the repository is read."""
    trestle, _ = write_metadata_files(tmp_path_factory.mktemp("metadata"))
    return trestle


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's `--dist loadgroup` (scripts/test runs two processes): the
    tests that start Celery workers on the Celery database (the `celery_redis` fixture, or
    the `celery_database` mark for a test that takes it itself) take turns for it anyway
    (tests/redis_space.py), so they are one group, run one after the other by one process
    instead of one process waiting out the other's turn; every other module is a group of
    its own, so its module-scoped fixtures (simulators, migrated databases) are built once."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        celery = ("celery_redis" in getattr(item, "fixturenames", ())
                  or item.get_closest_marker("celery_database") is not None)
        item.add_marker(pytest.mark.xdist_group("celery" if celery
                                                else item.nodeid.split("::", 1)[0]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete what this run left in the tests' shared Redis database: its own keys, and the
    product's keys under its own credentials (tests/redis_space.py). Nothing else."""
    forget_this_run()
