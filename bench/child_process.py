"""Run a command as a child process and measure it: wall time, CPU-seconds, peak RSS.

The peak is the child's own `VmHWM`, read from /proc while it runs, not `ru_maxrss`:
Linux counts in `ru_maxrss` the forked child before it execs, whose resident pages are
the parent's, so a benchmark holding 2.5 GB (a big SQLite cache while it filled the store)
reported 2.6 GB for a reconcile that peaked at 290 MB. VmHWM belongs to the program after
exec; it only grows, so the last reading before the child exits is its peak (a rise in
the final 0.1 s could be missed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float
    peak_mb: float
    returncode: int
    stdout: str
    stderr: str


def _peak_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_measured(command: list[str], env: dict[str, str]) -> Measured:
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _peak_kb(child.pid) or 0)
            time.sleep(0.1)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Measured(wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024,
                        child.returncode, out.read(), err.read())


def run_cli(env: dict[str, str], *args: str) -> tuple[float, float, float, str]:
    """Wall seconds, CPU-seconds, peak RSS (MB) and output of one `trestle-etl` child
    process; exits with its error output if it fails."""
    done = run_measured([sys.executable, "-m", "trestle_tasks", *args], env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.wall_s, done.cpu_s, done.peak_mb, done.stdout
