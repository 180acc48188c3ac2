"""How long a token is kept: the server's `expires_in`, within sane bounds.

A hostile or broken token endpoint can send anything: `1e400` (infinite as a float, and
then an OverflowError turning it into Redis milliseconds), `1e20` (Redis refuses the
expiry), `"NaN"` (never usable: a token fetch before every request), 400 digits, a
negative number. Whatever it sends, the lifetime used is finite and in range.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

MIN_LIFETIME_S = 60.0  # below this, the provider would fetch a token for nearly every request
MAX_LIFETIME_S = 24 * 3600.0  # Trestle issues 8-hour tokens; a day is generous
DEFAULT_LIFETIME_S = 3600.0  # missing or unreadable: what OAuth2 servers commonly issue


def token_lifetime(expires_in: object) -> float:
    """Seconds to keep a token, from the `expires_in` of a token answer."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float, str, Decimal)):
        return DEFAULT_LIFETIME_S
    if isinstance(expires_in, str) and len(expires_in.strip()) > 20:
        return DEFAULT_LIFETIME_S  # 400 digits: not a lifetime anyone meant
    try:
        # Decimal reads ints, floats, JSON's exact decimals and numeric text alike, without
        # a float's overflow; an int of any size is exact there too.
        value = Decimal(expires_in.strip() if isinstance(expires_in, str) else expires_in)
    except (InvalidOperation, ValueError, OverflowError):
        return DEFAULT_LIFETIME_S
    if not value.is_finite():
        return DEFAULT_LIFETIME_S
    seconds = float(min(max(value, Decimal(MIN_LIFETIME_S)), Decimal(MAX_LIFETIME_S)))
    return seconds if math.isfinite(seconds) else DEFAULT_LIFETIME_S
