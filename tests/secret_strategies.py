"""Realistic secret values for property tests, and the forms a leak may take."""

from __future__ import annotations

import json
import string
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126)


@st.composite
def secrets(draw: st.DrawFn) -> str:
    """A password policy's mix: lower and upper case, a digit and a punctuation mark, in
    any order, among 8 to 36 more printable characters (12 to 40 in all).

    Built rather than filtered, so Hypothesis cannot hand in a string constant of the code
    ("api_requests"), or a run of one character ("00000000", part of every timestamp):
    those are ordinary output, so finding them would not be a leak, and not finding them
    would prove nothing."""
    required = [draw(st.sampled_from(string.ascii_lowercase)),
                draw(st.sampled_from(string.ascii_uppercase)),
                draw(st.sampled_from(string.digits)),
                draw(st.sampled_from(string.punctuation))]
    rest = draw(st.text(alphabet=PRINTABLE, min_size=8, max_size=36))
    return "".join(draw(st.permutations([*required, *rest])))


def leaked_forms(secret: str) -> set[str]:
    """The secret as it may appear after encoding on its way into some output: as is,
    percent-encoded (a form body, a URL), JSON-escaped (a JSON log line), repr-escaped
    (an exception's repr)."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
            json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            repr(secret)[1:-1]}
