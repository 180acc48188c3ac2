"""The deadlines' one watcher thread (trestle/deadline.py): each deadline fires at its
time unless cancelled first, a sooner one added later is not kept waiting behind a later
one, and a forked child (a Celery prefork worker) gets a watcher of its own."""

from __future__ import annotations

import multiprocessing
import random
import socket
import time

from trestle_tasks.trestle.deadline import AnswerDeadline


def test_each_fires_at_its_time_unless_cancelled():
    rng = random.Random(7)
    late = AnswerDeadline(30)  # the watcher waits for it first: the others come sooner
    deadlines = [(AnswerDeadline(rng.uniform(0.05, 0.4)), rng.random() < 0.5)
                 for _ in range(40)]
    for deadline, cancel in deadlines:
        if cancel:
            deadline.cancel()
    started = time.monotonic()
    while time.monotonic() - started < 3 and not all(
            d.fired for d, cancel in deadlines if not cancel):
        time.sleep(0.02)
    assert time.monotonic() - started < 1.0  # none waited behind the 30 s one
    assert all(d.fired != cancel for d, cancel in deadlines)
    assert not late.fired
    late.cancel()


def test_a_fired_deadline_ends_a_blocked_read():
    ours, theirs = socket.socketpair()
    try:
        deadline = AnswerDeadline(0.2)
        deadline.attach(ours)
        started = time.monotonic()
        assert ours.recv(10) == b""  # ended by the shutdown, not by data
        assert 0.15 <= time.monotonic() - started < 2
        assert deadline.fired
    finally:
        ours.close()
        theirs.close()


def _fires_in_child(queue: multiprocessing.Queue) -> None:
    deadline = AnswerDeadline(0.1)
    time.sleep(0.5)
    queue.put(deadline.fired)


def test_a_forked_child_has_a_watcher_of_its_own():
    AnswerDeadline(0.01)  # the parent's watcher thread is running
    time.sleep(0.05)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fires_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=10) is True
    finally:
        child.join(10)
