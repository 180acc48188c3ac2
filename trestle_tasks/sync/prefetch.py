"""Read pages ahead while the current page is loaded into the database.

A window's time per page is the request (latency included) plus the upsert; fetching the
next page on a helper thread while the current one is written overlaps the two, so a
window takes about the longer of them instead of their sum. At most `depth` pages wait in
memory, so a window's memory still does not grow with its size.
"""

from __future__ import annotations

import contextvars
import enum
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

T = TypeVar("T")


class _End(enum.Enum):
    DONE = enum.auto()


_DONE: Final = _End.DONE  # a source is exhausted (an enum member, so `is` narrows for mypy)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def interleaved(sources: Sequence[Iterator[T]], depth: int = 1) -> Iterator[T]:
    """The items of every source, each produced on a helper thread of its own, in the
    order they are ready (a window's lanes: each walks its stretch while the caller loads
    whatever page came first). At most `depth` items wait in all, plus one in the hands
    of each helper waiting for room: when the caller is the slower side (a busy database),
    lanes do not pile pages up in memory. The first error of any source is raised here
    and stops them all.
    """
    ahead: queue.Queue[T | _End | _Failed] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _End | _Failed) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce(source: Iterator[T]) -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))

    helpers = []
    for number, source in enumerate(sources):
        context = contextvars.copy_context()
        name = "page-prefetch" if len(sources) == 1 else f"page-prefetch-lane-{number}"
        helper = threading.Thread(target=context.run, args=(produce, source), name=name,
                                  daemon=True)
        helper.start()
        helpers.append(helper)
    running = len(helpers)
    try:
        while running:
            item = ahead.get()
            if item is _DONE:
                running -= 1
                continue
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        for helper in helpers:
            helper.join(timeout=60)
