"""`trestle-etl demo`: the whole pipeline against the bundled simulator, no configuration.

Starts the simulator on a free loopback port, syncs every resource into an embedded SQLite
file, changes some listings on the simulator, syncs again to show that only those are
fetched, and prints a summary and a sample query. Who runs the syncs is a `Syncer`: this
process (the default) or Celery workers (`demo --celery`, see demo_celery.py).

`demo --feeds 2` shows a deployment of several feeds: the simulator serves two MLS feeds
(own credentials, same listing keys, different data), configured as an operator would
(TRESTLE_FEEDS and FEED_<NAME>_… variables), each synced into a database file of its own.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from trestle_simulator.config import FeedConfig, SimulatorConfig
from trestle_simulator.server import start_in_thread
from trestle_tasks.cli.demo_file import check_replaceable, create_marked
from trestle_tasks.cli.local import sync_local
from trestle_tasks.core.feeds import DEFAULT_FEED, feed_variable, load_feeds
from trestle_tasks.core.settings import Settings
from trestle_tasks.sync.local import LocalRunResult
from trestle_tasks.worker.runtime import LocalRuntime

RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")
SAMPLE_QUERY = (
    "SELECT City, COUNT(*) AS listings, ROUND(AVG(ListPrice)) AS avg_price "
    "FROM property WHERE StandardStatus = 'Active' AND deleted_at IS NULL "
    "GROUP BY City ORDER BY listings DESC LIMIT 5"
)

# The feeds `demo --feeds N` serves, in order.
DEMO_FEEDS = ("north", "south", "east", "west")

# (records done, records expected), both running totals over the whole step.
Progress = Callable[[int, int], None]


class Syncer(Protocol):
    def sync(self, resources: Sequence[str], on_progress: Progress | None = None,
             feed: str = DEFAULT_FEED) -> list[LocalRunResult]: ...


def demo_feeds(environ: Mapping[str, str]) -> dict[str, Settings]:
    """Each feed's settings, read from the demo's environment only (never a .env)."""
    return load_feeds(environ, env_file=None)


# Given the demo's environment (simulator, database, lock folder), a context that yields
# a Syncer and cleans up after it.
SyncerFactory = Callable[[Mapping[str, str]], AbstractContextManager[Syncer]]


@dataclass
class LocalSyncer:
    """Syncs in this process, as `sync --local` does."""

    environ: Mapping[str, str]

    @cached_property
    def runtimes(self) -> dict[str, LocalRuntime]:
        """Built once per feed, for the demo's full and incremental syncs alike."""
        return {name: LocalRuntime(settings)
                for name, settings in demo_feeds(self.environ).items()}

    def sync(self, resources: Sequence[str], on_progress: Progress | None = None,
             feed: str = DEFAULT_FEED) -> list[LocalRunResult]:
        totals = [0, 0]  # done, expected

        def on_plan(plan: Any) -> None:
            totals[1] += sum(w.expected or 0 for w in plan.windows)

        def on_records(count: int) -> None:
            totals[0] += count
            if on_progress is not None:
                on_progress(totals[0], totals[1])

        return sync_local(self.runtimes[feed], resources, on_plan=on_plan,
                          on_records=on_records)


@contextmanager
def local_syncer(environ: Mapping[str, str]) -> Iterator[LocalSyncer]:
    yield LocalSyncer(environ)


@dataclass
class FeedDemo:
    """What the demo did with one feed."""

    database: Path
    full: list[LocalRunResult] = field(default_factory=list)
    incremental: LocalRunResult | None = None
    changed: int = 0
    requests_served: int = 0
    sample: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class DemoReport:
    feeds: dict[str, FeedDemo] = field(default_factory=dict)  # one, `default`, by default
    seconds: float = 0.0
    quota: dict[str, Any] | None = None


def feed_database(database: Path, feed: str, several: bool) -> Path:
    """Where a feed's records go: the file asked for, or with several feeds one file each
    beside it (SQLite has no schemas to keep feeds apart): trestle-demo-north.sqlite3."""
    return database.with_name(f"{database.stem}-{feed}{database.suffix}") if several \
        else database


def run_demo(
    *,
    records: int,
    database: Path,
    changes: int = 25,
    feeds: int = 1,
    syncer: SyncerFactory = local_syncer,
    on_stage: Callable[[str], None] = lambda text: None,
    on_progress: Progress | None = None,
) -> DemoReport:
    started = time.monotonic()
    names = DEMO_FEEDS[:feeds] if feeds > 1 else (DEFAULT_FEED,)
    report = DemoReport(feeds={name: FeedDemo(feed_database(database, name, feeds > 1))
                               for name in names})
    for outcome in report.feeds.values():  # all checked before any is replaced
        check_replaceable(outcome.database)
    for outcome in report.feeds.values():
        create_marked(outcome.database)  # every demo starts from an empty database
    config = SimulatorConfig(records=records, seed=42) if feeds == 1 else SimulatorConfig(
        records=records, seed=42, feeds={
            name: FeedConfig(credentials={f"demo-{name}": f"demo-{name}-secret"})
            for name in names})
    with start_in_thread(config) as sim, tempfile.TemporaryDirectory() as lock_dir:
        served = "" if feeds == 1 else f" in each of {feeds} feeds ({', '.join(names)})"
        on_stage(f"simulator serving {records:,} listings{served} at {sim.odata_root}")
        environ = {
            "TRESTLE_TOKEN_URL": sim.token_url,
            "TRESTLE_BASE_URL": sim.odata_root,
            "LOCK_DIR": lock_dir,
            "TRESTLE_RESOURCES": ",".join(RESOURCES),
        }
        if feeds == 1:
            environ.update({"TRESTLE_CLIENT_ID": sim.client_id,
                            "TRESTLE_CLIENT_SECRET": sim.client_secret,
                            "DATABASE_URL": f"sqlite:///{report.feeds[DEFAULT_FEED].database}"})
        else:
            # As an operator configures feeds: the shared values once, each feed's own apart.
            environ["TRESTLE_FEEDS"] = ",".join(names)
            for name, outcome in report.feeds.items():
                handle = sim.feed(name)
                environ.update({
                    feed_variable(name, "TRESTLE_CLIENT_ID"): handle.client_id,
                    feed_variable(name, "TRESTLE_CLIENT_SECRET"): handle.client_secret,
                    feed_variable(name, "DATABASE_URL"): f"sqlite:///{outcome.database}",
                })
        with syncer(environ) as runner:
            for name, outcome in report.feeds.items():
                label = "" if feeds == 1 else f"feed {name}: "
                on_stage(f"{label}full sync of " + ", ".join(RESOURCES))
                outcome.full = runner.sync(RESOURCES, on_progress, feed=name)
            for name, outcome in report.feeds.items():
                label = "" if feeds == 1 else f"feed {name}: "
                changed = sim.feed(None if feeds == 1 else name).mutate(
                    "Property", count=changes, seed=7)["modified"]
                outcome.changed = len(set(changed))
                on_stage(f"{label}changed {outcome.changed} listings on the simulator; "
                         "incremental sync")
                outcome.incremental = runner.sync(["Property"], feed=name)[0]
        for name, outcome in report.feeds.items():
            handle = sim.feed(None if feeds == 1 else name)
            outcome.requests_served = int(
                handle.stats()["requests"].get(handle.client_id, {}).get("total", 0))
    # Each feed has the simulator's quota (FeedConfig inherits it).
    report.quota = {"minute_limit": config.minute_quota, "hour_limit": config.hour_quota}
    for outcome in report.feeds.values():
        engine = sa.create_engine(f"sqlite:///{outcome.database}")
        try:
            with engine.connect() as conn:
                outcome.sample = [tuple(row) for row in conn.execute(sa.text(SAMPLE_QUERY))]
        finally:
            engine.dispose()
    report.seconds = time.monotonic() - started
    return report
