"""Benchmark: a reconcile's comparison of the census with the store, held in memory (a
dict, as before) or spilled to disk (sync/census_spill.py), at a feed size you choose.

Each way runs in a fresh process, which prints its peak RSS (ru_maxrss), CPU-seconds and
wall time; the parent prints both side by side. The census is synthetic and generated
lazily (`L000000001`… with timestamps), 300,000 a page as Trestle serves them; the store's
side is the same keys in key order with 1 % stale, 1 % missing from the store, 1 % gone
from the feed and 0.5 % stored deleted, streamed as `Store.stored_versions` streams.

    python -m bench.census_memory                      # 2,000,000 records
    python -m bench.census_memory --records 10000000   # the dict needs ~4.5 GB here
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

PAGE = 300_000


def census_pages(records: int) -> Iterator[list[tuple[str, int]]]:
    page: list[tuple[str, int]] = []
    for i in range(records):
        if i % 100 == 37:  # gone from the feed: stored only
            continue
        page.append((f"L{i:09d}", 638_000_000_000_000_000 + i * 10_000_000 + (i % 7)))
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def stored_rows(records: int) -> Iterator[tuple[str, int | None, bool]]:
    for i in range(records):
        if i % 100 == 53:  # missing from the store
            continue
        ticks = 638_000_000_000_000_000 + i * 10_000_000 + (i % 7)
        if i % 100 == 71:  # stale: the feed's version is newer
            ticks -= 1
        yield f"L{i:09d}", ticks, i % 200 == 11


def run_one(way: str, records: int) -> dict[str, Any]:
    from trestle_tasks.sync.census_spill import CensusSpill
    from trestle_tasks.sync.drift import compare

    wall, cpu = time.monotonic(), time.process_time()
    if way == "dict":
        census: dict[str, int | None] = {}
        for page in census_pages(records):
            census.update(page)
        drift = compare(census, stored_rows(records))
    else:
        with CensusSpill() as spill:
            for page in census_pages(records):
                spill.add(page)
            drift = spill.compare(stored_rows(records))
    return {"way": way, "records": records, "wall_s": round(time.monotonic() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "missing": len(drift.missing), "stale": len(drift.stale),
            "gone": len(drift.gone), "restored": len(drift.restored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--way", choices=("dict", "spill"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        print(json.dumps(run_one(args.way, args.records)))
        return
    print(f"census of {args.records:,} records compared with the store's rows:")
    for way in ("dict", "spill"):
        done = subprocess.run([sys.executable, "-m", "bench.census_memory", "--way", way,
                               "--records", str(args.records)],
                              capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout)
        print(f"  {way:5}  peak RSS {figures['peak_rss_mb']:>6,} MB  CPU {figures['cpu_s']:>6} s"
              f"  wall {figures['wall_s']:>6} s  (missing {figures['missing']:,}, stale "
              f"{figures['stale']:,}, gone {figures['gone']:,}, restored "
              f"{figures['restored']:,})")


if __name__ == "__main__":
    main()
