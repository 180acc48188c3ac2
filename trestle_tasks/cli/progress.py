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


class DeferredBar:
    """click's bar, drawn only once there is something to count.

    Before the first stage has planned any work the length is 0, and click would draw an
    empty `0/0` bar under the stage's own message; this one waits for a length."""

    def __init__(self, label: str, length: int) -> None:
        self._label = label
        self._pending = QuietBar(length)
        self._bar: Any = None
        self._show()

    @property
    def length(self) -> int:
        return int((self._bar or self._pending).length)

    @length.setter
    def length(self, value: int) -> None:
        (self._bar or self._pending).length = value
        self._show()

    @property
    def pos(self) -> int:
        return int((self._bar or self._pending).pos)

    @property
    def finished(self) -> bool:
        return bool((self._bar or self._pending).finished)

    @finished.setter
    def finished(self, value: bool) -> None:
        (self._bar or self._pending).finished = value

    def update(self, steps: int) -> None:
        (self._bar or self._pending).update(steps)
        self._show()

    def _show(self) -> None:
        if self._bar is not None or self._pending.length <= 0:
            return
        bar = click.progressbar(length=self._pending.length, label=self._label,
                                show_pos=True, file=sys.stderr)
        self._bar = bar.__enter__()
        if self._pending.pos:
            self._bar.update(self._pending.pos)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@contextmanager
def progress(label: str, length: int = 0) -> Iterator[Any]:
    """A bar counting `label` up to `length` (which the caller may raise as work is planned)."""
    if not sys.stderr.isatty():
        yield QuietBar(length)
        return
    bar = DeferredBar(label, length)
    try:
        yield bar
    finally:
        bar.close()


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
