"""OAuth2 client credentials for Trestle, with a cached token shared by every caller.

A token is reused until shortly before `expires_in` runs out. With the Redis cache, every
worker of the cluster shares it: one token fetch per credential per token lifetime.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from typing import TypeGuard
from urllib.parse import urlsplit

from trestle_tasks.core.errors import (
    BadCredentialsError,
    ConfigurationError,
    UnexpectedResponseError,
)
from trestle_tasks.core.logs import redact
from trestle_tasks.core.masking import Secret, mask_url
from trestle_tasks.core.retry import NoProgressDeadline, RetryPolicy, call_with_retries
from trestle_tasks.trestle.http import (
    TRANSPORT_ERRORS,
    connection_error,
    parse_json_body,
    raise_for_status,
)
from trestle_tasks.trestle.retry_notes import gave_up, on_first_wait
from trestle_tasks.trestle.sessions import HttpSession
from trestle_tasks.trestle.token_cache import CachedToken, TokenCache
from trestle_tasks.trestle.token_lifetime import token_lifetime
from trestle_tasks.trestle.token_seal import secret_fingerprint

# Refresh this long before expiry, so a token never dies in the middle of a page.
DEFAULT_REFRESH_MARGIN_S = 300.0


def credential_fingerprint(token_url: str, client_id: str) -> str:
    """Names one credential (for its token, quota and locks) without revealing its secret."""
    return hashlib.sha256(f"{token_url}\0{client_id}".encode()).hexdigest()[:24]


def token_cache_key(token_url: str, client_id: str, client_secret: Secret) -> str:
    """Per credential *and secret*: a wrong secret must not find the good secret's token
    (it would make `reconcile` work while `check-config` fails). The secret enters only as
    a keyed hash; the quota and locks stay per credential (they do not depend on it)."""
    fingerprint = secret_fingerprint(token_url, client_id, client_secret.reveal())
    return f"trestle:token:{credential_fingerprint(token_url, client_id)}:{fingerprint}"


def is_loopback_host(host: str | None) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: traffic that never leaves this machine."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token_url(token_url: str, *, allow_http: bool = False) -> None:
    """The client secret is posted to this URL: over TLS, unless it stays on this machine
    (the simulator on 127.0.0.1) or the operator said plain http is meant (`allow_http`,
    TRESTLE_ALLOW_HTTP_TOKEN_URL: the compose simulator, on the compose network)."""
    parts = urlsplit(token_url)
    if parts.scheme == "https" or allow_http or is_loopback_host(parts.hostname):
        return
    problem = (f"TRESTLE_TOKEN_URL: {mask_url(token_url)} would send the client secret "
               "unencrypted: use https:// (plain http:// only to localhost / 127.0.0.1, or "
               "set TRESTLE_ALLOW_HTTP_TOKEN_URL=true for a trusted private network)")
    raise ConfigurationError(problem, problems=[problem])


class TokenProvider:
    def __init__(
        self,
        *,
        session: HttpSession,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        cache: TokenCache,
        retry: RetryPolicy,
        timeout_s: float = 60.0,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        progress: NoProgressDeadline | None = None,
        allow_http: bool = False,
    ) -> None:
        """`progress`: the budget of no progress this provider shares with the requests
        it serves (and their client), so a token fetch inside a request never gets a
        budget of its own on top of the request's. `allow_http`: see check_token_url."""
        check_token_url(token_url, allow_http=allow_http)
        # Every process that holds the secret masks it by value, whatever feed it is for
        # (configure_logging registers only the settings' own).
        redact.add([client_secret.reveal()])
        self._session = session
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._cache = cache
        self._retry = retry
        self._timeout_s = timeout_s
        self._margin_s = refresh_margin_s
        self._clock = clock
        self._sleep = sleep
        self._progress = progress
        self.cache_key = token_cache_key(token_url, client_id, client_secret)
        self.fetches = 0  # token requests this provider made (for tests and cost figures)

    def __repr__(self) -> str:
        return f"TokenProvider(token_url={mask_url(self._token_url)!r}, client_id=...)"

    def _usable(self, token: CachedToken | None) -> TypeGuard[CachedToken]:
        if token is None:
            return False
        # Short-lived tokens (tests, odd servers) would never be usable under a fixed margin.
        margin = min(self._margin_s, token.lifetime_s / 10)
        return token.expires_at - margin > self._clock()

    def get_token(self) -> str:
        cached = self._cache.get(self.cache_key)
        if self._usable(cached):
            return _registered(cached.access_token)
        with self._cache.fetch_lock(self.cache_key):
            cached = self._cache.get(self.cache_key)  # another caller may have just fetched
            if self._usable(cached):
                return _registered(cached.access_token)
            fresh, lifetime_s = self._fetch()
            self._cache.put(self.cache_key, fresh, ttl_s=lifetime_s)
            return _registered(fresh.access_token)

    def invalidate(self, access_token: str) -> None:
        """The server refused this token (401): forget it, unless it was already replaced."""
        self._cache.discard(self.cache_key, access_token)

    def _fetch(self) -> tuple[CachedToken, float]:
        budget = self._retry.budget_s
        return call_with_retries(
            self._fetch_once, self._retry, sleep=self._sleep, shared=self._progress,
            on_first_wait=on_first_wait("token request", self._token_url, budget),
            gave_up=gave_up("the token request", self._token_url, budget))

    def _fetch_once(self) -> tuple[CachedToken, float]:
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
            "grant_type": "client_credentials",
            "scope": "api",
        }
        self.fetches += 1
        timeout_s = (self._timeout_s if self._progress is None
                     else self._progress.attempt_timeout(self._timeout_s))
        try:
            # Never redirected: requests re-POSTs the form (the client secret) on a 307/308
            # to wherever the Location says, another host or plain http included.
            response = self._session.post(self._token_url, data=form, timeout=timeout_s,
                                          allow_redirects=False)
        except TRANSPORT_ERRORS as exc:
            raise connection_error(exc, self._token_url) from None
        if 300 <= response.status_code < 400:
            problem = (f"TRESTLE_TOKEN_URL: {mask_url(self._token_url)} redirects (HTTP "
                       f"{response.status_code}) to {mask_url(_location(response))}; the "
                       "client secret is not sent on: set the final URL if it is trusted")
            raise ConfigurationError(problem, problems=[problem], status=response.status_code)
        if response.status_code in (400, 401):
            # Trestle answers bad credentials with 400 text/html "Bad Request": no JSON to read.
            raise BadCredentialsError(
                f"the token endpoint {mask_url(self._token_url)} rejected the client "
                f"credentials (HTTP {response.status_code}): check TRESTLE_CLIENT_ID and "
                "TRESTLE_CLIENT_SECRET",
                status=response.status_code,
            )
        raise_for_status(
            response, self._token_url, retry_after_cap_s=self._retry.max_retry_after_s,
            resource_query=False,
        )
        body = parse_json_body(response, self._token_url)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise UnexpectedResponseError(
                f"the token endpoint {mask_url(self._token_url)} answered without an access_token"
            )
        lifetime_s = token_lifetime(expires_in)
        return CachedToken(token, self._clock() + lifetime_s, lifetime_s), lifetime_s


def _registered(access_token: str) -> str:
    """The token, once this process's redactor masks it by value (see Redactor.add_issued):
    also a token another worker fetched, read here from the shared cache."""
    redact.add_issued(access_token)
    return access_token


def _location(response: object) -> str:
    headers = getattr(response, "headers", None) or {}
    return str(headers.get("Location") or "an unnamed place")
