"""Benchmark: a reconcile dry run of a large MLS, with the peak memory of every process.

The simulator (its own process, `--compact-index`: rows made from ordinals, not held) serves
N listings with up to `--media-max` photos each: 1,000,000 listings and about 25 million
Media rows by default. The store is filled with every Media row's (key, timestamp,
listing) as the feed has it, streamed from a census page by page; then drift is made in
the store (rows lost, rows left stale, rows the feed no longer has). `trestle-etl reconcile
--local --dry-run` runs as a child process; the script prints the requests it made, wall
time, CPU-seconds and peak RSS of the reconcile process, of the simulator and (for a
MariaDB or PostgreSQL store on this machine) of the database server, and the drift the dry
run found, which must be exactly the drift made.

    python -m bench.large                                   # 1 M listings, ~25 M Media, SQLite
    python -m bench.large --records 100000                  # ~2.5 M Media: a few minutes
    python -m bench.large --database-url mysql+pymysql://root@127.0.0.1:3306/bench_large
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.child_process import run_cli
from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store.naming import LOADED_COLUMN, RECORD_COLUMN, VERSION_COLUMN
from trestle_tasks.store.records import layout_of
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.trestle.pager import census_versions
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

CLIENT = {"TRESTLE_CLIENT_ID": "trestle-simulator", "TRESTLE_CLIENT_SECRET": "simulator-secret"}
BATCH = 10_000
DAY_TICKS = 864_000_000_000


def proc_figures(pid: int) -> tuple[float, float]:
    """(peak RSS in MB, CPU-seconds so far) of a running process, from /proc."""
    peak_kb = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return peak_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def database_pid(url: str) -> int | None:
    """The local database server's process, for its CPU and memory (None for SQLite)."""
    name = {"mysql": "mariadbd", "postgresql": "postgres"}.get(url.split("+")[0].split(":")[0])
    if name is None:
        return None
    found = subprocess.run(["pgrep", "-o", "-x", name], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.returncode == 0 and found.stdout else None


def fill_store(settings, store, resource: str, key_field: str, every: int) -> tuple[int, list]:
    """Store every (key, timestamp, parent) the feed has, a census page at a time; returns
    how many and every `every`-th key with its ticks (the sample drift is made from).

    Rows are written with plain INSERTs of the columns a census reads (key, version,
    timestamp, the record's JSON): the loader's validation is not what this measures, and
    it would take most of an hour at 25 million rows."""
    client = LocalRuntime(settings).trestle_client()
    ensure_tables(store, client, [resource])
    layout = layout_of(store.engine, resource)
    insert = layout.table.insert()
    parent = "ResourceRecordKey" if resource == "Media" else None
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    stored, sample = 0, []
    inserting = 0.0
    conn = store.engine.connect()
    if conn.dialect.name == "sqlite":  # a file of gigabytes: keep its indexes in the cache
        conn.exec_driver_sql("PRAGMA cache_size = -2000000")
    for page in census_versions(client, resource, key_field):
        started = time.monotonic()
        for start in range(0, len(page), BATCH):
            rows = []
            for key, ticks in page[start:start + BATCH]:
                stamp = ODataTimestamp(ticks)
                record = {key_field: key, "ModificationTimestamp": stamp.to_odata()}
                row = {layout.key_column: key, VERSION_COLUMN: ticks, LOADED_COLUMN: loaded_at,
                       layout.columns["ModificationTimestamp"]: stamp.to_datetime()}
                if parent:
                    record[parent] = row[layout.columns[parent]] = key[:16]
                row[RECORD_COLUMN] = json.dumps(record, separators=(",", ":"))
                rows.append(row)
            conn.execute(insert, rows)
            conn.commit()
        inserting += time.monotonic() - started
        sample.extend(pair for i, pair in enumerate(page, stored) if i % every == 0)
        stored += len(page)
        print(f"  stored {stored:,} ({inserting:.0f} s inserting)", end="\r", flush=True)
    conn.close()
    print()
    return stored, sample


def make_drift(store, resource: str, sample: list, args) -> dict[str, int]:
    """Lose rows, age rows and add rows the feed does not have, in the store."""
    layout = layout_of(store.engine, resource)
    table, key_column = layout.table, layout.table.c[layout.key_column]
    lost = [key for key, _ in sample[: args.lost]]
    stale = [key for key, _ in sample[args.lost : args.lost + args.stale]]
    with store.engine.begin() as conn:
        conn.execute(sa.delete(table).where(key_column.in_(lost)))
        # A day behind the feed: what a missed change leaves (the loader's guard would
        # refuse to write an older version, so the column is set here).
        conn.execute(sa.update(table).where(key_column.in_(stale)).values(
            {VERSION_COLUMN: table.c[VERSION_COLUMN] - DAY_TICKS}))
    store.upsert(resource, [
        {layout.key_field.name: f"zz-not-in-the-feed-{i:08d}",
         "ModificationTimestamp": ODataTimestamp(sample[0][1]).to_odata()}
        for i in range(args.gone)])
    return {"missing": len(lost), "stale": len(stale), "gone": args.gone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="listings")
    parser.add_argument("--media-max", type=int, default=64,
                        help="most photos a listing has (64: ~25 a listing on average)")
    parser.add_argument("--resource", default="Media", choices=("Media", "Property"))
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--lost", type=int, default=100, help="rows lost from the store")
    parser.add_argument("--stale", type=int, default=100, help="rows left a day behind")
    parser.add_argument("--gone", type=int, default=100, help="rows the feed does not have")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-large-"))
    database_url = args.database_url or f"sqlite:///{folder / 'large.sqlite3'}"
    key_field = "MediaKey" if args.resource == "Media" else "ListingKey"
    started = time.monotonic()
    with simulator_process("--records", str(args.records), "--media-max", str(args.media_max),
                           "--compact-index", "--minute-quota", "280",
                           "--hour-quota", "8400") as sim:
        sim_peak, sim_cpu = proc_figures(sim.pid)
        print(f"simulator up in {time.monotonic() - started:.0f} s: peak RSS {sim_peak:,.0f} MB, "
              f"{sim_cpu:.0f} CPU-s ({args.records:,} listings, compact index)")
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("TRESTLE_", "DATABASE_"))}
        env = {**inherited, **CLIENT, "TRESTLE_TOKEN_URL": sim.token_url,
               "TRESTLE_BASE_URL": sim.odata_root, "DATABASE_URL": database_url,
               "TRESTLE_RESOURCES": args.resource, "LOCK_DIR": str(folder),
               "LOG_LEVEL": "WARNING"}
        settings = load_settings(env, env_file=None)
        store = factory.store(settings)
        started = time.monotonic()
        stored, sample = fill_store(settings, store, args.resource, key_field,
                                    every=max(1, args.records // 100))
        print(f"store filled with {stored:,} {args.resource} rows in "
              f"{time.monotonic() - started:.0f} s")
        made = make_drift(store, args.resource, sample, args)
        store.dispose()
        print(f"drift made in the store: {made}")

        db_pid = database_pid(database_url)
        db_before = proc_figures(db_pid) if db_pid else None
        sim_before = proc_figures(sim.pid)
        wall, cpu, peak, out = run_cli(env, "reconcile", "--local", "--dry-run")
        sim_after = proc_figures(sim.pid)
        print(f"reconcile --dry-run of {stored:,} {args.resource} rows: {wall:.0f} s wall")
        print(f"  reconcile process: peak RSS {peak:,.0f} MB, {cpu:.1f} CPU-s")
        print(f"  simulator:         peak RSS {sim_after[0]:,.0f} MB, "
              f"{sim_after[1] - sim_before[1]:.1f} CPU-s")
        if db_pid and db_before:
            db_after = proc_figures(db_pid)
            print(f"  database server:   peak RSS {db_after[0]:,.0f} MB (its buffer pool "
                  f"included), {db_after[1] - db_before[1]:.1f} CPU-s")
        header, row = (line for line in out.splitlines()
                       if line.startswith(("resource", args.resource)))
        found = dict(zip(header.split()[1:], row.split()[1:], strict=False))
        print(f"  found: census {found.get('census')}, missing {found.get('missing')}, "
              f"stale {found.get('stale')}, gone {found.get('gone')}; "
              f"{found.get('requests')} requests")
        wrong = [name for name, count in made.items() if found.get(name) != f"{count:,}"
                 and found.get(name) != str(count)]
        if wrong:
            raise SystemExit(f"the dry run did not find the drift made: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
