"""The Celery tests' turn (tests/redis_space.py) is freed at once when its holder died.

A suite killed while one of its Celery tests held CELERY_LOCK (a cancelled CI job, an
interrupted laptop run) used to leave the lock to its 20-minute expiry: the next run on the
same Redis then failed its first Celery tests, each waiting past its 5-minute timeout. The
token names the holding process; a holder that no longer runs on this host is passed over,
a live one (or one of another host) is waited for. Each test takes a lock of its own name,
never the suite's.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import redis

from tests.redis_space import holder_is_dead, redis_url, run_key, take_celery_turn

HOLD_AND_EXIT = """
import sys, redis
from tests.redis_space import take_celery_turn
turn = take_celery_turn(redis.Redis.from_url(sys.argv[1]), 5, name=sys.argv[2])
print("held" if turn is not None else "not held", flush=True)
sys.stdin.read()  # hold until told, then die without releasing
"""


@pytest.fixture
def turns():
    client = redis.Redis.from_url(redis_url("shared"))
    yield client
    client.close()


def holder(name: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD_AND_EXIT, redis_url("shared"), name],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_dead_holder_s_turn_is_taken_at_once_and_a_live_one_s_is_waited_for(turns):
    name = run_key("turn")
    process = holder(name)
    try:
        token = turns.get(name)
        assert not holder_is_dead(token)
        assert take_celery_turn(turns, wait_s=1.5, name=name) is None  # alive: wait
    finally:
        process.kill()
        process.wait()
    assert holder_is_dead(turns.get(name)) and turns.ttl(name) > 60  # killed, not expired
    turn = take_celery_turn(turns, wait_s=1.5, name=name)
    assert turn is not None and turns.get(name) != token
    turn.release()
    assert turns.get(name) is None


@pytest.mark.parametrize("token", [b"another-host:1:1:abc", b"not a token", b"", None,
                                   f"{socket.gethostname()}:pid:1:abc".encode()])
def test_a_holder_that_is_not_of_this_host_or_not_a_token_is_never_judged_dead(token):
    assert not holder_is_dead(token)
