"""The token request keeps the client secret where it was configured to go (issue 22,
items 2 and 9).

Before: the token POST followed redirects, so a 307/308 to another host (or from https to
plain http) re-POSTed the form with `client_secret` there; a plain-http token URL on
another host was used as given. And `expires_in` was trusted: `1e400` overflowed on its way
into Redis, `1e20` was refused by Redis, `"NaN"` made every request fetch a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hostile_http import Answer, HostileServer, Seen, hostile_server
from tests.integration.cli_process import clean_env, trestle_etl
from tests.redis_space import own_credential, shared_client
from trestle_tasks.coordination.token_cache import RedisTokenCache
from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.auth import TokenProvider
from trestle_tasks.trestle.client import new_session
from trestle_tasks.trestle.token_cache import MemoryTokenCache, TokenCache
from trestle_tasks.trestle.token_lifetime import MAX_LIFETIME_S, MIN_LIFETIME_S, token_lifetime
from trestle_tasks.trestle.token_seal import TokenSeal

pytestmark = pytest.mark.integration

SECRET = "cs-7b1e0c9a4d2f48e3"
TOKEN = "tok-51c0e9d2b7a84f36"


def _provider(token_url: str, cache: TokenCache | None = None, *, allow_http: bool = False
              ) -> TokenProvider:
    options: dict[str, Any] = {"allow_http": True} if allow_http else {}  # (not before)
    return TokenProvider(session=new_session(), token_url=token_url, client_id="hostile-id",
                         client_secret=Secret(SECRET), cache=cache or MemoryTokenCache(),
                         retry=RetryPolicy(budget_s=0), timeout_s=5, **options)


@pytest.fixture
def evil() -> Iterator[HostileServer]:
    with hostile_server(lambda seen: Answer.json({"access_token": "x", "expires_in": 3600})
                        ) as server:
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_token_endpoint_does_not_carry_the_secret_on(
        evil: HostileServer, status: int) -> None:
    def redirect(seen: Seen) -> Answer:
        return Answer(status, b"", {"Location": f"{evil.url}/steal"})

    with hostile_server(redirect) as endpoint:
        tokens = _provider(f"{endpoint.url}/token")
        with pytest.raises(ConfigurationError) as caught:
            tokens.get_token()
        assert len(endpoint.seen) == 1  # asked once: a configuration error is not retried
    assert evil.seen == [], "the redirect target was sent the token request"
    message = str(caught.value)
    assert "TRESTLE_TOKEN_URL" in message and "redirects" in message and SECRET not in message


@pytest.mark.parametrize("url", ["http://auth.example.test/token", "http://10.1.2.3/token",
                                 "http://127.0.0.1.nip.io/token"])
def test_a_plain_http_token_url_off_this_machine_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="TRESTLE_TOKEN_URL") as caught:
        _provider(url)
    assert "https://" in str(caught.value) and SECRET not in str(caught.value)
    _provider(url, allow_http=True)  # the operator's explicit choice (compose simulator)
    _provider(url.replace("http://", "https://"))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2"])
def test_plain_http_to_loopback_still_works(host: str) -> None:
    _provider(f"http://{host}:8080/token")


def test_check_config_names_the_insecure_token_url(tmp_path: Path) -> None:
    env = clean_env(TRESTLE_TOKEN_URL="http://auth.example.test/token",
                    TRESTLE_BASE_URL="https://api.example.test/odata",
                    TRESTLE_CLIENT_ID="someone", TRESTLE_CLIENT_SECRET=SECRET,
                    TRESTLE_RETRY_BUDGET="0",
                    DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite3'}",
                    REDIS_URL="redis://127.0.0.1:1/0", LOCK_DIR=str(tmp_path))
    result = trestle_etl("check-config", env=env, cwd=tmp_path, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "TRESTLE_TOKEN_URL" in output and "unencrypted" in output, output
    assert SECRET not in output and "Traceback" not in output


# --- item 9: expires_in from a hostile endpoint ---------------------------------------

HOSTILE_EXPIRES_IN: list[object] = [
    1e400, "1e400", 1e20, "NaN", "nan", "Infinity", "-Infinity", int("9" * 400), "9" * 400,
    -5, 0, 0.001, True, None, [], {}, "soon", 10**19,
]


def _expires_in_server(value: object) -> AbstractContextManager[HostileServer]:
    # A number the json module cannot write (1e400, 400 digits) goes out as raw JSON text.
    literal = (repr(value).replace("inf", "1e400") if isinstance(value, float)
               else str(value) if isinstance(value, int) and not isinstance(value, bool)
               else None)

    def answer(seen: Seen) -> Answer:
        if literal is not None:
            body = f'{{"access_token": "{TOKEN}", "expires_in": {literal}}}'.encode()
            return Answer(200, body, {"Content-Type": "application/json"})
        return Answer.json({"access_token": TOKEN, "expires_in": value})

    return hostile_server(answer)


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = shared_client()
    yield client
    client.close()


@pytest.mark.parametrize("value", HOSTILE_EXPIRES_IN, ids=lambda v: repr(v)[:20])
def test_a_hostile_expires_in_gives_one_token_kept_a_sane_time(
        redis_client: redis.Redis, value: object) -> None:
    with _expires_in_server(value) as endpoint:
        token_url = f"{endpoint.url}/token"
        own_credential(token_url, "hostile-id")
        cache = RedisTokenCache(redis_client,
                                TokenSeal.for_credential(token_url, "hostile-id", SECRET))
        tokens = _provider(token_url, cache)
        try:
            for _ in range(5):
                assert tokens.get_token() == TOKEN
            assert tokens.fetches == 1, "a token fetch for every request"
            ttl_ms = redis_client.pttl(tokens.cache_key)
            assert MIN_LIFETIME_S * 1000 - 5000 <= ttl_ms <= MAX_LIFETIME_S * 1000
        finally:
            redis_client.delete(tokens.cache_key)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(), st.floats(), st.decimals(), st.text(max_size=30),
                 st.booleans(), st.none()))
def test_any_expires_in_is_a_finite_lifetime_in_range(value: object) -> None:
    lifetime = token_lifetime(value)
    assert MIN_LIFETIME_S <= lifetime <= MAX_LIFETIME_S
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value <= 86400:
        assert lifetime == value
    if isinstance(value, Decimal) and value.is_finite() and 60 <= value <= 86400:
        assert lifetime == pytest.approx(float(value))
