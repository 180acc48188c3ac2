"""Keys derived from the client secret: the token cache's key and the seal on cached tokens.

The shared token cache lives in Redis, which every worker (and whoever else can read the
broker) can read. A bearer token there in plain text would hand the licensed feed to
anyone with Redis access for the token's lifetime, so it is stored sealed with AES-GCM
under a key derived (HKDF-SHA256) from the client secret: only holders of the secret can
open it. The cache key carries a fingerprint of the secret (another HKDF output, never
the secret), so a process configured with a wrong secret finds no cached token and asks
the token endpoint, which refuses it, instead of quietly riding on a good token.

Pure functions and values: no Redis, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from trestle_tasks.trestle.token_cache import CachedToken

# Changing the salt or the format retires every cached token at once (they are refetched).
_SALT = b"trestle-tasks token cache v1"
_NONCE_BYTES = 12
_FORMAT = 1


def _derive(secret: str, purpose: str, token_url: str, client_id: str, length: int) -> bytes:
    # One independent key per purpose and per credential: the fingerprint in the cache key
    # says nothing about the encryption key, and one credential's keys fit no other.
    info = "\0".join((purpose, token_url, client_id)).encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(
        secret.encode()
    )


def secret_fingerprint(token_url: str, client_id: str, secret: str) -> str:
    """A keyed hash of the secret for the cache key: equal secrets, equal fingerprints;
    it cannot be turned back into the secret."""
    return _derive(secret, "fingerprint", token_url, client_id, 16).hex()


@dataclass(frozen=True)
class TokenSeal:
    """Seals and opens cached tokens of one credential (token URL, client id, secret)."""

    _key: bytes = field(repr=False)
    _tag_key: bytes = field(repr=False)

    @classmethod
    def for_credential(cls, token_url: str, client_id: str, secret: str) -> TokenSeal:
        return cls(_derive(secret, "token-seal", token_url, client_id, 32),
                   _derive(secret, "token-id", token_url, client_id, 32))

    def token_id(self, access_token: str) -> str:
        """Names a token without revealing it, so a stale token can be discarded by
        comparison inside Redis (which cannot decrypt)."""
        return hmac.new(self._tag_key, access_token.encode(), hashlib.sha256).hexdigest()[:32]

    def seal(self, cache_key: str, token: CachedToken) -> str:
        plain = json.dumps({"access_token": token.access_token, "expires_at": token.expires_at,
                            "lifetime_s": token.lifetime_s}).encode()
        nonce = os.urandom(_NONCE_BYTES)
        # The cache key as associated data: a sealed token copied under another key (another
        # credential's) does not open.
        sealed = AESGCM(self._key).encrypt(nonce, plain, cache_key.encode())
        return json.dumps({"v": _FORMAT, "tid": self.token_id(token.access_token),
                           "sealed": base64.b64encode(nonce + sealed).decode()})

    def open(self, cache_key: str, stored: str | bytes) -> CachedToken | None:
        """The token, or None for anything that does not open: another secret's seal, a
        tampered value, an older plain-text format. A cache miss is always safe."""
        try:
            envelope = json.loads(stored)
            if envelope.get("v") != _FORMAT:
                return None
            raw = base64.b64decode(envelope["sealed"], validate=True)
            plain = AESGCM(self._key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                             cache_key.encode())
            data = json.loads(plain)
            return CachedToken(str(data["access_token"]), float(data["expires_at"]),
                               float(data.get("lifetime_s", 0.0)))
        except (InvalidTag, ValueError, KeyError, TypeError, AttributeError):
            return None
