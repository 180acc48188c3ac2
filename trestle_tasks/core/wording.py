"""Small pieces of English for messages people read: counts with the right noun form."""

from __future__ import annotations


def count(number: int, singular: str, plural: str | None = None) -> str:
    """`1 request`, `2 requests`, `1,000 records` (thousands separated)."""
    noun = singular if number == 1 else (plural or f"{singular}s")
    return f"{number:,} {noun}"
