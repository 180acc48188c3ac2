"""Benchmark: how fresh the fast path (polling) keeps the copy, and what it costs.

The simulator (its own process) announces 280 requests a minute and 8,400 an hour and
serves N listings with their Member, Office, OpenHouse and Media rows. After a first load
(`trestle-etl sync --wait`), two Celery workers (2 processes each) and beat run as a user
starts them: `celery -A trestle_tasks worker` and `celery -A trestle_tasks beat`, with the
default settings (polling on, SYNC_POLL_QUOTA_SHARE=0.05, a sync every 5 minutes); only
the simulator, the database and Redis are set.

A mutator changes records through the simulator's control API (`POST /simulator/mutate`):
a listing every 5-25 s, an OpenHouse, a Member and an Office every 1-3 minutes each, the
waits drawn from --seed. Each change's new ModificationTimestamp is read back from the
simulator (through the OData API with a second credential of the same feed: its own
quota, its own request counts, nothing charged to the product's). An observer reads the
database every 0.2 s (the changed keys only, by primary key) until the stored version
(etl_mod_ticks) reaches the mutated one: latency = seen - ModificationTimestamp. The
product measures its own freshness into Redis; that figure is printed beside, not used.

Phase A, steady state (--minutes): per resource the changes' p50/p95/max latency; the
product's requests a minute and their share of the hour quota; 429s; CPU-seconds of the
workers, beat and the database server (from /proc).
Phase B, the same while Media (about 8 rows a listing: ~100,000 at 12,000 listings) is
backfilled with `sync --wait --full --resource Media`, back to back for
--backfill-minutes (at least once): Property latency of the changes made during a
backfill, each backfill's wall time and records/s, requests of the backfill and of the
polls, 429s. Then, unless --skip-baseline, the workers are restarted with
SYNC_POLL_QUOTA_SHARE=0 (no beat, no changes) and the same backfill is timed alone.

    python -m bench.freshness                     # 12,000 listings, 10 + 5 minutes
    python -m bench.freshness --smoke             # a quick end-to-end check (~6 minutes)
    python -m bench.freshness --minutes 20 --own-server

The database is a fresh one on the MariaDB at 127.0.0.1:3306 (its CPU then counts
whatever else that server does); --own-server starts a private one (bench/own_mariadb.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
import sqlalchemy as sa

from bench.cpu import CpuMeter, find_pid
from bench.own_mariadb import own_mariadb
from bench.simulator_process import simulator_process
from trestle_tasks.cli.errors import EXIT_SKIPPED
from trestle_tasks.core.timestamps import TICKS_PER_SECOND, ODataTimestamp
from trestle_tasks.monitoring.freshness import FreshnessRecorder, percentile
from trestle_tasks.store.naming import VERSION_COLUMN
from trestle_tasks.store.records import layout_of
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.sync.poll_state import PollStateStore

ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"
# Not 12, which bench/backfill.py and bench/feeds.py empty when they start: another
# benchmark started meanwhile must not wipe this one's broker queues. The test suite uses
# 15 and 14 (tests/redis_space.py).
REDIS_URL = "redis://127.0.0.1:6379/11"
PRODUCT = ("trestle-simulator", "simulator-secret")
OBSERVER = ("freshness-observer", "observer-secret")
MINUTE_QUOTA, HOUR_QUOTA = 280, 8400
TARGET_P95_S = 15.0
TARGET_SHARE = 0.05  # of the hour quota: 420 requests an hour, 7 a minute
KEY_FIELDS = {"Property": "ListingKey", "Member": "MemberKey", "Office": "OfficeKey",
              "OpenHouse": "OpenHouseKey"}
BACKFILLED = "Media"


def control(odata_root: str, path: str, method: str = "GET", **kwargs: Any) -> Any:
    url = odata_root.replace("/trestle/odata", f"/simulator/{path}")
    response = requests.request(method, url, timeout=60, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else {}


def etl(env: dict[str, str], *args: str, timeout: float = 7200) -> subprocess.CompletedProcess[str]:
    """`trestle-etl ARGS`; a run skipped because the resource was busy (exit 3) is returned,
    anything else that failed ends the benchmark."""
    done = subprocess.run([sys.executable, "-m", "trestle_tasks", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode not in (0, EXIT_SKIPPED):
        sys.exit(f"trestle-etl {' '.join(args)} failed:\n{done.stdout[-2000:]}\n"
                 f"{done.stderr[-2000:]}")
    return done


def spawn(env: dict[str, str], logs: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "trestle_tasks", *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- the simulator's request counts (the product's credential only) --

@dataclass(frozen=True)
class Served:
    total: int
    throttled: int
    by_resource: Counter[str]

    @classmethod
    def read(cls, odata_root: str) -> Served:
        mine = control(odata_root, "stats")["requests"].get(PRODUCT[0], {})
        return cls(int(mine.get("total", 0)), int(mine.get("by_status", {}).get("429", 0)),
                   Counter({k: int(v) for k, v in mine.get("by_resource", {}).items()}))

    def __sub__(self, before: Served) -> Served:
        by_resource = Counter(self.by_resource)
        by_resource.subtract(before.by_resource)
        return Served(self.total - before.total, self.throttled - before.throttled,
                      +by_resource)


# -- the product's own account of its requests (etl_sync_log) --

@dataclass(frozen=True)
class Ledger:
    """Poll rows (one per resource and hour): requests and outcome tallies per resource;
    every other row (runs, skips): by run id."""

    poll_requests: Counter[str]
    poll_tallies: dict[str, Counter[str]]
    runs: dict[tuple[str, str], dict[str, Any]]

    @classmethod
    def read(cls, engine: sa.Engine) -> Ledger:
        log = bookkeeping(None)["etl_sync_log"]
        requests_by: Counter[str] = Counter()
        tallies: dict[str, Counter[str]] = {}
        runs: dict[tuple[str, str], dict[str, Any]] = {}
        with engine.connect() as conn:
            for row in conn.execute(sa.select(log)).mappings():
                details = json.loads(row["details"]) if row["details"] else {}
                if details.get("kind") == "polls":
                    requests_by[row["resource"]] += int(row["api_requests"] or 0)
                    tally = tallies.setdefault(row["resource"], Counter())
                    tally.update({k: int(v) for k, v in details.items()
                                  if isinstance(v, int) and k != "media_listings"})
                else:
                    runs[(row["run_id"], row["resource"])] = dict(row)
        return cls(requests_by, tallies, runs)

    def since(self, before: Ledger) -> tuple[Counter[str], dict[str, Counter[str]],
                                              list[dict[str, Any]]]:
        polls = Counter(self.poll_requests)
        polls.subtract(before.poll_requests)
        tallies = {}
        for resource, tally in self.poll_tallies.items():
            delta = Counter(tally)
            delta.subtract(before.poll_tallies.get(resource, Counter()))
            tallies[resource] = +delta
        new_runs = [row for key, row in self.runs.items() if key not in before.runs]
        return +polls, tallies, new_runs


# -- changes and their latencies --

@dataclass
class Change:
    resource: str
    key: str
    ticks: int  # the ModificationTimestamp the simulator gave it
    made_at: float  # epoch seconds, when the mutate call returned
    phase: str
    seen_at: float | None = None

    @property
    def stamp_s(self) -> float:
        return self.ticks / TICKS_PER_SECOND

    @property
    def latency_s(self) -> float | None:
        return None if self.seen_at is None else self.seen_at - self.stamp_s


class StampReader:
    """Reads a record's ModificationTimestamp through the OData API with the observer's
    own credential (the control API can only list every record of a resource)."""

    def __init__(self, token_url: str, odata_root: str) -> None:
        self.token_url, self.odata_root = token_url, odata_root
        self.session = requests.Session()
        self._token: str | None = None
        self._lock = threading.Lock()

    def _bearer(self, renew: bool = False) -> str:
        if self._token is None or renew:
            response = self.session.post(self.token_url, timeout=30, data={
                "client_id": OBSERVER[0], "client_secret": OBSERVER[1],
                "grant_type": "client_credentials", "scope": "api"})
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def ticks(self, resource: str, key: str) -> int:
        with self._lock:
            url = f"{self.odata_root}/{resource}('{key}')"
            for attempt in range(5):
                response = self.session.get(
                    url, params={"$select": "ModificationTimestamp"}, timeout=30,
                    headers={"Authorization": f"Bearer {self._bearer(attempt > 0)}"})
                if response.status_code in (401, 429):
                    time.sleep(attempt)
                    continue
                response.raise_for_status()
                return ODataTimestamp.parse(response.json()["ModificationTimestamp"]).ticks
            response.raise_for_status()
            raise RuntimeError(f"could not read {resource}('{key}')")


class Changes:
    """Every change made, shared by the mutator threads and the observer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: list[Change] = []

    def add(self, change: Change) -> None:
        with self.lock:
            self.made.append(change)

    def pending(self) -> list[Change]:
        with self.lock:
            return [c for c in self.made if c.seen_at is None]

    def of(self, phase: str) -> list[Change]:
        with self.lock:
            return [c for c in self.made if c.phase == phase]


class Mutator:
    """One thread per resource, each changing one record at a time at seeded intervals."""

    def __init__(self, sim_root: str, stamps: StampReader, changes: Changes,
                 intervals: dict[str, tuple[float, float]], seed: int) -> None:
        self.sim_root, self.stamps, self.changes = sim_root, stamps, changes
        self.intervals, self.seed = intervals, seed
        self.phase = ""
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.calls = Counter[str]()
        self.errors: list[str] = []

    def start(self, phase: str) -> Mutator:
        self.phase = phase
        self.stopping.clear()
        self.threads = [threading.Thread(target=self._run, args=(resource,), daemon=True)
                        for resource in self.intervals]
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _run(self, resource: str) -> None:
        rng = random.Random(f"{self.seed}:{self.phase}:{resource}")
        low, high = self.intervals[resource]
        # The first change comes anywhere within one interval: the resources are not in step.
        wait = rng.uniform(0, high)
        while not self.stopping.wait(wait):
            self.calls[resource] += 1
            mutation_seed = rng.randrange(1 << 30)
            try:
                changed = control(self.sim_root, "mutate", "POST", json={
                    "resource": resource, "count": 1, "seed": mutation_seed})
                made_at = time.time()
                for key in changed["modified"]:
                    self.changes.add(Change(resource, key, self.stamps.ticks(resource, key),
                                            made_at, self.phase))
            except Exception as error:  # reported; the benchmark goes on
                self.errors.append(f"{resource}: {type(error).__name__}: {error}")
            wait = rng.uniform(low, high)


class Observer:
    """Reads the stored version of every changed key not yet seen, every `every_s`."""

    def __init__(self, database_url: str, changes: Changes, every_s: float = 0.2) -> None:
        self.engine = sa.create_engine(database_url, pool_pre_ping=True)
        self.changes, self.every_s = changes, every_s
        self.columns: dict[str, tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]] = {}
        self.stopping = threading.Event()
        self.reads = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Observer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.engine.dispose()

    def _key_and_version(self, resource: str) -> tuple[sa.ColumnElement[Any],
                                                       sa.ColumnElement[Any]]:
        if resource not in self.columns:
            layout = layout_of(self.engine, resource)
            table = layout.table
            self.columns[resource] = (table.c[layout.key_column], table.c[VERSION_COLUMN])
        return self.columns[resource]

    def _run(self) -> None:
        while not self.stopping.wait(self.every_s):
            by_resource: dict[str, list[Change]] = {}
            for change in self.changes.pending():
                by_resource.setdefault(change.resource, []).append(change)
            for resource, waiting in by_resource.items():
                key, version = self._key_and_version(resource)
                with self.engine.connect() as conn:
                    stored = dict(conn.execute(sa.select(key, version).where(
                        key.in_({c.key for c in waiting}))).all())
                self.reads += 1
                now = time.time()
                for change in waiting:
                    value = stored.get(change.key)
                    if value is not None and int(value) >= change.ticks:
                        change.seen_at = now

    def drain(self, timeout_s: float) -> None:
        """Wait until every change made so far is seen, or `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.changes.pending() and time.monotonic() < deadline:
            time.sleep(0.5)


class ScheduleSampler:
    """Reads the product's poll schedule (Redis) every second and notes each poll: when it
    came, how long after its resource was due, and what it found. Diagnostics only."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.polls: list[tuple[str, float, float, str | None]] = []  # resource, at, late, status
        # The quota limiter's stops: (first seen, blocked until), epoch seconds. It stops
        # every request of the credential, polls included, until a quota window resets.
        self.blocks: dict[float, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ScheduleSampler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        known: dict[str, Any] = {}
        store: PollStateStore | None = None
        while not self.stopping.wait(1.0):
            if store is None:
                keys = [k.decode() for k in self.redis.scan_iter("trestle:poll:*:state")]
                if not keys:
                    continue
                store = PollStateStore(self.redis, keys[0][len("trestle:poll:"):-len(":state")])
            for key in self.redis.scan_iter("trestle:quota:*"):
                raw = self.redis.hget(key, "blocked_until_ms")
                until = float(raw) / 1000 if raw else 0.0
                if until > time.time() + 2:
                    self.blocks.setdefault(until, time.time())
            for resource, state in store.load().resources.items():
                before = known.get(resource)
                if before is not None and state.last_poll_at is not None and \
                        state.last_poll_at != before.last_poll_at:
                    self.polls.append((resource, state.last_poll_at,
                                       state.last_poll_at - before.due_at, state.last_status))
                known[resource] = state

    def lines(self, since: float, until: float, resources: list[str]) -> None:
        print("  polls seen in the product's schedule: count, median gap between polls, "
              "median and worst delay past due (the budget's queue), changed")
        for resource in resources:
            mine = [p for p in self.polls if p[0] == resource and since <= p[1] <= until]
            if not mine:
                print(f"    {resource:<10} 0")
                continue
            times = [p[1] for p in mine]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            late = sorted(p[2] for p in mine)
            changed = sum(1 for p in mine if p[3] == "changed")
            print(f"    {resource:<10} {len(mine):>3}  gap "
                  f"{fmt(statistics.median(gaps) if gaps else None):>6} s  late "
                  f"{fmt(statistics.median(late)):>5} s / {fmt(late[-1]):>5} s  "
                  f"changed {changed}")
        stops: list[tuple[float, float]] = []
        for start, end in sorted((start, end) for end, start in self.blocks.items()
                                 if since <= start <= until):
            if stops and start <= stops[-1][1]:  # a stop extended while it lasted
                stops[-1] = (stops[-1][0], max(end, stops[-1][1]))
            else:
                stops.append((start, end))
        if stops:
            longest = max(stops, key=lambda s: s[1] - s[0])
            print(f"  the quota limiter stopped every request {len(stops)} time(s) for more "
                  f"than 2 s, {sum(u - s for s, u in stops):.0f} s in all; longest "
                  f"{longest[1] - longest[0]:.0f} s, from "
                  f"{time.strftime('%H:%M:%S', time.gmtime(longest[0]))} to "
                  f"{time.strftime('%H:%M:%S', time.gmtime(longest[1]))} UTC")


def warnings_in(logs: Path) -> Counter[str]:
    """Warnings and errors the workers and beat logged (JSON lines), by message shape."""
    found: Counter[str] = Counter()
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("warning", "error", "critical"):
                message = " ".join(w if not any(ch.isdigit() for ch in w) else "#"
                                   for w in str(entry.get("message", "")).split())
                found[f"{entry.get('level')} {entry.get('logger')}: {message[:200]}"] += 1
    return found


# -- reporting --

def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def latency_table(changes: list[Change], resources: list[str]) -> float | None:
    """Print p50/p95/max per resource; return Property's p95."""
    print(f"  {'resource':<10} {'changes':>7} {'seen':>5} {'p50 s':>7} {'p95 s':>7} "
          f"{'max s':>7}")
    property_p95 = None
    for resource in resources:
        mine = [c for c in changes if c.resource == resource]
        seen = sorted(c.latency_s for c in mine if c.latency_s is not None)
        p50, p95 = percentile(seen, 0.5), percentile(seen, 0.95)
        if resource == "Property":
            property_p95 = p95
        target = ""
        if resource == "Property":
            target = (f"   target p95 <= {TARGET_P95_S:.0f} s: "
                      f"{verdict(p95 is not None and p95 <= TARGET_P95_S)}")
        print(f"  {resource:<10} {len(mine):>7} {len(seen):>5} {fmt(p50):>7} {fmt(p95):>7} "
              f"{fmt(seen[-1] if seen else None):>7}{target}")
    return property_p95


def request_lines(served: Served, seconds: float, label: str) -> None:
    per_minute = served.total * 60 / seconds if seconds else float("nan")
    share = per_minute * 60 / HOUR_QUOTA
    print(f"  {label}: {served.total} in {seconds / 60:.1f} min = {per_minute:.2f}/min "
          f"({per_minute * 60:.0f}/h, {share:.1%} of the {HOUR_QUOTA:,}/h quota); "
          f"target <= {HOUR_QUOTA * TARGET_SHARE / 60:.0f}/min ({TARGET_SHARE:.0%}): "
          f"{verdict(share <= TARGET_SHARE)}")
    print("    by resource: " + ", ".join(f"{r} {n}" for r, n in
                                          sorted(served.by_resource.items())))
    print(f"  429s: {served.throttled} (target 0: {verdict(served.throttled == 0)})")


def ledger_lines(polls: Counter[str], tallies: dict[str, Counter[str]],
                 runs: list[dict[str, Any]]) -> None:
    print(f"  the product's sync log: polls sent {sum(polls.values())} requests "
          f"({', '.join(f'{r} {n}' for r, n in sorted(polls.items())) or 'none'})")
    for resource, tally in sorted(tallies.items()):
        if tally:
            print(f"    {resource:<10} " + ", ".join(f"{k} {v}" for k, v in
                                                     sorted(tally.items())))
    if runs:
        by = Counter((row["resource"], row["status"]) for row in runs)
        print(f"  other sync log rows (runs, skips): {len(runs)}: " + ", ".join(
            f"{r} {s} x{n}" for (r, s), n in sorted(by.items())) +
              f"; {sum(int(row['api_requests'] or 0) for row in runs)} requests")
        reasons = Counter(f"{row['resource']} {row['status']}: {row['error']}"[:300]
                          for row in runs if row["status"] != "succeeded")
        for reason, count in reasons.most_common(5):
            print(f"    x{count} {reason}")
    else:
        print("  no regular run started (beat's syncs skipped while polls keep up)")


def product_view(redis_client: redis.Redis, resources: list[str], window_s: float) -> None:
    """What the product measured itself, and its poll schedule, for comparison."""
    states = [k.decode() for k in redis_client.scan_iter("trestle:poll:*:state")]
    if not states:
        print("  (no poll schedule in Redis)")
        return
    credential = states[0][len("trestle:poll:"):-len(":state")]
    recorder = FreshnessRecorder(redis_client, credential)
    state = PollStateStore(redis_client, credential).load()
    print("  the product's own view (Redis): freshness over the phase; poll interval now")
    for resource in resources:
        own = recorder.recent(resource, window_s=window_s)
        polls = state.resources.get(resource)
        interval = f"{polls.interval_s:.1f} s, last {polls.last_status}" if polls else "-"
        print(f"    {resource:<10} {own.samples:>4} samples  p50 {fmt(own.p50_s)}  "
              f"p95 {fmt(own.p95_s)}  max {fmt(own.max_s)}  interval {interval}")


@dataclass
class Meters:
    workers: CpuMeter
    beat: CpuMeter
    database: CpuMeter
    simulator: CpuMeter
    spent: dict[str, float] = field(default_factory=dict)

    def start(self) -> Meters:
        for meter in (self.workers, self.beat, self.database, self.simulator):
            meter.start()
        return self

    def stop(self) -> None:
        self.spent = {"workers": self.workers.stop(), "beat": self.beat.stop(),
                      "database": self.database.stop(), "simulator": self.simulator.stop()}

    def line(self, seconds: float, shared_server: bool) -> str:
        s = self.spent
        note = " (the shared server: counts its other clients too)" if shared_server else ""
        return (f"  CPU-s over {seconds:.0f} s: workers {s['workers']:.1f}, beat "
                f"{s['beat']:.1f}, MariaDB {s['database']:.1f}{note}; simulator "
                f"{s['simulator']:.1f} (stands in for Trestle)")


# -- the benchmark --

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=12_000,
                        help="listings (Media: about 8 a listing)")
    parser.add_argument("--minutes", type=float, default=10.0, help="phase A")
    parser.add_argument("--backfill-minutes", type=float, default=5.0,
                        help="phase B: Media backfills back to back for at least this long")
    parser.add_argument("--latency-ms", type=float, default=500.0,
                        help="the simulator's latency per data request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warm-up", type=float, default=60.0,
                        help="seconds between beat's start and phase A")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--own-server", action="store_true",
                        help="a private MariaDB (its CPU the benchmark's alone)")
    parser.add_argument("--smoke", action="store_true",
                        help="1,500 listings, 2 + 1 minutes, 20 s of warm-up")
    args = parser.parse_args()
    if args.smoke:
        args.records, args.minutes, args.backfill_minutes = 1500, 2.0, 1.0
        args.warm_up = 20.0
    with contextlib.ExitStack() as stack:
        mariadbd: int | None
        if args.own_server:
            server = stack.enter_context(own_mariadb())
            mariadbd, admin_url = server.pid, server.url("mysql")
        else:
            mariadbd, admin_url = find_pid("mariadbd") or find_pid("mysqld"), ADMIN_URL
        run(args, mariadbd, admin_url)


def run(args: argparse.Namespace, mariadbd: int | None, admin_url: str) -> None:
    database = f"bench_fresh_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
    database_url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    folder = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    processes: list[subprocess.Popen[bytes]] = []
    sim_args = ["--prerender", "--records", str(args.records), "--seed", str(args.seed),
                "--latency-ms", str(args.latency_ms), "--minute-quota", str(MINUTE_QUOTA),
                "--hour-quota", str(HOUR_QUOTA),
                "--feed", f"default:{PRODUCT[0]}:{PRODUCT[1]}",
                "--feed", f"default:{OBSERVER[0]}:{OBSERVER[1]}"]
    try:
        with simulator_process(*sim_args) as sim:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "SYNC_", "FEED_",
                                        "CELERY_", "ALERT_"))}
            env.update({"TRESTLE_CLIENT_ID": PRODUCT[0], "TRESTLE_CLIENT_SECRET": PRODUCT[1],
                        "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                        "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
                        "LOG_LEVEL": "WARNING"})
            redis_client = redis.Redis.from_url(REDIS_URL)
            redis_client.flushdb()
            counts = control(sim.odata_root, "info")["counts"]
            print(f"simulator: {', '.join(f'{r} {n:,}' for r, n in counts.items())}; "
                  f"{MINUTE_QUOTA}/min, {HOUR_QUOTA:,}/h; {args.latency_ms:.0f} ms a request; "
                  f"logs in {folder}", flush=True)

            def workers(extra: dict[str, str], tag: str) -> list[subprocess.Popen[bytes]]:
                return [spawn({**env, **extra}, folder, f"worker{i}-{tag}", "worker", "-c", "2",
                              "-n", f"fresh{i}-{tag}@%h", "--without-gossip",
                              "--without-mingle", "--loglevel", "WARNING") for i in range(2)]

            started_workers = workers({}, "polling")
            processes += started_workers
            etl(env, "migrate")
            time.sleep(5)  # workers ready
            started = time.monotonic()
            first = etl(env, "sync", "--wait")
            print(f"first load: {time.monotonic() - started:.0f} s "
                  f"(`sync --wait`{', a resource skipped' if first.returncode else ''})",
                  flush=True)
            beat = spawn(env, folder, "beat", "beat", "-s", str(folder / "beat-schedule"),
                         "--loglevel", "WARNING")
            processes.append(beat)
            sampler = ScheduleSampler(redis_client).start()
            time.sleep(args.warm_up)  # the first polls, every resource's schedule set

            engine = sa.create_engine(database_url)
            stamps = StampReader(sim.token_url, sim.odata_root)
            changes = Changes()
            observer = Observer(database_url, changes).start()
            intervals = {"Property": (5.0, 25.0), "OpenHouse": (60.0, 180.0),
                         "Member": (60.0, 180.0), "Office": (60.0, 180.0)}
            mutator = Mutator(sim.odata_root, stamps, changes, intervals, args.seed)
            meters = Meters(CpuMeter([p.pid for p in started_workers]), CpuMeter([beat.pid]),
                            CpuMeter([mariadbd] if mariadbd else []), CpuMeter([sim.pid]))
            shared_server = not args.own_server

            # Phase A: steady state.
            served_before, ledger_before = Served.read(sim.odata_root), Ledger.read(engine)
            meters.start()
            started, started_at = time.monotonic(), time.time()
            mutator.start("A")
            time.sleep(args.minutes * 60)
            mutator.stop()
            phase_s = time.monotonic() - started
            meters.stop()
            served_a = Served.read(sim.odata_root) - served_before
            polls, tallies, runs = Ledger.read(engine).since(ledger_before)
            observer.drain(180)
            print(f"\nPhase A: steady state, {phase_s / 60:.1f} min, default settings "
                  "(2 workers x 2 processes, beat)")
            latency_table(changes.of("A"), list(intervals))
            request_lines(served_a, phase_s, "the product's requests")
            ledger_lines(polls, tallies, runs)
            sampler.lines(started_at, started_at + phase_s, [*intervals, BACKFILLED])
            print(meters.line(phase_s, shared_server))
            product_view(redis_client, [*intervals, BACKFILLED], phase_s + 180)
            sys.stdout.flush()

            # Phase B: the same while Media is backfilled, again and again.
            time.sleep(10)
            served_before, ledger_before = Served.read(sim.odata_root), Ledger.read(engine)
            meters.start()
            started, started_at = time.monotonic(), time.time()
            mutator.start("B")
            backfills: list[dict[str, Any]] = []
            skipped = 0
            while not backfills or time.monotonic() - started < args.backfill_minutes * 60:
                begun, before = time.time(), run_ids(engine, BACKFILLED)
                done = etl(env, "sync", "--wait", "--full", "--resource", BACKFILLED)
                if done.returncode == EXIT_SKIPPED:
                    skipped += 1  # a poll of Media held its lock: the run was refused
                    if skipped > 50:
                        sys.exit("the Media backfill was refused 50 times")
                    time.sleep(1)
                    continue
                backfills.append({"start": begun, "end": time.time(),
                                  "run": backfill_run(engine, BACKFILLED, before)})
            mutator.stop()
            phase_s = time.monotonic() - started
            meters.stop()
            served_b = Served.read(sim.odata_root) - served_before
            polls, tallies, runs = Ledger.read(engine).since(ledger_before)
            observer.drain(180)
            observer.stop()

            def during(change: Change) -> bool:
                return any(b["start"] <= change.made_at <= b["end"] for b in backfills)

            made_b = changes.of("B")
            in_backfill = [c for c in made_b if during(c)]
            print(f"\nPhase B: {len(backfills)} {BACKFILLED} backfill(s) back to back "
                  f"(`sync --wait --full --resource {BACKFILLED}`), {phase_s / 60:.1f} min; "
                  f"changes made during a backfill: {len(in_backfill)} of {len(made_b)}")
            latency_table(in_backfill, list(intervals))
            if skipped:
                print(f"  the backfill was refused {skipped} time(s) (exit 3: the resource "
                      "was busy, a poll holding its lock) and sent again")
            for number, backfill in enumerate(backfills, start=1):
                row = backfill["run"]
                wall = backfill["end"] - backfill["start"]
                fetched = int(row["records_fetched"] or 0)
                print(f"  backfill {number}: {wall:.1f} s, {fetched:,} records, "
                      f"{fetched / wall:,.0f} records/s, {row['api_requests']} requests, "
                      f"{row['api_rate_limited']} x 429 ({row['status']}"
                      f"{', attempts: ' + str(row['attempts']) if row['attempts'] != 1 else ''})")
            backfill_requests = sum(int(b["run"].get("api_requests") or 0) for b in backfills)
            backfill_s = sum(b["end"] - b["start"] for b in backfills)
            split = ", ".join(f"{r} {n}" for r, n in sorted(served_b.by_resource.items()))
            print(f"  the product's requests: {served_b.total} in {phase_s / 60:.1f} min "
                  f"(simulator: {split}), "
                  f"{served_b.throttled} x 429 (target 0: {verdict(served_b.throttled == 0)})")
            print(f"    the backfills: {backfill_requests} requests (their sync log rows), "
                  f"{backfill_requests * 60 / backfill_s:.0f}/min while they ran "
                  f"(the minute quota: {MINUTE_QUOTA})")
            poll_total = sum(polls.values())
            poll_rate = poll_total * 60 / phase_s
            print(f"    the polls: {poll_total} requests (the poll rows), {poll_rate:.2f}/min "
                  f"({poll_rate * 60 / HOUR_QUOTA:.1%} of the hour quota; target <= "
                  f"{TARGET_SHARE:.0%}: {verdict(poll_rate * 60 / HOUR_QUOTA <= TARGET_SHARE)})")
            ledger_lines(polls, tallies, runs)
            sampler.lines(started_at, started_at + phase_s, [*intervals, BACKFILLED])
            print(meters.line(phase_s, shared_server))
            sys.stdout.flush()
            if mutator.errors:
                print(f"  mutator errors: {len(mutator.errors)}; first: {mutator.errors[0]}")

            sampler.stop()
            stop(beat)
            for process in started_workers:
                stop(process)
            logged = warnings_in(folder)
            print(f"  warnings and errors the workers and beat logged: {sum(logged.values())}")
            for message, count in logged.most_common(8):
                print(f"    x{count} {message}")
            sys.stdout.flush()
            if args.skip_baseline:
                return
            # Baseline: the same backfill with polling off, nothing else going on.
            time.sleep(61)  # a fresh minute window
            baseline = workers({"SYNC_POLL_QUOTA_SHARE": "0"}, "baseline")
            processes += baseline
            time.sleep(5)
            served_before = Served.read(sim.odata_root)
            begun, before = time.time(), run_ids(engine, BACKFILLED)
            etl(env, "sync", "--wait", "--full", "--resource", BACKFILLED)
            alone_s = time.time() - begun
            row = backfill_run(engine, BACKFILLED, before)
            served_alone = Served.read(sim.odata_root) - served_before
            fetched = int(row["records_fetched"] or 0)
            shared_s = statistics.median(b["end"] - b["start"] for b in backfills)
            print(f"\nBaseline: the {BACKFILLED} backfill with SYNC_POLL_QUOTA_SHARE=0 (no beat, "
                  f"no changes): {alone_s:.1f} s, {fetched / alone_s:,.0f} records/s, "
                  f"{served_alone.total} requests, {served_alone.throttled} x 429")
            print(f"  with polling and changes it took {shared_s:.1f} s (median): "
                  f"{alone_s / shared_s:.0%} of its speed alone")
            engine.dispose()
    finally:
        for process in processes:
            stop(process)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin.dispose()


def run_ids(engine: sa.Engine, resource: str) -> set[str]:
    log = bookkeeping(None)["etl_sync_log"]
    with engine.connect() as conn:
        return set(conn.execute(sa.select(log.c.run_id).where(
            log.c.resource == resource)).scalars())


def backfill_run(engine: sa.Engine, resource: str, before: set[str]) -> dict[str, Any]:
    """The run `sync --wait` just made: the newest row that was not there before and is
    neither a poll row nor a skipped trigger (beat's own sync of the resource, refused
    while the backfill holds it, leaves one of those too). `attempts` > 1: the run was
    retried whole."""
    log = bookkeeping(None)["etl_sync_log"]
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(log).where(
            log.c.resource == resource, sa.not_(log.c.run_id.like("poll-%")),
            log.c.status != "skipped").order_by(log.c.started_at)).mappings()
            if r["run_id"] not in before]
    if not rows:
        return {"status": "not found", "records_fetched": 0, "api_requests": 0,
                "api_rate_limited": 0, "attempts": 0}
    return {**rows[-1], "attempts": len(rows),
            "api_requests": sum(int(r["api_requests"] or 0) for r in rows)}


if __name__ == "__main__":
    main()
