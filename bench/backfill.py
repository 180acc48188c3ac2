"""Benchmark: a Celery backfill against a quota, compared with a single-threaded walk.

The simulator (its own process) serves N Property records with a latency per page and a
per-minute quota. Two Celery worker processes sync them into MariaDB through
`trestle-etl sync --wait --full`; then one thread walks the same feed with the client.
Prints records/s for both, 429s received, quota utilization (requests sent / requests
the quota allowed over the run's duration), and CPU-seconds per 1,000 records: of the
worker process trees (start-up counted apart), of the database server (mariadbd, read from
/proc before and after: by default a private server started for the run, so nothing else
is counted; `--shared-server` uses the one on 127.0.0.1:3306), of the `sync --wait`
process and of the single-thread walk.

    python -m bench.backfill                      # 100,000 records, 1 s a page, 280/min
    python -m bench.backfill --records 20000 --concurrency 2
    python -m bench.backfill --records 150000 --minute-quota 60 --page-size 1000
    python -m bench.backfill --fields 122         # every field of the default metadata
    python -m bench.backfill --fields wide --compare-defer   # real width, indexes kept/deferred

Property records have 40 fields by default, as the stand-in that set the issue's targets
served (`--fields` narrows the simulator's default metadata, see narrow_metadata.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import requests
import sqlalchemy as sa

from bench.cpu import CpuMeter, find_pid, per_thousand
from bench.narrow_metadata import write_narrowed_metadata
from bench.own_mariadb import own_mariadb
from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.store.sync_log import peak_in_flight
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def control(odata_root: str, path: str, method: str = "GET", **kwargs) -> dict:
    url = odata_root.replace("/trestle/odata", f"/simulator/{path}")
    response = requests.request(method, url, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else {}


def served(odata_root: str, client_id: str) -> tuple[int, int]:
    stats = control(odata_root, "stats")["requests"].get(client_id, {})
    return int(stats.get("total", 0)), int(stats.get("by_status", {}).get("429", 0))


def window_figures(settings, show_windows: bool = False) -> str:
    """Where the Celery run's time went: windows in flight at once, time in the database."""
    store = factory.store(settings)
    try:
        run = store.sync_log.recent_runs(limit=1, resource="Property")[0]
        windows = store.sync_log.windows(run.run_id, "Property")
    finally:
        store.dispose()
    peak = peak_in_flight(windows)
    outcomes = (run.details or {}).get("windows", [])
    busy = sum(o.get("seconds", 0) for o in outcomes)
    in_db = sum(o.get("db_seconds", 0) for o in outcomes)
    timeline = ""
    ends = [w.finished_at for w in windows if w.finished_at is not None]
    if windows and ends and run.finished_at is not None:
        def at(moment) -> str:
            return f"{(moment - run.started_at).total_seconds():.1f} s"
        timeline = (f"\ntimeline from the run's start: first window at "
                    f"{at(min(w.started_at for w in windows))}, last window done at "
                    f"{at(max(ends))}, run closed at {at(run.finished_at)}")
    if show_windows:
        print("window  starts  ends (s from the run's start)  pages  requests  in the database")
        by_id = {o.get("window_id"): o for o in outcomes}
        for w in windows:
            o = by_id.get(w.window_id, {})
            end = (w.finished_at - run.started_at).total_seconds() if w.finished_at else None
            print(f"{w.window_id}  {(w.started_at - run.started_at).total_seconds():6.1f}  "
                  f"{end if end is None else round(end, 1)!s:>6}  {o.get('pages', '?'):>5}  "
                  f"{o.get('requests', '?'):>8}  {float(o.get('db_seconds', 0)):6.1f} s")
    return (f"windows: {len(windows)}, at most {peak} at once; {busy:,.0f} window-seconds, "
            f"{in_db:,.0f} of them loading into the database{timeline}")


def cpu_line(label: str, cpu_s: float, records: int) -> str:
    rate = per_thousand(cpu_s, records)
    return f"  {label:<34} {cpu_s:7.1f} CPU-s  {rate:6.2f} per 1,000 records"


def fields_argument(text: str) -> int | str:
    return text if text == "wide" else int(text)


def metadata_file(fields: int | str, folder: Path) -> Path:
    """The $metadata the simulator serves: the default one narrowed, or a Trestle-wide one."""
    if fields != "wide":
        return write_narrowed_metadata(int(fields), folder)
    from tests.wide_metadata import trestle_metadata_xml

    path = folder / "metadata-trestle-wide.xml"
    path.write_bytes(trestle_metadata_xml())
    return path


def children_cpu_s() -> float:
    """CPU of this process's waited-for children (the `sync --wait` subprocess)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=1000)
    parser.add_argument("--minute-quota", type=int, default=280)
    parser.add_argument("--hour-quota", type=int, default=8400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="per worker process")
    parser.add_argument("--window-size", type=int, default=20_000,
                        help="SYNC_WINDOW_SIZE (the production default)")
    parser.add_argument("--max-windows", type=int, default=None,
                        help="SYNC_MAX_CONCURRENT_WINDOWS (default: the setting's default)")
    parser.add_argument("--lanes", type=int, default=None,
                        help="SYNC_WINDOW_LANES (default: the setting's default)")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--fields", type=fields_argument, default=40,
                        help="Property fields served (the default metadata has 122); 'wide': "
                             "a Trestle-shaped $metadata of 588 Property fields, ~280 of them "
                             "populated a record (about 20 KB of JSON)")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--compare-defer", action="store_true",
                        help="run the backfill twice: secondary indexes kept throughout, "
                             "then deferred to the end (the default)")
    parser.add_argument("--windows", action="store_true", help="print each window's timing")
    parser.add_argument("--shared-server", action="store_true",
                        help="use the MariaDB on 127.0.0.1:3306 (its CPU counts other work too)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.shared_server:
            mariadbd, admin_url = find_pid("mariadbd") or find_pid("mysqld"), ADMIN_URL
        else:
            server = stack.enter_context(own_mariadb())
            mariadbd, admin_url = server.pid, server.url()
        run(args, mariadbd, admin_url)


def run(args: argparse.Namespace, mariadbd: int | None, admin_url: str) -> None:
    # --prerender: the simulator's CPU stands in for Trestle's servers, not ours; every run
    # below is served from the same prerendered records.
    sim_args = ["--prerender", "--records", str(args.records), "--latency-ms", str(args.latency_ms),
                "--minute-quota", str(args.minute_quota), "--hour-quota", str(args.hour_quota),
                "--metadata", str(metadata_file(args.fields, Path(tempfile.mkdtemp())))]
    # --compare-defer: the same backfill with the secondary indexes kept throughout, then
    # deferred to the end, in one run (the default, auto, defers them for wide records).
    variants = ([("indexes kept throughout (STORE_DEFER_INDEXES=false)",
                  {"STORE_DEFER_INDEXES": "false"}),
                 ("indexes deferred (STORE_DEFER_INDEXES=true)",
                  {"STORE_DEFER_INDEXES": "true"})]
                if args.compare_defer else [("", {})])
    with simulator_process(*sim_args) as sim:
        results = []
        for position, (label, extra) in enumerate(variants):
            if position:
                time.sleep(61)  # a fresh minute window for the quota
            results.append(celery_run(args, sim, mariadbd, admin_url, label, extra))
        if len(results) == 2:
            before, after = results
            print(f"database CPU-s per record, indexes kept / deferred: "
                  f"{before[2] / after[2]:.2f}x; workers + database: "
                  f"{(before[1] + before[2]) / (after[1] + after[2]):.2f}x")
        if args.skip_single:
            return
        time.sleep(61)  # a fresh minute window for the single thread
        control(sim.odata_root, "stats/reset", "POST")
        env = bench_env(args, sim, admin_url, "unused")
        settings = load_settings(env, env_file=None)
        client = LocalRuntime(settings).trestle_client()
        # The same decoding the workers get (the record's field names, from the metadata).
        client.expect_fields("Property", parse_metadata(client.get_metadata())
                             .resource("Property").record_names())
        control(sim.odata_root, "stats/reset", "POST")  # the metadata request not counted
        started, cpu_before = time.monotonic(), time.process_time()
        walked = sum(len(page.records) for page in walk_keyset(
            client, KeysetRange("Property", "ListingKey"), page_size=args.page_size))
        single_s = time.monotonic() - started
        single_cpu_s = time.process_time() - cpu_before
        single_requests, single_429 = served(sim.odata_root, "trestle-simulator")
        print(f"single thread: {single_s:.1f} s, {walked / single_s:,.0f} records/s, "
              f"{single_requests} requests, {single_429} x 429")
        print(cpu_line("single thread (walk only)", single_cpu_s, walked))
        for (label, _), (celery_s, *_) in zip(variants, results, strict=True):
            print(f"speed-up{f' ({label})' if label else ''}: {single_s / celery_s:.2f}x")


def bench_env(args: argparse.Namespace, sim, admin_url: str, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "SYNC_"))}
    env.update({
        "TRESTLE_CLIENT_ID": "trestle-simulator",
        "TRESTLE_CLIENT_SECRET": "simulator-secret",
        "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
        "DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{database}",
        "REDIS_URL": "redis://127.0.0.1:6379/12", "TRESTLE_RESOURCES": "Property",
        "SYNC_WINDOW_SIZE": str(args.window_size),
        "TRESTLE_PAGE_SIZE": str(args.page_size), "LOG_LEVEL": "WARNING",
    })
    if args.max_windows is not None:
        env["SYNC_MAX_CONCURRENT_WINDOWS"] = str(args.max_windows)
    if args.lanes is not None:
        env["SYNC_WINDOW_LANES"] = str(args.lanes)
    return env


def celery_run(args: argparse.Namespace, sim, mariadbd: int | None, admin_url: str,
               label: str, extra_env: dict[str, str]) -> tuple[float, float, float]:
    """One `sync --wait --full` through fresh workers into a fresh database; prints its
    figures and returns (seconds, workers' CPU-s per record, database's CPU-s per record)."""
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
    workers: list[subprocess.Popen] = []
    try:
        env = {**bench_env(args, sim, admin_url, database), **extra_env}
        redis.Redis(db=12).flushdb()
        for index in range(args.workers):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker",
                 "-c", str(args.concurrency), "-n", f"bench{index}@%h", "--without-gossip",
                 "--without-mingle", "--loglevel", "WARNING"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        worker_meter = CpuMeter([w.pid for w in workers]).start()
        migrate = subprocess.run([sys.executable, "-m", "trestle_tasks", "migrate"], env=env,
                                 capture_output=True, text=True)
        if migrate.returncode:
            sys.exit(migrate.stderr)
        time.sleep(5)  # workers ready
        startup_s = worker_meter.stop()
        control(sim.odata_root, "stats/reset", "POST")
        worker_meter.start()
        db_meter = CpuMeter([mariadbd] if mariadbd else []).start()
        sim_meter = CpuMeter([sim.pid]).start()
        dispatcher_before = children_cpu_s()
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "trestle_tasks", "sync", "--wait",
                              "--full", "--timeout", "3600"], env=env, capture_output=True,
                             text=True)
        celery_s = time.monotonic() - started
        dispatcher_s = children_cpu_s() - dispatcher_before
        workers_s, db_s, sim_s = worker_meter.stop(), db_meter.stop(), sim_meter.stop()
        if label:
            print(f"== {label} ==")
        print(f"{args.records:,} Property records of {args.fields} fields")
        print(run.stdout)
        if run.returncode:
            print(run.stderr[-2000:])
        celery_requests, celery_429 = served(sim.odata_root, "trestle-simulator")
        in_flight = control(sim.odata_root, "stats").get("peak_in_flight", "?")
        allowed = args.minute_quota * celery_s / 60
        print(f"celery ({args.workers} workers x {args.concurrency}): {celery_s:.1f} s, "
              f"{args.records / celery_s:,.0f} records/s, {celery_requests} requests, "
              f"{celery_429} x 429, quota utilization {celery_requests / allowed:.0%} "
              f"(of {allowed:,.0f} allowed in that time), at most {in_flight} requests "
              "in flight")
        print(window_figures(load_settings(env, env_file=None), args.windows))
        print("CPU during the run:")
        print(cpu_line("workers", workers_s, args.records))
        print(cpu_line("database server" if mariadbd else "database server (not found)",
                       db_s, args.records))
        print(cpu_line("workers + database", workers_s + db_s, args.records))
        print(cpu_line("sync --wait (dispatcher)", dispatcher_s, args.records))
        print(cpu_line("simulator (stands in for Trestle)", sim_s, args.records))
        print(f"  worker start-up (apart): {startup_s:.1f} CPU-s")
        return celery_s, workers_s / args.records, db_s / args.records
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=30)
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")


if __name__ == "__main__":
    main()
