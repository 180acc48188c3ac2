"""Benchmark: a first load whose whole cluster is killed halfway, then started again.

The simulator serves N Property records (1 s a page, 280 requests a minute, as Trestle
would). Two Celery workers x 2 and beat sync them into a private MariaDB with the default
settings (`sync --wait --full`). Once half the records are stored, every worker is killed
with SIGKILL (process group: pool children too), as a host reboot would; new workers
start 10 s later and the same `sync --wait` goes on. The script prints when the kill came,
how long the run took after it, the requests and records fetched in all against an
uninterrupted run's (`--baseline`: one run without a kill first), and a reconcile dry run's
verdict on the copy: nothing missing, nothing stale, nothing extra.

    python -m bench.restart_halfway                   # 100,000 listings, ~12 minutes
    python -m bench.restart_halfway --records 200000 --baseline
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

from bench.backfill import control, served
from bench.own_mariadb import own_mariadb
from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.worker import factory


def start_workers(env: dict[str, str], count: int, concurrency: int,
                  log_dir: Path) -> list[subprocess.Popen]:
    workers = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trestle_tasks", "worker", "-c",
         str(concurrency), "-n", f"restart{index}-{uuid.uuid4().hex[:4]}@%h",
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        env=env, stdout=subprocess.DEVNULL,
        stderr=open(log_dir / f"worker{index}.log", "a"),  # noqa: SIM115 (kept by the child)
        start_new_session=True) for index in range(count)]
    time.sleep(5)  # ready
    return workers


def kill(processes: list[subprocess.Popen], how: int = signal.SIGKILL) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, how)
    for process in processes:
        process.wait(timeout=60)


def one_run(env: dict[str, str], args, log_dir: Path, kill_at: float | None) -> dict:
    """A full sync through fresh workers; with `kill_at`, every worker killed once that
    share of the records is stored. Returns the run's figures."""
    settings = load_settings(env, env_file=None)
    store = factory.store(settings)
    workers = start_workers(env, args.workers, args.concurrency, log_dir)
    figures: dict = {}
    try:
        started = time.monotonic()
        sync = subprocess.Popen([sys.executable, "-m", "trestle_tasks", "sync", "--wait",
                                 "--full", "--timeout", "7200"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill_at is not None:
            while sync.poll() is None:
                stored = store.count("Property") if store.has_table("property") else 0
                if stored >= kill_at * args.records:
                    figures["killed_after_s"] = time.monotonic() - started
                    figures["stored_at_kill"] = stored
                    kill(workers)
                    time.sleep(5)
                    workers = start_workers(env, args.workers, args.concurrency, log_dir)
                    figures["restarted_at_s"] = time.monotonic() - started
                    break
                time.sleep(0.5)
        out, err = sync.communicate()
        figures["seconds"] = time.monotonic() - started
        figures["exit"] = sync.returncode
        figures["output"] = (out + err).strip()[-1500:]
        figures["stored"] = store.count("Property")
    finally:
        kill(workers, signal.SIGTERM)
        store.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="share of the records stored when every worker is killed")
    parser.add_argument("--baseline", action="store_true",
                        help="first a run without a kill, for the requests it takes")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    with own_mariadb() as server, simulator_process(
            "--prerender", "--records", str(args.records), "--latency-ms", str(args.latency_ms),
            "--minute-quota", "280", "--hour-quota", "8400") as sim:
        admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("TRESTLE_", "DATABASE_", "REDIS_", "SYNC_", "STORE_"))}
        base_env.update({
            "TRESTLE_CLIENT_ID": "trestle-simulator", "TRESTLE_CLIENT_SECRET": "simulator-secret",
            "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
            "REDIS_URL": "redis://127.0.0.1:6379/13", "TRESTLE_RESOURCES": "Property",
            "LOG_LEVEL": "WARNING",
            # Beat's watchdog repairs what the kill left; its own syncs and polls stay out.
            "SYNC_INTERVAL_MINUTES": "1440", "SYNC_POLL_QUOTA_SHARE": "0"})
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "trestle_tasks", "beat", "--loglevel",
             "WARNING", "-s", str(log_dir / "beat-schedule")],
            env={**base_env, "DATABASE_URL": server.url()}, stdout=subprocess.DEVNULL,
            stderr=open(log_dir / "beat.log", "a"), start_new_session=True)  # noqa: SIM115
        try:
            runs = ([("uninterrupted", None)] if args.baseline else []) + [
                (f"killed at {args.kill_at:.0%}", args.kill_at)]
            for label, kill_at in runs:
                database = f"restart_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
                env = {**base_env, "DATABASE_URL": server.url().rsplit("/", 1)[0]
                       + f"/{database}"}
                redis.Redis(db=13).flushdb()
                subprocess.run([sys.executable, "-m", "trestle_tasks", "migrate"], env=env,
                               check=True, capture_output=True)
                control(sim.odata_root, "stats/reset", "POST")
                figures = one_run(env, args, log_dir, kill_at)
                requests_sent, throttled = served(sim.odata_root, "trestle-simulator")
                records_served = control(sim.odata_root, "stats").get("records_served", "?")
                dry = subprocess.run([sys.executable, "-m", "trestle_tasks", "reconcile",
                                      "--local", "--dry-run"], env=env, capture_output=True,
                                     text=True)
                print(f"== {label}: {args.records:,} listings ==")
                if kill_at is not None:
                    print(f"  every worker killed {figures['killed_after_s']:.0f} s in, with "
                          f"{figures['stored_at_kill']:,} records stored; new workers at "
                          f"{figures['restarted_at_s']:.0f} s")
                print(f"  sync --wait exit {figures['exit']} after {figures['seconds']:.0f} s; "
                      f"{figures['stored']:,} stored; {requests_sent} requests "
                      f"({throttled} x 429), {records_served:,} records served")
                print("  reconcile --dry-run: " + " | ".join(
                    line.strip() for line in dry.stdout.splitlines()[:2]))
                if figures["exit"] != 0:
                    print(figures["output"])
        finally:
            kill([beat], signal.SIGTERM)


if __name__ == "__main__":
    main()
