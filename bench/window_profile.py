"""Profile: where the CPU of one window goes, client to committed rows, in one process.

The simulator (its own process, records prerendered, no latency) serves N Property records;
this process walks them in keyset order the way a sync window does and upserts each page
into a fresh MariaDB database, under cProfile with a CPU-time clock (or pyinstrument).
Pages are fetched and loaded one after another on this thread, without the window's
prefetch thread, so every CPU-second is seen by the profiler. Prints this process's CPU
and the database server's (mariadbd, from /proc) per 1,000 records, the table's size on disk
per record, the time by stage, and the functions with the most time of their own.

    python -m bench.window_profile                        # 20,000 records, cProfile
    python -m bench.window_profile --records 5000 --profiler pyinstrument
    python -m bench.window_profile --profiler none        # CPU figures without overhead
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from bench.backfill import fields_argument, metadata_file
from bench.cpu import CpuMeter, find_pid, per_thousand
from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.store.store import Store
from trestle_tasks.sync.window import expect_record_fields
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.worker.runtime import LocalRuntime

ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

# Stages, each the cumulative time of functions that do not call one another.
# (file suffix, function name); `None` as the file matches any file.
STAGES: list[tuple[str, list[tuple[str | None, str]]]] = [
    ("HTTP, gzip (requests)", [("requests/sessions.py", "get")]),
    ("JSON decode of the body", [("trestle/http.py", "parse_json_body")]),
    ("page validation", [("trestle/client.py", "_to_page")]),
    ("transform + validation", [("store/transform.py", "prepare")]),
    ("  of which: document JSON", [("store/jsontext.py", "encode_json"),
                                   ("store/jsontext.py", "encode_plain")]),
    ("duplicates, sort, chunk", [("store/loader.py", "collapse_duplicates"),
                                 ("store/loader.py", "chunk_rows")]),
    ("parameters (bind processors)", [("store/loader.py", "parameters")]),
    ("escaping: values written in", [("store/literal_sql.py", "render"),
                                     ("pymysql/cursors.py", "_mogrify")]),
    ("SQL send + wait (pymysql _query)", [("pymysql/cursors.py", "_query")]),
    ("bookkeeping (counts, rejects)", [("store/loader.py", "_bookkeeping")]),
    ("commit", [("pymysql/connections.py", "commit")]),
]


def stage_seconds(stats: pstats.Stats, functions: list[tuple[str | None, str]]) -> float:
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in \
            stats.stats.items():  # type: ignore[attr-defined]
        for suffix, wanted in functions:
            if name == wanted and (suffix is None or filename.endswith(suffix)):
                total += cumulative
    return total


def sync_one_window(client, store: Store, page_size: int) -> int:
    expect_record_fields(client, store, "Property")  # as a window does
    loaded = 0
    for page in walk_keyset(client, KeysetRange("Property", "ListingKey"),
                            page_size=page_size):
        result = store.upsert("Property", page.records)
        assert result.rejected == 0, result.rejections[:1]
        loaded += result.upserted
    return loaded


@contextmanager
def profiled(kind: str) -> Iterator[Callable[[], None]]:
    """Runs the block under `kind` ('cprofile', 'pyinstrument' or 'none'); the yielded
    function prints the report."""
    if kind == "cprofile":
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        report: list[Callable[[], None]] = [lambda: None]
        try:
            yield lambda: report[0]()
        finally:
            profiler.disable()
            report[0] = lambda: print_cprofile(profiler)
    elif kind == "pyinstrument":
        from pyinstrument import Profiler  # a benchmark-only dependency

        sampler = Profiler(interval=0.0005)
        sampler.start()
        try:
            yield lambda: print(sampler.output_text(unicode=True, color=False, show_all=False))
        finally:
            sampler.stop()
    else:
        yield lambda: None


def print_cprofile(profiler: cProfile.Profile) -> None:
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\nby stage (cProfile, CPU clock; {total:.2f} s profiled):")
    for label, functions in STAGES:
        seconds = stage_seconds(stats, functions)
        print(f"  {label:<36} {seconds:7.2f} s  {seconds / total:6.1%}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print("\nfunctions by own time:")
    print("\n".join(out.getvalue().splitlines()[6:]))


def print_table_size(admin: sa.Engine, database: str, loaded: int) -> None:
    """InnoDB's bytes for the table (data, indexes), per record, after fresh statistics."""
    with admin.connect() as conn:
        conn.exec_driver_sql(f"ANALYZE TABLE `{database}`.property").all()
        data, index = conn.exec_driver_sql(
            "SELECT data_length, index_length FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'property'", (database,)).one()
    print(f"  table on disk       {data / 1e6:6.1f} MB data + {index / 1e6:.1f} MB indexes: "
          f"{(data + index) / max(loaded, 1) / 1000:.1f} KB a record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--fields", type=fields_argument, default=122,
                        help="Property fields served (122: the default metadata; 'wide': "
                             "588, Trestle-shaped, ~280 populated)")
    parser.add_argument("--profiler", choices=("cprofile", "pyinstrument", "none"),
                        default="cprofile")
    args = parser.parse_args()

    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
    mariadbd = find_pid("mariadbd") or find_pid("mysqld")
    try:
        metadata = ([] if args.fields == 122 else
                    ["--metadata", str(metadata_file(args.fields, Path(tempfile.mkdtemp())))])
        with simulator_process("--prerender", "--records", str(args.records), *metadata,
                               "--minute-quota", "100000", "--hour-quota", "1000000") as sim:
            env = {
                "TRESTLE_CLIENT_ID": "trestle-simulator",
                "TRESTLE_CLIENT_SECRET": "simulator-secret",
                "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
                "DATABASE_URL": f"mysql+pymysql://root@127.0.0.1:3306/{database}",
                "TRESTLE_RESOURCES": "Property", "LOG_LEVEL": "WARNING",
            }
            settings = load_settings(env, env_file=None)
            client = LocalRuntime(settings).trestle_client()
            store = Store.from_url(settings.database_url)
            store.migrate(client.get_metadata(), ["Property"])
            store.loader("Property")  # the catalog read, once per process, not per window
            started, cpu_before = time.monotonic(), time.process_time()
            usage_before = resource.getrusage(resource.RUSAGE_SELF)
            db = CpuMeter([mariadbd] if mariadbd else []).start()
            sim_meter = CpuMeter([sim.pid]).start()
            with profiled(args.profiler) as report:
                loaded = sync_one_window(client, store, args.page_size)
            wall_s = time.monotonic() - started
            cpu_s = time.process_time() - cpu_before
            usage = resource.getrusage(resource.RUSAGE_SELF)
            db_s, sim_s = db.stop(), sim_meter.stop()
            store.dispose()
            print(f"{loaded:,} records in {wall_s:.1f} s ({args.profiler})")
            print(f"  this process        {cpu_s:6.2f} CPU-s  "
                  f"{per_thousand(cpu_s, loaded):5.2f} per 1,000 records")
            # Kernel time is mostly page faults: memory the allocator gave back and takes
            # again, page after page.
            print(f"    of which kernel   {usage.ru_stime - usage_before.ru_stime:6.2f} CPU-s  "
                  f"{usage.ru_minflt - usage_before.ru_minflt:,} page faults")
            print(f"  database server     {db_s:6.2f} CPU-s  "
                  f"{per_thousand(db_s, loaded):5.2f} per 1,000 records")
            print(f"  both                {cpu_s + db_s:6.2f} CPU-s  "
                  f"{per_thousand(cpu_s + db_s, loaded):5.2f} per 1,000 records")
            print(f"  simulator (apart)   {sim_s:6.2f} CPU-s")
            print_table_size(admin, database, loaded)
            report()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")


if __name__ == "__main__":
    main()
