"""Benchmark: instructions the transform spends on one record (validation, row, document).

Counted by valgrind's callgrind, not timed: on shared, noisy cores a CPU-second figure
moves by a quarter from run to run, an instruction count by about 1 % (hash seeds). The
simulator serves N Property records (default or wide metadata); they are fetched once and
saved, then a child process under callgrind loads them and runs `RecordTransformer.prepare`
over each, and again without the prepare; the difference divided by N is printed.

    python -m bench.prepare_cost                  # 2,000 records, 122 fields
    python -m bench.prepare_cost --fields wide    # 588 fields, Trestle-shaped
"""

from __future__ import annotations

import argparse
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.backfill import fields_argument, metadata_file
from bench.simulator_process import simulator_process
from trestle_tasks.core.settings import load_settings
from trestle_tasks.edm.metadata import parse_metadata
from trestle_tasks.store.schema import plan_layout
from trestle_tasks.store.transform import RecordTransformer
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.worker.runtime import LocalRuntime


def fetch(records: int, fields: int | str, folder: Path) -> Path:
    metadata = ([] if fields == 122 else
                ["--metadata", str(metadata_file(fields, folder))])
    with simulator_process("--prerender", "--records", str(records), *metadata,
                           "--minute-quota", "100000", "--hour-quota", "1000000") as sim:
        env = {"TRESTLE_CLIENT_ID": "trestle-simulator",
               "TRESTLE_CLIENT_SECRET": "simulator-secret",
               "TRESTLE_TOKEN_URL": sim.token_url, "TRESTLE_BASE_URL": sim.odata_root,
               "DATABASE_URL": "sqlite://", "TRESTLE_RESOURCES": "Property",
               "LOG_LEVEL": "WARNING"}
        client = LocalRuntime(load_settings(env, env_file=None)).trestle_client()
        saved = (client.get_metadata(), [
            record for page in walk_keyset(client, KeysetRange("Property", "ListingKey"),
                                           page_size=1000) for record in page.records])
    path = folder / "records.pickle"
    path.write_bytes(pickle.dumps(saved))
    return path


def run_prepare(path: str, mode: str) -> None:
    """The child's work: load the records, and prepare each unless `mode` is 'load'."""
    metadata, records = pickle.loads(Path(path).read_bytes())
    transformer = RecordTransformer(plan_layout(parse_metadata(metadata).resource("Property")))
    if mode == "prepare":
        now = datetime.now(UTC)
        for record in records:
            transformer.prepare(record, now)


def instructions(path: Path, mode: str) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "bench.prepare_cost", "--child", str(path), mode],
        capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count: {done.stderr[-1000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--fields", type=fields_argument, default=122,
                        help="Property fields served (122, or 'wide': 588)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_prepare(*args.child)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as folder:
        path = fetch(args.records, args.fields, Path(folder))
        base, total = instructions(path, "load"), instructions(path, "prepare")
    per_record = (total - base) / args.records
    print(f"prepare, {args.records:,} records of {args.fields} fields: "
          f"{per_record / 1e6:.2f} M instructions a record (callgrind)")


if __name__ == "__main__":
    main()
