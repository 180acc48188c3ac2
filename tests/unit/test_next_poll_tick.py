"""The poll task sends the next tick for the moment a poll falls due between two of beat's
ticks (otherwise it would wait for beat's next one), and sends nothing otherwise."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.worker import tasks
from trestle_tasks.worker.celery_settings import POLL_TICK_S


class Sent:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, **options) -> None:
        self.calls.append(options)


@pytest.fixture
def sent(monkeypatch) -> Sent:
    recorder = Sent()
    monkeypatch.setattr(tasks.poll, "apply_async", recorder)
    return recorder


@given(offset=st.floats(-60.0, 60.0))
def test_a_tick_is_sent_only_for_a_poll_due_before_beat_s_next(offset):
    recorder = Sent()
    original = tasks.poll.apply_async
    tasks.poll.apply_async = recorder
    try:
        before = time.time()
        tasks._send_next_tick("east", before + offset)
    finally:
        tasks.poll.apply_async = original
    if offset >= POLL_TICK_S + 0.05 or offset <= 0:  # beat's tick is as soon, or it is due now
        assert recorder.calls == []
        return
    if offset < 0.05 or offset > POLL_TICK_S - 0.05:  # the clock moved on meanwhile: either
        return
    [call] = recorder.calls
    assert call["kwargs"] == {"feed": "east"}
    assert 0 < call["countdown"] <= offset
    assert call["countdown"] >= offset - 1.0  # measured from now, not from long ago
    assert call["expires"] > call["countdown"]


def test_nothing_to_poll_sends_nothing(sent):
    tasks._send_next_tick("default", None)
    assert sent.calls == []


def test_a_broker_away_costs_the_early_tick_only(monkeypatch, caplog):
    def refuse(**_options):
        raise ConnectionError("broker away")
    monkeypatch.setattr(tasks.poll, "apply_async", refuse)
    tasks._send_next_tick("default", time.time() + 1.0)  # no exception: beat's tick polls it
    assert "could not send the next poll tick" in caplog.text
