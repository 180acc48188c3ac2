"""OAuth2 client-credentials tokens: issued, checked, expired and revoked.

Tokens are random opaque strings (nothing a client could decode or forge) held only in
memory; a restart forgets them, like a token endpoint behind a new deployment would.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    client_id: str
    expires_at: float  # wall-clock seconds


class TokenStore:
    def __init__(self, credentials: dict[str, str]) -> None:
        self._credentials = dict(credentials)
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def credentials_valid(self, client_id: str, client_secret: str) -> bool:
        expected = self._credentials.get(client_id)
        # Constant-time compare: the simulator should not teach timing leaks by example.
        return expected is not None and hmac.compare_digest(
            expected.encode(), client_secret.encode()
        )

    def issue(self, client_id: str, ttl_s: float) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = Grant(client_id, time.time() + ttl_s)
            self._forget_expired()
        return token

    def client_for(self, token: str) -> str | None:
        """The client a token belongs to; None when unknown, expired or revoked."""
        grant = self._grants.get(token)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant.client_id

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._grants)
            self._grants.clear()
        return count

    def expire_all(self) -> None:
        """Make every token expired now (tests of refresh without waiting 8 hours)."""
        with self._lock:
            self._grants = {
                token: Grant(grant.client_id, 0.0) for token, grant in self._grants.items()
            }

    def _forget_expired(self) -> None:
        if len(self._grants) % 256:
            return  # sweep occasionally; lookups check expiry anyway
        now = time.time()
        self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
