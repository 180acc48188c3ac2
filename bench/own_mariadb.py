"""A private MariaDB server for a benchmark: its CPU is the benchmark's alone.

The machine's shared server also serves whatever else runs (other test suites), so its
CPU from /proc counts their work too. This starts `mariadbd` on a fresh data directory in
a temporary folder, on a free port, with the server's defaults (128 MB buffer pool), and
removes it afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


@dataclass(frozen=True)
class OwnServer:
    pid: int
    port: int

    def url(self, database: str = "test") -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def own_mariadb(start_timeout_s: float = 60.0) -> Iterator[OwnServer]:
    folder = Path(tempfile.mkdtemp(prefix="bench-mariadb-"))
    data = folder / "data"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={folder / 'sock'}",
         f"--port={port}", "--bind-address=127.0.0.1", "--user=root",
         f"--pid-file={folder / 'pid'}", "--log-error=" + str(folder / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        own = OwnServer(server.pid, port)
        engine = sa.create_engine(own.url("mysql"))
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS test")
                break
            except sa.exc.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the private MariaDB did not start") from None
                time.sleep(0.5)
        engine.dispose()
        yield own
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)
