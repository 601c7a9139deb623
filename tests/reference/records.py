"""Test oracles: the former pure-Python per-record kernels (SHA-256 of identifiers, the
set-difference sketch, the brand's match table); cleanroom now runs them natively."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

BUCKETS = 1 << 16


def sha256_all(items: Sequence[bytes]) -> list[bytes]:
    return [hashlib.sha256(item).digest() for item in items]


def list_sketch(digests: Sequence[Sequence[bytes | None]], key: bytes) -> np.ndarray:
    """Bucket counts of the records (a record is the tuple of its digests, one per key)."""
    counts = np.zeros(BUCKETS, dtype=np.uint32)
    if not digests or not len(digests[0]):
        return counts
    for record in zip(*digests, strict=True):
        joined = b"|".join(d or b"-" for d in record)
        digest = hashlib.blake2b(joined, key=key, digest_size=4).digest()
        counts[int.from_bytes(digest, "little") % BUCKETS] += 1
    return counts


def match_lookup(table: list[tuple[bytes, int]], values: Sequence[bytes]) -> list[int]:
    """Segment of each value in ``table`` (first entry wins), -1 where absent."""
    first: dict[bytes, int] = {}
    for value, segment in table:
        first.setdefault(value, segment)
    return [first.get(value, -1) for value in values]
