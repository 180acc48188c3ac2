"""Fixtures for tests against real services: the simulator over HTTP and a real Redis
(the databases of tests/redis_space.py: TEST_REDIS_URL picks them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.redis_space import celery_database, own_credential, run_key, shared_client
from trestle_simulator.config import SimulatorConfig
from trestle_simulator.server import RunningSimulator, start_in_thread
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import TrestleClient, new_session
from trestle_tasks.trestle.token_cache import MemoryTokenCache, TokenCache

CLIENT_ID = "trestle-simulator"
CLIENT_SECRET = "simulator-secret"
# Short waits so fault-injection tests finish quickly; the budget still rides out bursts.
FAST_RETRY = RetryPolicy(budget_s=60, base_delay_s=0.005, max_delay_s=0.05)

pytestmark = pytest.mark.integration


def start_simulator(**overrides: object) -> RunningSimulator:
    """A simulator in this process; what the product keeps in Redis under its credentials
    (named after its token URL, on a port of its own) is deleted when the session ends."""
    config = SimulatorConfig(**{"minute_quota": None, "hour_quota": None, **overrides})
    sim = start_in_thread(config)
    for client_id in config.credentials:
        own_credential(sim.token_url, client_id)
    return sim


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    sim = start_simulator(records=300)
    yield sim
    sim.stop()


def build_client(
    sim: RunningSimulator,
    *,
    cache: TokenCache | None = None,
    retry: RetryPolicy = FAST_RETRY,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    **hooks: object,
) -> TrestleClient:
    session = new_session()
    tokens = TokenProvider(
        session=session,
        token_url=sim.token_url,
        client_id=client_id,
        client_secret=Secret(client_secret),
        cache=cache if cache is not None else MemoryTokenCache(),
        retry=retry,
        timeout_s=30,
    )
    return TrestleClient(session=session, odata_root=sim.odata_root, tokens=tokens,
                         retry=retry, timeout_s=30, **hooks)


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The shared test database (never flushed: tests delete the keys they write)."""
    client = shared_client()
    client.ping()
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A unique key prefix, deleted afterwards, so tests never see each other's keys."""
    prefix = run_key(uuid.uuid4().hex, "")
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)


@pytest.fixture
def celery_redis() -> Iterator[redis.Redis]:
    """The Celery database (`redis_url("celery")`), empty, for a test that starts workers;
    emptied again afterwards; test runs sharing the Redis take turns for it."""
    with celery_database() as client:
        yield client
