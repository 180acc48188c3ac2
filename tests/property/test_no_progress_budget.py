"""One budget of no progress, shared by nested retry loops and by a command's requests.

The token fetch retries inside the request that needs the token: each used to get a full
TRESTLE_RETRY_BUDGET, so an unreachable Trestle kept a command silent for twice the
budget. Here the loops share one deadline that any successful answer restarts, and the
first loop that starts waiting says so, once."""

from __future__ import annotations

import logging
import random

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from trestle_tasks.core.errors import (
    ConnectionFailedError,
    NoProgressError,
    RetriesExhaustedError,
    TransientServerError,
)
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import NoProgressDeadline, RetryPolicy, call_with_retries
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient
from trestle_tasks.trestle.retry_notes import NOTES_LOGGER
from trestle_tasks.trestle.token_cache import MemoryTokenCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def busy() -> None:
    raise TransientServerError("HTTP 503 from https://h/x: busy", status=503, url="https://h/x")


@given(st.floats(0, 3600), st.integers(1, 4), st.integers(0, 2**31))
def test_nested_loops_sharing_a_deadline_spend_one_budget_between_them(budget, depth, seed):
    clock = FakeClock()
    shared = NoProgressDeadline(budget, clock=clock)
    policy = RetryPolicy(budget_s=budget)
    outer_attempts = []

    def loop(level: int) -> None:
        if level == depth:
            busy()
        outer_attempts.append(level)
        call_with_retries(lambda: loop(level + 1), policy, clock=clock, sleep=clock.sleep,
                          rng=random.Random(seed), shared=shared)

    with pytest.raises(RetriesExhaustedError):
        loop(0)
    assert sum(clock.sleeps) <= budget  # was depth times the budget
    # The innermost loop gave up; no loop around it tried again.
    assert outer_attempts == list(range(depth))


@given(st.lists(st.booleans(), min_size=1, max_size=60), st.floats(1, 600),
       st.integers(0, 2**31))
def test_a_successful_answer_starts_the_budget_afresh(answers, budget, seed):
    """Requests one after another, each answering or not: a request gives up once nothing
    succeeded for about a whole budget, counted from the first failure since the last
    answer, never later, and not much sooner."""
    clock = FakeClock()
    shared = NoProgressDeadline(budget, clock=clock)
    policy = RetryPolicy(budget_s=budget)
    stall_start: float | None = None
    for answers_now in answers:
        def attempt(ok: bool = answers_now) -> str:
            nonlocal stall_start
            began = clock.now
            clock.now += 0.5  # each attempt takes a while
            if ok:
                return "page"
            if stall_start is None:
                stall_start = began
            busy()
            return ""

        def sleep(seconds: float) -> None:
            clock.sleep(seconds)
            assert stall_start is not None
            assert clock.now <= stall_start + budget + 1e-6  # never waits past the budget

        try:
            call_with_retries(attempt, policy, clock=clock, sleep=sleep,
                              rng=random.Random(seed), shared=shared)
        except RetriesExhaustedError:
            assert stall_start is not None
            # Gave up only when the next wait (at most max_delay_s) would pass the budget.
            assert clock.now - stall_start > budget - policy.max_delay_s - 0.5
        else:
            stall_start = None
            assert shared.left() is None


def test_the_first_loop_that_waits_says_so_once():
    clock = FakeClock()
    shared = NoProgressDeadline(60, clock=clock)
    notes: list[tuple[str, float]] = []

    def note(error, left_s):
        notes.append((str(error), left_s))

    policy = RetryPolicy(budget_s=60)
    for _ in range(3):  # three requests of one command, the service gone
        with pytest.raises(RetriesExhaustedError):
            call_with_retries(busy, policy, clock=clock, sleep=clock.sleep, shared=shared,
                              on_first_wait=note)
    # Said at the second failure in a row, with what is left of the stall's budget.
    assert len(notes) == 1 and 55 < notes[0][1] < 60
    # The later requests did not wait at all: the command's budget was spent.
    shared.progressed()
    with pytest.raises(RetriesExhaustedError):
        call_with_retries(busy, policy, clock=clock, sleep=clock.sleep, shared=shared,
                          on_first_wait=note)
    assert len(notes) == 2  # a new stall after an answer: said again


def test_a_stall_shortens_an_attempts_timeout_to_what_is_left():
    clock = FakeClock()
    shared = NoProgressDeadline(10, clock=clock)
    assert shared.attempt_timeout(60) == 60  # no stall: the full HTTP timeout
    shared.failed(attempt_took_s=3)
    clock.now += 2
    assert shared.attempt_timeout(60) == pytest.approx(5)
    clock.now += 20
    assert shared.attempt_timeout(60) == 1.0  # never below a second


class Unreachable:
    """A session whose every request fails to connect, counting them."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[str] = []
        self.timeouts: list[object] = []

    def get(self, url, *, headers, timeout, stream=False):
        return self._fail(url, timeout)

    def post(self, url, *, data, timeout, allow_redirects=True):
        return self._fail(url, timeout)

    def _fail(self, url, timeout):
        self.sent.append(url)
        self.timeouts.append(timeout)
        self.clock.now += 0.01
        raise requests.ConnectionError("Connection refused")


def client_and_tokens(clock: FakeClock, budget: float, session: Unreachable) -> TrestleClient:
    progress = NoProgressDeadline(budget, clock=clock)
    tokens = TokenProvider(session=session, token_url="https://auth.example.com/token",
                           client_id="id", client_secret=Secret("a-long-client-secret"),
                           cache=MemoryTokenCache(), retry=RetryPolicy(budget_s=budget),
                           sleep=clock.sleep, progress=progress)
    return TrestleClient(session=session, odata_root="https://api.example.com/trestle/odata",
                         tokens=tokens, retry=RetryPolicy(budget_s=budget), sleep=clock.sleep,
                         clock=clock, rng=random.Random(1), progress=progress)


@settings(max_examples=30, deadline=None)
@given(st.floats(5, 900))
def test_a_request_whose_token_fetch_retries_gets_no_second_budget(budget):
    """The reported 577 s: `$metadata`'s retry loop wrapped the token's, two budgets."""
    clock = FakeClock()
    session = Unreachable(clock)
    client = client_and_tokens(clock, budget, session)
    with pytest.raises(NoProgressError) as caught:
        client.get_metadata()
    assert clock.now <= budget + 1
    # Only the token endpoint was tried: the request never got a token to send.
    assert set(session.sent) == {"https://auth.example.com/token"}
    message = str(caught.value)
    assert "auth.example.com" in message and "retry budget" in message
    assert "token request" in message and "ConnectionError" in message
    assert "a-long-client-secret" not in message


def test_without_a_shared_deadline_the_request_still_does_not_retry_its_token_fetch():
    """A client and token provider built apart (no deadline shared): the token fetch's
    own budget running out ends the request too, in real time."""
    import time

    clock = FakeClock()
    session = Unreachable(clock)
    tokens = TokenProvider(session=session, token_url="https://auth.example.com/token",
                           client_id="id", client_secret=Secret("a-long-client-secret"),
                           cache=MemoryTokenCache(), retry=RetryPolicy(budget_s=1.5))
    client = TrestleClient(session=session, odata_root="https://api.example.com/odata",
                           tokens=tokens, retry=RetryPolicy(budget_s=1.5))
    started = time.monotonic()
    with pytest.raises(NoProgressError):
        client.get_metadata()
    assert time.monotonic() - started < 2.5  # was up to twice the budget


def test_the_waiting_note_names_the_host_what_and_until_when(caplog):
    clock = FakeClock()
    client = client_and_tokens(clock, 300, Unreachable(clock))
    with caplog.at_level(logging.WARNING, logger=NOTES_LOGGER), \
            pytest.raises(NoProgressError):
        client.get_metadata()
    notes = [r.getMessage() for r in caplog.records if r.name == NOTES_LOGGER]
    assert len(notes) == 1, notes  # once, not once per attempt
    assert notes[0].startswith("Trestle unreachable (ConnectionError to auth.example.com")
    assert "retrying until" in notes[0] and "UTC" in notes[0] and "budget 300 s" in notes[0]


def test_retries_in_a_stall_never_wait_longer_than_the_budget_left():
    """A service that accepts connections and never answers: each retry's timeout is
    what is left of the budget, so the last one cannot outlast it by a whole timeout."""
    clock = FakeClock()
    session = Unreachable(clock)
    client = client_and_tokens(clock, 20, session)
    with pytest.raises(NoProgressError):
        client.get_metadata()
    timeouts = [t for t in session.timeouts if isinstance(t, float)]
    assert timeouts[0] == 60.0 and all(t <= 20 for t in timeouts[1:])


def test_connection_failures_name_their_kind():
    from trestle_tasks.trestle.http import connection_error

    error = connection_error(requests.ConnectTimeout("x"), "https://u:pw@h.example/t")
    assert isinstance(error, ConnectionFailedError)
    assert error.details["kind"] == "ConnectTimeout" and "pw" not in str(error)
