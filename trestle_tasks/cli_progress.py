"""Progress bars for long commands, drawn on stderr only when stderr is a terminal.

Piped or captured (cron, scripts, tests), click would still print the bar's label as a
line of its own; stderr is kept for the one-line error there, so the bar is left out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click


class QuietBar:
    """The part of click's bar the commands use (length, pos, update), drawing nothing."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.pos = 0
        self.finished = False

    def update(self, steps: int) -> None:
        self.pos += steps


@contextmanager
def progress(label: str, length: int = 0) -> Iterator[Any]:
    """A bar counting `label` up to `length` (which the caller may raise as work is planned)."""
    if not sys.stderr.isatty():
        yield QuietBar(length)
        return
    with click.progressbar(length=length, label=label, show_pos=True, file=sys.stderr) as bar:
        yield bar


def follow(bar: Any, done: int, total: int) -> None:
    """Move `bar` to `done` of `total`, for progress reported as running totals."""
    grow(bar, max(total, done, 1) - bar.length)
    if done > bar.pos:
        bar.update(done - bar.pos)


def grow(bar: Any, more: int) -> None:
    """Raise the bar's length as more work is planned.

    click marks a bar finished once its position reaches its length, and then draws it
    full whatever comes after; more work means it is not finished.
    """
    bar.length += more
    if bar.pos < bar.length:
        bar.finished = False
