"""Run `trestle-etl simulator` in its own process for benchmarks.

A separate process keeps the simulator's JSON encoding off the measured process's GIL,
so the figures are the client's own cost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatorEndpoints:
    token_url: str
    odata_root: str
    pid: int


@contextmanager
def simulator_process(*args: str, start_timeout_s: float = 600.0) -> Iterator[SimulatorEndpoints]:
    command = [sys.executable, "-m", "trestle_tasks", "simulator", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        token_url = odata_root = None
        deadline = time.monotonic() + start_timeout_s
        assert process.stdout is not None
        while (token_url is None or odata_root is None) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"simulator exited with code {process.wait()}")
            if line.startswith("Token URL:"):
                token_url = line.split(":", 1)[1].strip()
            elif line.startswith("OData root:"):
                odata_root = line.split(":", 1)[1].strip()
        if token_url is None or odata_root is None:
            raise RuntimeError("simulator did not announce its URLs in time")
        yield SimulatorEndpoints(token_url, odata_root, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
