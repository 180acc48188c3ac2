"""JSON text with exact decimals, in both directions.

The client parses numbers with fractions as `Decimal` (so 123.40 stays 123.40); the
standard encoder cannot write a Decimal as a number, and a float would round. The encoder
here writes every Decimal with its own digits, and the decoder reads them back as Decimal,
so a record survives store-then-export unchanged.

`encode_json` accepts anything the standard encoder does: the C encoder runs with each
Decimal replaced by a private-use placeholder, which is then swapped for the digits. A feed
string that itself contains the placeholder character is detected by counting and handled
by a slower pure-Python encoder.

The hot path (a record decoded from a page) has faster forms, both msgspec:
`encode_plain` writes values already known to be plain JSON (str, int, bool, None, finite
Decimal, list, tuple, dict with str keys) about 6 times faster, with the same text as
`encode_json`; `decode_json` parses with msgspec and falls back to the standard parser
whenever msgspec refuses the text, so it accepts and returns exactly what the standard
parser does (NaN literals, lone surrogate escapes and a UTF-8 BOM included).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

from trestle_tasks.trestle.deep_json import TooDeeplyNested as TooDeeplyNested

_MARK = "\ue000"
_MARK_ASCII = "\\ue000"
# Decimals as their own digits (str(Decimal)), like encode_json; floats never reach it.
_PLAIN_ENCODER = msgspec.json.Encoder(decimal_format="number")
# float_hook: every number with a fraction or an exponent becomes an exact Decimal, built
# from the digits as sent (the same values as json.loads(parse_float=Decimal)).
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def encode_json(value: Any, *, ensure_ascii: bool = False) -> str:
    """Compact JSON; Decimals as exact numbers. ValueError/TypeError when not encodable
    (NaN, infinities, objects JSON has no form for)."""
    decimals: list[Decimal] = []

    def placeholder(obj: Any) -> str:
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError(f"{obj} is not a JSON number")
            decimals.append(obj)
            return f"{_MARK}{len(decimals) - 1}{_MARK}"
        raise TypeError(f"a {type(obj).__name__} has no JSON form")

    text = json.dumps(value, default=placeholder, ensure_ascii=ensure_ascii, allow_nan=False,
                      separators=(",", ":"))
    if not decimals:
        return text
    mark = _MARK_ASCII if ensure_ascii else _MARK
    if text.count(mark) != 2 * len(decimals):
        return _encode_slow(value, ensure_ascii)
    # Every mark is ours: swap each `"<mark>i<mark>"` for the digits. str.find locates the
    # rare mark at memchr speed and only the short pieces between marks are copied.
    opener, closer = f'"{mark}', f'{mark}"'
    out: list[str] = []
    position = 0
    while (start := text.find(opener, position)) >= 0:
        end = text.find(closer, start + len(opener))
        out.append(text[position:start])
        out.append(str(decimals[int(text[start + len(opener):end])]))
        position = end + len(closer)
    out.append(text[position:])
    return "".join(out)


def encode_plain(value: Any) -> bytes:
    """`encode_json(value)` as UTF-8, for values the caller knows to be plain JSON (see the
    module docstring): anything else may be written differently, not refused (a float NaN
    becomes null, a set an array). UnicodeEncodeError on a lone surrogate."""
    return _PLAIN_ENCODER.encode(value)


def decode_json(text: str | bytes) -> Any:
    """Parse JSON keeping every fractional number as an exact Decimal; ValueError if it is
    not JSON. Equal to json.loads(text, parse_float=Decimal) on every input."""
    try:
        return _DECODER.decode(text)
    except (msgspec.DecodeError, ValueError):
        # msgspec is stricter (NaN, lone surrogates, BOM, UTF-16): the standard parser
        # decides, and raises what it always raised.
        return json.loads(text, parse_float=Decimal)


def _encode_slow(value: Any, ensure_ascii: bool) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            name = key if isinstance(key, str) else json.dumps(key)
            items.append(json.dumps(name, ensure_ascii=ensure_ascii) + ":"
                         + _encode_slow(item, ensure_ascii))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_slow(item, ensure_ascii) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False)


# --- JSON nested deeper than the parsers' recursion allows ------------------------------
#
