"""Authentication success and failure, against the simulator over HTTP."""

from __future__ import annotations

import string
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trestle_tasks.coordination.token_cache import RedisTokenCache
from trestle_tasks.core.errors import BadCredentialsError
from trestle_tasks.core.masking import Secret
from trestle_tasks.trestle.auth import TokenProvider, token_cache_key
from trestle_tasks.trestle.client import new_session
from trestle_tasks.trestle.token_cache import MemoryTokenCache
from trestle_tasks.trestle.token_seal import TokenSeal

from ..secret_strategies import leaked_forms, secrets
from .conftest import CLIENT_ID, CLIENT_SECRET, FAST_RETRY, build_client, start_simulator

pytestmark = pytest.mark.integration

credential_text = st.text(string.ascii_letters + string.digits + "-_.~!$*", min_size=1,
                          max_size=40)
# Long enough that finding one in a message means it leaked, not that it is a common word.
secret_text = credential_text.map(lambda text: f"secret-{text}-value")


@pytest.fixture(scope="module")
def auth_simulator():
    sim = start_simulator(records=20, credentials={"good-id": "good-secret"})
    yield sim
    sim.stop()


def redis_cache(redis_client, sim, client_id, client_secret):
    """The cache as the factory builds it: sealed with this credential's secret."""
    return RedisTokenCache(redis_client,
                           TokenSeal.for_credential(sim.token_url, client_id, client_secret))


def provider(sim, client_id, client_secret, cache=None):
    return TokenProvider(
        session=new_session(), token_url=sim.token_url, client_id=client_id,
        client_secret=Secret(client_secret), cache=cache or MemoryTokenCache(), retry=FAST_RETRY,
    )


@given(client_id=credential_text, client_secret=secret_text)
def test_wrong_credentials_give_a_clear_error_without_the_secret(
    auth_simulator, client_id, client_secret
):
    if (client_id, client_secret) == ("good-id", "good-secret"):
        return
    with pytest.raises(BadCredentialsError) as caught:
        provider(auth_simulator, client_id, client_secret).get_token()
    message = str(caught.value)
    assert "rejected the client credentials" in message
    assert "HTTP 400" in message
    assert client_secret not in message.replace(auth_simulator.token_url, "")


def test_good_credentials_get_a_token_that_reads_data(auth_simulator):
    client = build_client(auth_simulator, client_id="good-id", client_secret="good-secret")
    page = client.get_page(auth_simulator.odata_root + "/Property?$top=5")
    assert len(page.records) == 5
    assert page.quota is not None and page.quota.quota_type == "Api"


def test_many_threads_share_one_token_fetch(simulator):
    tokens = provider(simulator, CLIENT_ID, CLIENT_SECRET)
    with ThreadPoolExecutor(8) as pool:
        issued = set(pool.map(lambda _: tokens.get_token(), range(64)))
    assert len(issued) == 1
    assert tokens.fetches == 1


def test_workers_sharing_redis_fetch_one_token_per_lifetime(simulator, redis_client):
    before = simulator.stats()["tokens_issued"]
    workers = [provider(simulator, CLIENT_ID, CLIENT_SECRET,
                        redis_cache(redis_client, simulator, CLIENT_ID, CLIENT_SECRET))
               for _ in range(6)]
    redis_client.delete(workers[0].cache_key)
    barrier = threading.Barrier(len(workers))

    def first_token(worker):
        barrier.wait()
        return worker.get_token()

    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            issued = set(pool.map(first_token, workers))
        assert len(issued) == 1
        assert sum(w.fetches for w in workers) == 1
        assert simulator.stats()["tokens_issued"] - before == 1
    finally:
        redis_client.delete(workers[0].cache_key)


def test_a_revoked_token_is_refreshed_once_and_the_request_repeated(simulator):
    client = build_client(simulator)
    first = client.get_page(simulator.odata_root + "/Property?$top=3")
    simulator.revoke_tokens()
    again = client.get_page(simulator.odata_root + "/Property?$top=3")
    assert again.records == first.records
    assert client.stats.token_refreshes == 1


def test_an_expired_token_is_replaced_before_it_fails():
    sim = start_simulator(records=10, token_ttl_s=2)
    try:
        client = build_client(sim)
        client.get_page(sim.odata_root + "/Property?$top=1")
        import time

        time.sleep(2.2)
        client.get_page(sim.odata_root + "/Property?$top=1")
        # The short lifetime is refreshed ahead of expiry or after one 401; never a failure.
        assert sim.stats()["tokens_issued"] >= 2
    finally:
        sim.stop()


def redis_contents(redis_client, pattern: str) -> bytes:
    """Every key and value under `pattern` as raw bytes (DUMP: whatever the type)."""
    parts = []
    for key in redis_client.scan_iter(pattern):
        parts += [key, redis_client.dump(key) or b""]
    return b"\n".join(parts)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(client_secret=secrets())
def test_redis_holds_neither_the_token_nor_the_secret(redis_client, client_secret):
    sim = start_simulator(records=5, credentials={"seal-id": client_secret})
    cache = redis_cache(redis_client, sim, "seal-id", client_secret)
    tokens = provider(sim, "seal-id", client_secret, cache)
    try:
        token = tokens.get_token()
        stored = redis_contents(redis_client, "trestle:token:*")
        assert tokens.cache_key.encode() in stored  # the token is cached there
        for form in {token, *leaked_forms(client_secret)}:
            assert form.encode() not in stored, f"{form!r} is readable in Redis"
        # The holder of the secret reads it back: one fetch for any number of providers.
        again = provider(sim, "seal-id", client_secret,
                         redis_cache(redis_client, sim, "seal-id", client_secret))
        assert again.get_token() == token and again.fetches == 0
    finally:
        redis_client.delete(tokens.cache_key)
        sim.stop()


def test_a_wrong_secret_does_not_ride_on_the_cached_token(simulator, redis_client):
    good = provider(simulator, CLIENT_ID, CLIENT_SECRET,
                    redis_cache(redis_client, simulator, CLIENT_ID, CLIENT_SECRET))
    wrong = provider(simulator, CLIENT_ID, "not-the-secret",
                     redis_cache(redis_client, simulator, CLIENT_ID, "not-the-secret"))
    try:
        good.get_token()
        assert wrong.cache_key != good.cache_key
        assert CLIENT_SECRET not in good.cache_key
        with pytest.raises(BadCredentialsError):
            wrong.get_token()
    finally:
        redis_client.delete(good.cache_key, wrong.cache_key)


def test_a_sealed_token_opens_under_no_other_secret_or_key(simulator, redis_client):
    """Even copied under the wrong secret's key, the good token does not open: a cache
    miss (then the token endpoint decides), never the token."""
    good = provider(simulator, CLIENT_ID, CLIENT_SECRET,
                    redis_cache(redis_client, simulator, CLIENT_ID, CLIENT_SECRET))
    wrong_cache = redis_cache(redis_client, simulator, CLIENT_ID, "not-the-secret")
    wrong = provider(simulator, CLIENT_ID, "not-the-secret", wrong_cache)
    try:
        good.get_token()
        redis_client.set(wrong.cache_key, redis_client.get(good.cache_key))
        assert wrong_cache.get(wrong.cache_key) is None
        # Under its own key but altered by one byte: no token either.
        sealed = bytearray(redis_client.get(good.cache_key))
        sealed[-5] ^= 1
        redis_client.set(good.cache_key, bytes(sealed))
        assert redis_cache(redis_client, simulator, CLIENT_ID, CLIENT_SECRET).get(
            good.cache_key) is None
    finally:
        redis_client.delete(good.cache_key, wrong.cache_key)


def test_a_refused_shared_token_is_discarded_and_refetched_once(redis_client):
    sim = start_simulator(records=10)
    try:
        cache = redis_cache(redis_client, sim, CLIENT_ID, CLIENT_SECRET)
        client = build_client(sim, cache=cache)
        client.get_page(sim.odata_root + "/Property?$top=1")
        sim.revoke_tokens()
        client.get_page(sim.odata_root + "/Property?$top=1")
        assert client.stats.token_refreshes == 1
        assert sim.stats()["tokens_issued"] == 2
    finally:
        redis_client.delete(token_cache_key(sim.token_url, CLIENT_ID, Secret(CLIENT_SECRET)))
        sim.stop()
