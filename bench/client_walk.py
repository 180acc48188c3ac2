"""Benchmark: the client's cost for a walk of N wide Property records from the simulator.

Starts the simulator in its own process with zero latency and no quota, walks every
Property record with the pipeline's client (keyset paging, 1,000 a page), and prints:
records per second of wall time (bounded by the simulator, which shares the machine),
records per second of the client's own CPU time (its real cost: HTTP, gzip, JSON with
exact decimals, validation), and the peak memory of the walking process.

    python -m bench.client_walk --records 100000
    python -m bench.client_walk --records 100000 --faults   # 5% 5xx, 5% 429, 1% resets
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections import Counter

import requests

from bench.simulator_process import simulator_process
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.core.settings import load_settings
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--metadata", help="EDMX file for the simulator (default: its own)")
    parser.add_argument("--faults", action="store_true",
                        help="inject 5%% 5xx, 5%% 429 and 1%% connection resets")
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
        # Fast retries: the faults are injected, not a real outage to wait out.
        retry = RetryPolicy(budget_s=120, base_delay_s=0.01, max_delay_s=0.2)
        client = TrestleClient(session=factory.http_session(), odata_root=settings.base_url,
                               tokens=LocalRuntime(settings).token_provider(),
                               retry=retry, timeout_s=settings.http_timeout_s)
        client.get_page(client.odata_root + "/Property?$top=1")  # token and connection warm-up
        if args.faults:
            requests.put(endpoints.odata_root.replace("/trestle/odata", "/simulator/config"),
                         json={"rate_5xx": 0.05, "rate_429": 0.05,
                               "rate_connection_reset": 0.01, "fault_seed": 1},
                         timeout=10).raise_for_status()

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seen: Counter[str] = Counter()
        fields = 0
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        for page in walk_keyset(client, KeysetRange("Property", "ListingKey")):
            seen.update(record["ListingKey"] for record in page.records)
            if page.records:
                fields = max(fields, len(page.records[0]))
        wall = time.perf_counter() - wall_started
        cpu = time.process_time() - cpu_started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    total = sum(seen.values())
    print(f"records walked:       {total:,} ({len(seen):,} distinct keys), {fields} fields each")
    print(f"requests:             {client.stats.requests:,} "
          f"(retries {client.stats.retries:,}, 429s {client.stats.rate_limited:,})")
    print(f"wall time:            {wall:.1f} s -> {total / wall:,.0f} records/s")
    print(f"client CPU time:      {cpu:.1f} s -> {total / cpu:,.0f} records/s parsed")
    print(f"peak RSS:             {rss_after / 1024:,.0f} MiB "
          f"(+{(rss_after - rss_before) / 1024:,.0f} MiB during the walk)")
    if len(seen) != args.records or total != len(seen):
        sys.exit(f"FAILED: expected {args.records:,} records once each; "
                 f"walked {total:,} rows, {len(seen):,} distinct")
    print("every record exactly once: yes")


if __name__ == "__main__":
    main()
