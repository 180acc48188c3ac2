"""Feeds declared on the command line: `NAME:CLIENT_ID:SECRET[:RECORDS[:SEED]]`.

`trestle-etl simulator --feed mls-a:id-a:secret-a --feed mls-b:id-b:secret-b:500:7`
serves two feeds. Repeating a NAME gives that feed another credential. Errors are
ValueErrors worded for the person who typed the option, and never repeat a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config import FEED_NAME, FeedConfig

SYNTAX = "NAME:CLIENT_ID:SECRET[:RECORDS[:SEED]]"


@dataclass(frozen=True)
class FeedSpec:
    name: str
    client_id: str
    secret: str
    records: int | None
    seed: int | None


def parse_feed_spec(text: str) -> FeedSpec:
    """One `--feed` value (ValueError with a readable reason when malformed)."""
    parts = text.split(":")
    if not 3 <= len(parts) <= 5:
        raise ValueError(
            f"expected {SYNTAX} (3 to 5 fields separated by ':'), got {len(parts)} field(s); "
            "no field may contain ':'"
        )
    name, client_id, secret = parts[0], parts[1], parts[2]
    if not FEED_NAME.fullmatch(name):
        raise ValueError(
            f"feed name {name!r}: use letters, digits, '_', '.' or '-', starting with a letter "
            "or digit"
        )
    if not client_id:
        raise ValueError(f"feed {name!r}: the CLIENT_ID is empty")
    if not secret:
        raise ValueError(f"feed {name!r}: the SECRET is empty")
    records = _number(parts, 3, name, "RECORDS", minimum=0)
    seed = _number(parts, 4, name, "SEED", minimum=None)
    return FeedSpec(name, client_id, secret, records, seed)


def _number(parts: list[str], index: int, name: str, label: str, minimum: int | None) -> int | None:
    if len(parts) <= index or parts[index] == "":
        return None  # omitted (or left empty to reach the next field): the default
    try:
        value = int(parts[index])
    except ValueError:
        raise ValueError(
            f"feed {name!r}: {label} must be a whole number, not {parts[index]!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ValueError(f"feed {name!r}: {label} must be >= {minimum}")
    return value


def feeds_from_specs(texts: Iterable[str]) -> dict[str, FeedConfig]:
    """The feeds of every `--feed` value, in order; a repeated NAME adds a credential."""
    feeds: dict[str, FeedConfig] = {}
    for text in texts:
        spec = parse_feed_spec(text)
        feed = feeds.get(spec.name)
        if feed is None:
            feeds[spec.name] = FeedConfig(
                credentials={spec.client_id: spec.secret}, records=spec.records, seed=spec.seed
            )
            continue
        if spec.client_id in feed.credentials:
            raise ValueError(f"feed {spec.name!r} declares client id {spec.client_id!r} twice")
        for label, given, known in (
            ("RECORDS", spec.records, feed.records),
            ("SEED", spec.seed, feed.seed),
        ):
            if given is not None and known is not None and given != known:
                raise ValueError(f"feed {spec.name!r} is given two different {label} values")
        feed.credentials[spec.client_id] = spec.secret
        if spec.records is not None:
            feed.records = spec.records
        if spec.seed is not None:
            feed.seed = spec.seed
    return feeds
