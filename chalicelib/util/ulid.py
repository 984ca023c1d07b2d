"""ULIDs: 48-bit millisecond timestamp + 80 random bits, Crockford base32, 26 characters.

Lexicographic order is creation order (to the millisecond), which makes server-assigned ids list
in creation order. Ten lines do not justify a dependency in every Lambda package.
"""

from __future__ import annotations

import os
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new(timestamp_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return from_parts(ms, os.urandom(10))


def from_parts(timestamp_ms: int, tail: bytes) -> str:
    """A ULID with given randomness (10 bytes): the same inputs always give the same id."""
    if len(tail) != 10:
        raise ValueError("a ULID carries exactly 10 bytes after its timestamp")
    value = (timestamp_ms << 80) | int.from_bytes(tail, "big")
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
