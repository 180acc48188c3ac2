"""Page bodies nested too deeply for the JSON parsers: decoded part by part instead.

msgspec and the standard parser both recurse: a record nested 5,000 levels raises
RecursionError for its whole page, and every page after it is never reached. The text
is then split without recursion, level by level, and decoded part by part, so only the
value that is too deep is lost — replaced by a TooDeeplyNested, which no check accepts
and no encoder writes, so the loader rejects that one record and keeps its neighbours.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import msgspec

_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_DECODE_LEVELS = 3  # split the page object, its `value` array, a record: a field too deep
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _decode(raw: bytes) -> Any:
    """json.loads(raw, parse_float=Decimal), by msgspec where it accepts the text (the
    same parse as store/jsontext.decode_json, which the store reads its rows with)."""
    try:
        return _DECODER.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return json.loads(raw, parse_float=Decimal)


class TooDeeplyNested:
    """Stands for a JSON value nested too deeply to decode (its first bytes kept)."""

    __slots__ = ("head", "size")

    def __init__(self, raw: bytes) -> None:
        self.head = raw[:80].decode("utf-8", "replace")
        self.size = len(raw)

    def __repr__(self) -> str:
        return f"<JSON nested too deeply to decode, {self.size} bytes: {self.head}…>"


def decode_json_bounded(text: str | bytes) -> Any:
    """The page's JSON (fractions as exact Decimals), except that a value nested too
    deeply for the parsers becomes a TooDeeplyNested in place of the whole text failing
    with RecursionError."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _decode_level(raw, _DECODE_LEVELS)


def _decode_level(raw: bytes, levels: int) -> Any:
    try:
        return _decode(raw)
    except RecursionError:
        pass
    body = raw.strip()
    if levels <= 0 or body[:1] not in (b"{", b"["):
        return TooDeeplyNested(raw)
    parts = _top_level_parts(body)
    if body[:1] == b"[":
        return [_decode_level(part, levels - 1) for part in parts]
    out: dict[str, Any] = {}
    for part in parts:
        name, _colon, value = _split_member(part)
        out[_decode(name)] = _decode_level(value, levels - 1)
    return out


def _top_level_parts(body: bytes) -> list[bytes]:
    """The members (`"name": value`) of an object or the items of an array, as raw text,
    found by scanning for strings and brackets (never by recursion)."""
    parts: list[bytes] = []
    depth = 0
    start = 1
    for token in _TOKENS.finditer(body):
        mark = token.group()
        if mark in (b"[", b"{"):
            depth += 1
        elif mark in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                last = body[start:token.start()].strip()
                if last:
                    parts.append(last)
                return parts
        elif mark == b"," and depth == 1:
            parts.append(body[start:token.start()].strip())
            start = token.end()
    raise ValueError("JSON text ends inside an object or array")


def _split_member(member: bytes) -> tuple[bytes, bytes, bytes]:
    name = _TOKENS.match(member)
    if name is None or not name.group().startswith(b'"'):
        raise ValueError("an object member without a name")
    rest = member[name.end():].lstrip()
    if not rest.startswith(b":"):
        raise ValueError("an object member without a colon")
    return name.group(), b":", rest[1:].strip()
