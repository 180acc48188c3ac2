"""Property: a compressed body inflates to exactly what was compressed, in bounded chunks.

`_decoded_chunks` inflates gzip and deflate bodies itself (ISA-L's inflate behind zlib's
interface), a bounded step at a time. Whatever the body, its wrapper (gzip, zlib, or raw
deflate sent as "deflate") and however the socket splits it, the chunks join to the body
and none is longer than CHUNK; a body that is not what its Content-Encoding says is an
InvalidResponseError, never a library's own exception.

Pure logic: the response is a stand-in that hands out the compressed bytes in the slices
drawn (the real client over HTTP is covered by test_unbounded_responses).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.core.errors import InvalidResponseError
from trestle_tasks.trestle.bounded_body import CHUNK, _decoded_chunks

WRAPPERS = {"gzip": 31, "zlib": 15, "raw deflate": -15}
ENCODINGS = ["gzip", "x-gzip", "deflate"]


class _Raw:
    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self._data, self._cuts = data, sorted({c % (len(data) + 1) for c in cuts})

    def stream(self, amount: int, decode_content: bool) -> Iterator[bytes]:
        assert not decode_content  # the client inflates, not urllib3
        start = 0
        for cut in [*self._cuts, len(self._data)]:
            if cut > start:
                yield self._data[start:cut]
                start = cut


class _Response:
    def __init__(self, encoding: str, data: bytes, cuts: list[int]) -> None:
        self.headers: dict[str, Any] = {"Content-Encoding": encoding}
        self.raw = _Raw(data, cuts)
        self.status_code = 200


def _compress(body: bytes, wrapper: str, level: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, WRAPPERS[wrapper])
    return packer.compress(body) + packer.flush()


bodies = st.one_of(
    st.binary(max_size=4096),
    # Long runs inflate to many chunks from few bytes (a small bomb).
    st.tuples(st.binary(min_size=1, max_size=8), st.integers(1, 40_000)).map(
        lambda pair: pair[0] * pair[1]),
)


@given(body=bodies, wrapper=st.sampled_from(sorted(WRAPPERS)), level=st.integers(0, 9),
       cuts=st.lists(st.integers(0, 1 << 20), max_size=6), data=st.data())
def test_a_body_inflates_to_itself_in_bounded_chunks(
        body: bytes, wrapper: str, level: int, cuts: list[int], data: st.DataObject) -> None:
    # Any wrapper under "deflate" (servers differ); gzip or zlib under "gzip".
    encoding = "deflate" if wrapper == "raw deflate" else data.draw(
        st.sampled_from(ENCODINGS), label="encoding")
    response = _Response(encoding, _compress(body, wrapper, level), cuts)
    chunks = list(_decoded_chunks(response))  # type: ignore[arg-type]
    assert b"".join(chunks) == body
    assert all(0 < len(chunk) <= CHUNK for chunk in chunks)


def _a_header(data: bytes) -> bool:
    """A gzip magic number, or a valid zlib header (deflate, its check bits right)."""
    return data[:2] == b"\x1f\x8b" or (
        data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)


@given(garbage=st.binary(min_size=1, max_size=64).filter(
           lambda data: len(data) < 2 or not _a_header(data)),
       encoding=st.sampled_from(["gzip", "x-gzip"]))
def test_a_body_that_is_not_gzip_is_an_invalid_response(garbage: bytes, encoding: str) -> None:
    response = _Response(encoding, garbage, [])
    with pytest.raises(InvalidResponseError, match="does not decompress"):
        list(_decoded_chunks(response))  # type: ignore[arg-type]
