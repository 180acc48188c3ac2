"""Pages decoded with their records' field names known in advance.

A record's keys are the same few hundred names in every record of a resource, yet a JSON
decoder makes a new string of each one for each record: at real width (600 fields) that
was a quarter of decoding a page. Told the resource's names (its `$metadata`), msgspec
matches each key against them and hands back the one string it holds, so records share
their keys: decoding a 1,000-record page of wide records takes 75 ms instead of 102, and
everything after it that hashes or compares keys (the transform's lookups, the record's
key sequence) finds them the same object.

The result is exactly what the plain decoder gives, or nothing: any key outside the names
(an undeclared field, an annotation such as `@odata.etag`), a top-level member that is not
a list of objects, a string, an integer or null, or anything else msgspec refuses with
these types makes `decode` return None, and the caller decodes the page as it always did.
A resource whose pages fail so several times in a row (a feed that sends undeclared
fields in every record) stops being tried until it is expected again (the next window).
The names come from the feed's metadata, so they are bounded: a resource with more than
MAX_NAMES of them, or a name longer than MAX_NAME_CHARS, is never decoded this way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Literal

import msgspec

MAX_NAMES = 4096
MAX_NAME_CHARS = 256
# Pages of a resource in a row that may fail to decode with its names before they stop
# being tried.
FAILURES_TO_GIVE_UP = 3


class _Known:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        # Literal[names]: msgspec returns the matching string of `names` itself for a key.
        record = dict[Literal[names], Any]  # type: ignore[valid-type]
        member = list[record] | str | int | None
        self.decoder = msgspec.json.Decoder(dict[str, member], float_hook=Decimal)
        self.failures = 0


class KnownKeyDecoders:
    """One decoder per resource whose field names were given (`expect`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}

    def expect(self, resource: str, names: Iterable[str]) -> None:
        """Decode `resource`'s pages with these names (declared fields and navigation
        properties, in any order); a new list replaces the old one."""
        wanted = tuple(dict.fromkeys(names))
        if not wanted or len(wanted) > MAX_NAMES or not all(
                type(n) is str and 0 < len(n) <= MAX_NAME_CHARS for n in wanted):
            with self._lock:
                self._known.pop(resource, None)
            return
        with self._lock:
            known = self._known.get(resource)
            if known is not None and known.names == wanted:
                # Told again (each window does): pages get another try. A feed sending
                # undeclared fields costs a window at most a few refused attempts, and one
                # that sent a few odd pages (an annotation) is not given up on for good.
                known.failures = 0
                return
        made = _Known(wanted)  # built outside the lock: a few milliseconds
        with self._lock:
            self._known[resource] = made

    def decode(self, resource: str, content: bytes) -> Any | None:
        """The page as the plain decoder makes it, with shared key strings; None when the
        names are unknown or do not fit this page (the caller decodes it as before)."""
        known = self._known.get(resource)
        if known is None or known.failures >= FAILURES_TO_GIVE_UP:
            return None
        try:
            body = known.decoder.decode(content)
        except msgspec.ValidationError:
            known.failures += 1  # a key or a member outside the names' shape
            return None
        except (msgspec.DecodeError, ValueError, RecursionError):
            return None  # not this decoder's to judge: the plain path decides and explains
        known.failures = 0  # only pages failing one after another give up
        return body
