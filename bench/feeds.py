"""Benchmark: ten feeds on one cluster, one of them backfilling while the others change.

One simulator (its own process) serves N feeds, each with its own credential and quota:
`f0` holds the backfill's records, the others a few hundred each. Two Celery workers (2
processes each) and beat sync them into one private MariaDB, each feed in its own schema.

1. `f0` is backfilled alone (`sync --wait --full --feed f0`, beat stopped): its time.
2. Beat starts (the other feeds every SYNC_INTERVAL_MINUTES; `f0` is left to the
   benchmark) and every other feed takes a change a minute, spread over the minute, for
   --minutes. All that time `f0` is backfilled again and again (its tables dropped, then
   `sync --wait --full`), so every change meets a backfill under way. Each change's latency
   is the time from the change in the simulator to its new version in that feed's table;
   only changes made while a backfill ran are counted (the few made in the second between
   two backfills are reported apart).

Prints each feed's change-to-database latency (median, worst), the backfill's time alone
and shared (the median of the shared ones), the CPU-seconds of the workers and the
database beside each (the shared phase's include the other feeds' syncs), and the 429s
each feed received.

    python -m bench.feeds                            # 10 feeds, 100,000 records in f0
    python -m bench.feeds --feeds 4 --records 20000 --minutes 2
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
import requests
import sqlalchemy as sa

from bench.cpu import CpuMeter, per_thousand
from bench.own_mariadb import own_mariadb
from bench.simulator_process import simulator_process
from trestle_tasks.core.feeds import load_feeds
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.naming import VERSION_COLUMN
from trestle_tasks.store.records import layout_of

REDIS_URL = "redis://127.0.0.1:6379/12"


def control(odata_root: str, path: str, method: str = "GET", **kwargs) -> dict:
    url = odata_root.replace("/trestle/odata", f"/simulator/{path}")
    response = requests.request(method, url, timeout=60, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else {}


def etl(env: dict[str, str], *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "trestle_tasks", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        sys.exit(f"trestle-etl {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "trestle_tasks", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


class Latencies:
    """Changes one feed at a time and times each until its table holds the new version."""

    def __init__(self, odata_root: str, env: dict[str, str], feeds: list[str],
                 minutes: float) -> None:
        self.odata_root, self.minutes = odata_root, minutes
        self.settings = load_feeds(env, env_file=None)
        self.feeds = feeds
        # (when the change was made, its latency), monotonic seconds
        self.seen: dict[str, list[tuple[float, float]]] = {feed: [] for feed in feeds}
        self.missed: dict[str, int] = {feed: 0 for feed in feeds}
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> Latencies:
        for position, feed in enumerate(self.feeds):
            offset = 60.0 * position / len(self.feeds)  # spread over the minute
            thread = threading.Thread(target=self._changes, args=(feed, offset), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def _changes(self, feed: str, offset: float) -> None:
        settings = self.settings[feed]
        engine = sa.create_engine(settings.database_url)
        layout = layout_of(engine, "Property", settings.database_schema)
        table = layout.table
        key, version = table.c[layout.key_column], table.c[VERSION_COLUMN]
        time.sleep(offset)
        deadline = time.monotonic() + self.minutes * 60
        seed = 1
        while time.monotonic() < deadline:
            started = time.monotonic()
            changed = control(self.odata_root, f"mutate?feed={feed}", "POST",
                              json={"resource": "Property", "count": 1, "seed": seed})
            seed += 1
            listing = changed["modified"][0]
            record = next(r for r in control(self.odata_root,
                                             f"records/Property?feed={feed}")
                          if r["ListingKey"] == listing)
            wanted = ODataTimestamp.parse(record["ModificationTimestamp"]).ticks
            give_up = started + 600
            while time.monotonic() < give_up:
                with engine.connect() as conn:
                    stored = conn.execute(sa.select(version).where(key == listing)).scalar()
                if stored is not None and int(stored) >= wanted:
                    self.seen[feed].append((started, time.monotonic() - started))
                    break
                time.sleep(0.5)
            else:
                self.missed[feed] += 1
            time.sleep(max(0.0, 60 - (time.monotonic() - started)))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10)
    parser.add_argument("--records", type=int, default=100_000, help="in the backfill feed")
    parser.add_argument("--small", type=int, default=300, help="records in each other feed")
    parser.add_argument("--latency-ms", type=float, default=1000)
    parser.add_argument("--minute-quota", type=int, default=280)
    parser.add_argument("--interval-minutes", type=float, default=1.0,
                        help="SYNC_INTERVAL_MINUTES of every feed")
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="how long the other feeds keep changing")
    args = parser.parse_args()
    names = [f"f{i}" for i in range(args.feeds)]
    feed_args = [arg for i, name in enumerate(names) for arg in (
        "--feed", f"{name}:{name}-id:{name}-secret:{args.records if i == 0 else args.small}")]
    folder = Path(tempfile.mkdtemp())
    processes: list[subprocess.Popen] = []
    with own_mariadb() as server, simulator_process(
            "--prerender", "--latency-ms", str(args.latency_ms), "--minute-quota",
            str(args.minute_quota), "--hour-quota", str(args.minute_quota * 60),
            *feed_args) as sim:
        prefix = f"bench_{uuid.uuid4().hex[:6]}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "SYNC_", "FEED_",
                                    "CELERY_"))}
        env.update({"TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                    "DATABASE_URL": server.url(), "REDIS_URL": REDIS_URL,
                    "TRESTLE_RESOURCES": "Property", "TRESTLE_FEEDS": ",".join(names),
                    "SYNC_INTERVAL_MINUTES": str(args.interval_minutes),
                    "LOG_LEVEL": "WARNING"})
        for name in names:
            upper = name.upper()
            env.update({f"FEED_{upper}_TRESTLE_CLIENT_ID": f"{name}-id",
                        f"FEED_{upper}_TRESTLE_CLIENT_SECRET": f"{name}-secret",
                        f"FEED_{upper}_DATABASE_SCHEMA": f"{prefix}_{name}"})
        # f0's backfills are the benchmark's: beat must not start a run of f0 (it would
        # hold f0's lock, or meet its tables being dropped).
        env["FEED_F0_SYNC_INTERVAL_MINUTES"] = "1440"
        redis.Redis.from_url(REDIS_URL).flushdb()
        try:
            processes += [spawn(env, "worker", "-c", "2", "-n", f"feeds{i}@%h",
                                "--without-gossip", "--without-mingle", "--loglevel",
                                "WARNING") for i in range(2)]
            for name in names:
                etl(env, "migrate", "--feed", name)
            for name in names[1:]:
                etl(env, "sync", "--wait", "--feed", name)
            time.sleep(5)  # workers ready and announced
            control(sim.odata_root, "stats/reset?feed=f0", "POST")
            # Workers (their whole process trees) and the database server.
            workers_and_db = [process.pid for process in processes] + [server.pid]
            meter = CpuMeter(workers_and_db).start()
            started = time.monotonic()
            etl(env, "sync", "--wait", "--full", "--feed", "f0")
            alone_s = time.monotonic() - started
            alone_cpu_s = meter.stop()

            for name in names:
                control(sim.odata_root, f"stats/reset?feed={name}", "POST")
            processes.append(spawn(env, "beat", "-s", str(folder / "beat-schedule"),
                                   "--loglevel", "WARNING"))
            latencies = Latencies(sim.odata_root, env, names[1:], args.minutes).start()
            backfills: list[tuple[float, float]] = []  # (start, end), monotonic seconds
            meter = CpuMeter(workers_and_db).start()
            shared_started = time.monotonic()
            while latencies.running():
                engine = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
                with engine.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE `{prefix}_f0`")
                engine.dispose()
                etl(env, "migrate", "--feed", "f0")
                started = time.monotonic()
                etl(env, "sync", "--wait", "--full", "--feed", "f0")
                backfills.append((started, time.monotonic()))
            latencies.join()
            shared_cpu_s, shared_wall_s = meter.stop(), time.monotonic() - shared_started
        finally:
            for process in processes:
                stop(process)
        print(f"{args.feeds} feeds, 2 workers x 2 processes, {args.latency_ms:.0f} ms a page, "
              f"{args.minute_quota} requests a minute per feed, sync every "
              f"{args.interval_minutes:g} min")
        shared_s = statistics.median(end - start for start, end in backfills)
        print(f"backfill of {args.records:,} records (f0): alone {alone_s:.1f} s, while the "
              f"other feeds sync {shared_s:.1f} s (median of {len(backfills)} back to back; "
              f"{alone_s / shared_s:.0%} of its speed alone)")

        backfilled = args.records * len(backfills)
        print(f"CPU-s of the workers and the database: alone {alone_cpu_s:.1f} over "
              f"{alone_s:.1f} s ({per_thousand(alone_cpu_s, args.records):.2f} per 1,000 "
              f"records); shared phase {shared_cpu_s:.1f} over {shared_wall_s:.1f} s, "
              f"{len(backfills)} backfills and the other feeds' syncs "
              f"({per_thousand(shared_cpu_s, backfilled):.2f} per 1,000 records backfilled)")

        def during_a_backfill(made: float) -> bool:
            return any(start <= made <= end for start, end in backfills)
        print("feed  changes  median latency  worst latency  missed  429s")
        worst_all, between = 0.0, 0
        for name in names:
            stats = control(sim.odata_root, f"stats?feed={name}")
            rejected = sum(int(s.get("by_status", {}).get("429", 0))
                           for s in stats.get("requests", {}).values())
            timed = latencies.seen.get(name, [])
            seen = [latency for made, latency in timed if during_a_backfill(made)]
            between += len(timed) - len(seen)
            if not seen:
                print(f"{name:<5} {'(backfill)' if name == 'f0' else '-':>8} {'':>15} "
                      f"{'':>14} {'':>7} {rejected:>5}")
                continue
            worst_all = max(worst_all, max(seen))
            print(f"{name:<5} {len(seen):>8} {statistics.median(seen):>13.1f} s "
                  f"{max(seen):>12.1f} s {latencies.missed[name]:>7} {rejected:>5}")
        if between:
            print(f"({between} change(s) made between two backfills left out)")
        goal = args.interval_minutes * 60 + 60
        print(f"worst latency {worst_all:.1f} s; goal: within one sync interval plus a minute "
              f"({goal:.0f} s): {'met' if worst_all <= goal else 'NOT met'}")


if __name__ == "__main__":
    main()
