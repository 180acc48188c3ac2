"""`trestle-etl demo`: the whole pipeline against the bundled simulator, no configuration.

Starts the simulator on a free loopback port, syncs every resource into an embedded SQLite
file, changes some listings on the simulator, syncs again to show that only those are
fetched, and prints a summary and a sample query. Who runs the syncs is a `Syncer`: this
process (the default) or Celery workers (`demo --celery`, see demo_celery.py).
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

from trestle_tasks.local import sync_local
from trestle_tasks.runtime import LocalRuntime
from trestle_tasks.settings import load_settings
from trestle_tasks.simulator.config import SimulatorConfig
from trestle_tasks.simulator.server import start_in_thread
from trestle_tasks.sync.local import LocalRunResult

RESOURCES = ("Property", "Member", "Office", "OpenHouse", "Media")
SAMPLE_QUERY = (
    "SELECT City, COUNT(*) AS listings, ROUND(AVG(ListPrice)) AS avg_price "
    "FROM property WHERE StandardStatus = 'Active' AND deleted_at IS NULL "
    "GROUP BY City ORDER BY listings DESC LIMIT 5"
)

# (records done, records expected), both running totals over the whole step.
Progress = Callable[[int, int], None]


class Syncer(Protocol):
    def sync(self, resources: Sequence[str], on_progress: Progress | None = None
             ) -> list[LocalRunResult]: ...


# Given the demo's environment (simulator, database, lock folder), a context that yields
# a Syncer and cleans up after it.
SyncerFactory = Callable[[Mapping[str, str]], AbstractContextManager[Syncer]]


@dataclass
class LocalSyncer:
    """Syncs in this process, as `sync --local` does."""

    environ: Mapping[str, str]

    @cached_property
    def runtime(self) -> LocalRuntime:
        """Built once, for the demo's full and incremental syncs alike."""
        return LocalRuntime(load_settings(self.environ, env_file=None))

    def sync(self, resources: Sequence[str], on_progress: Progress | None = None
             ) -> list[LocalRunResult]:
        totals = [0, 0]  # done, expected

        def on_plan(plan: Any) -> None:
            totals[1] += sum(w.expected or 0 for w in plan.windows)

        def on_records(count: int) -> None:
            totals[0] += count
            if on_progress is not None:
                on_progress(totals[0], totals[1])

        return sync_local(self.runtime, resources, on_plan=on_plan, on_records=on_records)


@contextmanager
def local_syncer(environ: Mapping[str, str]) -> Iterator[LocalSyncer]:
    yield LocalSyncer(environ)


@dataclass
class DemoReport:
    database: Path
    full: list[LocalRunResult] = field(default_factory=list)
    incremental: LocalRunResult | None = None
    changed: int = 0
    seconds: float = 0.0
    requests_served: int = 0
    quota: dict[str, Any] | None = None
    sample: list[tuple[Any, ...]] = field(default_factory=list)


def run_demo(
    *,
    records: int,
    database: Path,
    changes: int = 25,
    syncer: SyncerFactory = local_syncer,
    on_stage: Callable[[str], None] = lambda text: None,
    on_progress: Progress | None = None,
) -> DemoReport:
    started = time.monotonic()
    if database.exists():
        database.unlink()  # every demo starts from an empty database
    report = DemoReport(database=database)
    with start_in_thread(SimulatorConfig(records=records, seed=42)) as sim, \
            tempfile.TemporaryDirectory() as lock_dir:
        on_stage(f"simulator serving {records:,} listings at {sim.odata_root}")
        environ = {
            "TRESTLE_CLIENT_ID": sim.client_id,
            "TRESTLE_CLIENT_SECRET": sim.client_secret,
            "TRESTLE_TOKEN_URL": sim.token_url,
            "TRESTLE_BASE_URL": sim.odata_root,
            "DATABASE_URL": f"sqlite:///{database}",
            "LOCK_DIR": lock_dir,
            "TRESTLE_RESOURCES": ",".join(RESOURCES),
        }
        with syncer(environ) as runner:
            on_stage("full sync of " + ", ".join(RESOURCES))
            report.full = runner.sync(RESOURCES, on_progress)
            changed = sim.mutate("Property", count=changes, seed=7)["modified"]
            report.changed = len(set(changed))
            on_stage(f"changed {report.changed} listings on the simulator; incremental sync")
            report.incremental = runner.sync(["Property"])[0]
        stats = sim.stats()
        report.requests_served = int(stats["requests"].get(sim.client_id, {}).get("total", 0))
        report.quota = {"minute_limit": sim.config.minute_quota,
                        "hour_limit": sim.config.hour_quota}
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            report.sample = [tuple(row) for row in conn.execute(sa.text(SAMPLE_QUERY))]
    finally:
        engine.dispose()
    report.seconds = time.monotonic() - started
    return report
