"""Benchmark: the client's cost for a walk of N wide Property records from the simulator.

Starts the simulator in its own process with zero latency and no quota, walks every
Property record with the pipeline's client (keyset paging, 1,000 a page), and prints
records parsed per second and the walk's peak memory (Python allocations, tracemalloc).

    python -m bench.client_walk --records 100000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

from bench.simulator_process import simulator_process
from trestle_tasks import factory
from trestle_tasks.settings import load_settings
from trestle_tasks.trestle.pager import KeysetWindow, walk_keyset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--metadata", help="EDMX file for the simulator (default: its own)")
    args = parser.parse_args()

    sim_args = ["--records", str(args.records), "--seed", str(args.seed),
                "--minute-quota", "1000000", "--hour-quota", "100000000"]
    if args.metadata:
        sim_args += ["--metadata", args.metadata]
    os.environ.pop("TRESTLE_CLIENT_ID", None)
    os.environ.pop("TRESTLE_CLIENT_SECRET", None)
    print(f"starting the simulator with {args.records:,} Property records …", flush=True)
    started = time.perf_counter()
    with simulator_process(*sim_args) as endpoints:
        print(f"simulator ready in {time.perf_counter() - started:.1f} s", flush=True)
        settings = load_settings(
            {
                "TRESTLE_CLIENT_ID": "trestle-simulator",
                "TRESTLE_CLIENT_SECRET": "simulator-secret",
                "TRESTLE_TOKEN_URL": endpoints.token_url,
                "TRESTLE_BASE_URL": endpoints.odata_root,
            },
            env_file=None,
        )
        client = factory.trestle_client(settings, shared=False)
        client.get_page(client.odata_root + "/Property?$top=1")  # token and connection warm-up

        tracemalloc.start()
        keys: set[str] = set()
        fields = 0
        started = time.perf_counter()
        for page in walk_keyset(client, KeysetWindow("Property", "ListingKey")):
            for record in page.records:
                keys.add(record["ListingKey"])
            if page.records:
                fields = max(fields, len(page.records[0]))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"records walked:      {len(keys):,} (distinct keys), {fields} fields each")
    print(f"requests:            {client.stats.requests:,}")
    print(f"elapsed:             {elapsed:.1f} s")
    print(f"records parsed/s:    {len(keys) / elapsed:,.0f}")
    print(f"peak traced memory:  {peak / 2**20:,.1f} MiB (Python allocations during the walk)")
    print(f"max RSS:             {rss_mb:,.0f} MiB (whole benchmark process)")
    if len(keys) != args.records:
        sys.exit(f"FAILED: expected {args.records:,} records, walked {len(keys):,}")


if __name__ == "__main__":
    main()
