"""Benchmark: what a reconcile of a large Property feed costs, and what it finds.

The simulator (its own process) serves N Property records. The store is filled with every
record's (key, ModificationTimestamp) as the feed has it — what a finished sync leaves, as
far as a census can tell — then drift is made on both sides: listings arrive in the feed
stamped 30 days ago, listings change with a timestamp below the watermark, listings leave
the feed, and rows are lost from the store. `trestle-etl reconcile --local --dry-run`, then
`trestle-etl reconcile --local` twice run as child processes; for each the script prints
the requests Trestle served, wall time, the child's CPU-seconds and peak memory, and the
drift figures from the sync log.

    python -m bench.reconcile                       # 1,000,000 records into SQLite
    python -m bench.reconcile --records 200000 --database-url mysql+pymysql://root@127.0.0.1:3306/bench
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import requests

from bench.child_process import run_cli
from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.trestle.pager import census_versions
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

DAY_TICKS = 864_000_000_000
CLIENT = {"TRESTLE_CLIENT_ID": "trestle-simulator", "TRESTLE_CLIENT_SECRET": "simulator-secret"}


def control(odata_root: str, path: str, method: str = "GET", **kwargs) -> dict:
    url = odata_root.replace("/trestle/odata", f"/simulator/{path}")
    response = requests.request(method, url, timeout=600, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else {}


def served(odata_root: str) -> int:
    stats = control(odata_root, "stats")["requests"]
    return int(stats.get(CLIENT["TRESTLE_CLIENT_ID"], {}).get("total", 0))


def fill_store(settings, store) -> tuple[list[tuple[str, int | None]], int]:
    """Store every (key, timestamp) of the feed; returns them and the newest timestamp."""
    client = LocalRuntime(settings).trestle_client()
    ensure_tables(store, client, ["Property"])
    census = [pair for page in census_versions(client, "Property", "ListingKey")
              for pair in page]
    batch = []
    for key, ticks in census:
        batch.append({"ListingKey": key,
                      "ModificationTimestamp": ODataTimestamp(ticks).to_odata()})
        if len(batch) == 5000:
            store.upsert("Property", batch)
            batch = []
    if batch:
        store.upsert("Property", batch)
    newest = max(t for _, t in census if t is not None)
    return census, newest


def one_record(token_url: str, odata_root: str) -> dict:
    """A listing as the feed sends it (plain JSON: the client's records carry Decimals)."""
    token = requests.post(token_url, timeout=30, data={
        "client_id": CLIENT["TRESTLE_CLIENT_ID"], "client_secret": CLIENT["TRESTLE_CLIENT_SECRET"],
        "grant_type": "client_credentials", "scope": "api"}).json()["access_token"]
    page = requests.get(f"{odata_root}/Property", params={"$top": 1}, timeout=60,
                        headers={"Authorization": f"Bearer {token}"})
    page.raise_for_status()
    return page.json()["value"][0]


def make_drift(store, sim, census, newest: int, args) -> None:
    odata_root = sim.odata_root
    template = one_record(sim.token_url, odata_root)
    old = ODataTimestamp(newest - 30 * DAY_TICKS).to_odata()
    arrivals = [{**template, "ListingKey": uuid.uuid4().hex[:16], "ListingId": f"A{i:09d}",
                 "PhotosCount": 0, "PhotosChangeTimestamp": None, "ModificationTimestamp": old}
                for i in range(args.arrive)]
    control(odata_root, "records/Property", "POST", json=arrivals)
    step = max(1, len(census) // max(1, args.change + args.leave + args.lost))
    picked = [census[i][0] for i in range(0, len(census), step)]
    changed, picked = picked[:args.change], picked[args.change:]
    control(odata_root, "records/Property", "POST", json=[
        {"ListingKey": key, "PublicRemarks": "changed below the watermark",
         "ModificationTimestamp": ODataTimestamp(newest).to_odata()} for key in changed])
    leaving, picked = picked[:args.leave], picked[args.leave:]
    for key in leaving:
        control(odata_root, f"records/Property/{key}", "DELETE")
    lost = picked[:args.lost]
    import sqlalchemy as sa

    from trestle_tasks.store.records import layout_of

    layout = layout_of(store.engine, "Property")
    with store.engine.begin() as conn:
        conn.execute(sa.delete(layout.table).where(
            layout.table.c[layout.key_column].in_(lost)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--arrive", type=int, default=120,
                        help="listings that arrive stamped 30 days ago")
    parser.add_argument("--change", type=int, default=30,
                        help="listings changed with a timestamp below the watermark")
    parser.add_argument("--leave", type=int, default=50, help="listings that leave the feed")
    parser.add_argument("--lost", type=int, default=100, help="rows lost from the store")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    database_url = args.database_url or f"sqlite:///{folder / 'bench.sqlite3'}"
    with simulator_process("--records", str(args.records), "--minute-quota", "280",
                           "--hour-quota", "8400") as sim:
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("TRESTLE_", "DATABASE_"))}
        env = {**inherited, **CLIENT, "TRESTLE_TOKEN_URL": sim.token_url,
               "TRESTLE_BASE_URL": sim.odata_root,
               "DATABASE_URL": database_url, "TRESTLE_RESOURCES": "Property",
               "LOCK_DIR": str(folder), "LOG_LEVEL": "WARNING"}
        settings = load_settings(env, env_file=None)
        store = factory.store(settings)
        started = time.monotonic()
        census, newest = fill_store(settings, store)
        print(f"store filled with {len(census):,} (key, timestamp) pairs in "
              f"{time.monotonic() - started:.0f} s")
        make_drift(store, sim, census, newest, args)
        del census
        print(f"drift made: {args.arrive} arrive 30 days old, {args.change} change below the "
              f"watermark, {args.leave} leave the feed, {args.lost} rows lost from the store")
        for label, extra in (("dry run", ("--dry-run",)), ("reconcile", ()),
                             ("again", ())):
            requests_before = served(sim.odata_root)
            wall, cpu, peak_mb, out = run_cli(env, "reconcile", "--local", *extra)
            sent = served(sim.odata_root) - requests_before
            row = next(line for line in out.splitlines() if line.startswith("Property"))
            print(f"{label:<10} {sent:>3} requests  {wall:6.1f} s  {cpu:6.1f} CPU-s  "
                  f"peak {peak_mb:,.0f} MB   census missing stale gone fetched deleted: "
                  f"{' '.join(row.split()[1:7])}")
        store.dispose()


if __name__ == "__main__":
    main()
