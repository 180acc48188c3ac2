"""CPU-seconds of other processes, read from /proc (Linux), for the benchmarks.

A process tree's CPU is the user + system time of every live process in it, plus what its
members have collected from children that already exited (cutime/cstime): a prefork pool
that recycles a child must not make the figure go down. The database server is read the
same way, by pid, so its CPU is measured without asking it anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # exited between listing and reading
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2:].split()


def process_cpu_s(pid: int, *, with_reaped_children: bool = True) -> float:
    """utime + stime (and cutime + cstime) of one process, in seconds; 0 when gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def tree_pids(root: int) -> list[int]:
    """`root` and every live descendant."""
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue.extend(_children(pid))
    return pids


def tree_cpu_s(roots: list[int]) -> float:
    return sum(process_cpu_s(pid) for root in roots for pid in tree_pids(root))


def find_pid(name: str) -> int | None:
    """The pid of the (first) process whose command name is `name`, e.g. 'mariadbd'."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name:
                return int(entry.name)
        except OSError:
            continue
    return None


@dataclass
class CpuMeter:
    """CPU-seconds spent by some process trees between `start()` and `stop()`."""

    roots: list[int]
    _before: float = 0.0
    spent_s: float = 0.0

    def start(self) -> CpuMeter:
        self._before = tree_cpu_s(self.roots)
        return self

    def stop(self) -> float:
        self.spent_s = tree_cpu_s(self.roots) - self._before
        return self.spent_s


def per_thousand(cpu_s: float, records: int) -> float:
    return 1000 * cpu_s / records if records else float("nan")
