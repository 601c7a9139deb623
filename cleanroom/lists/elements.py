"""Packed digests and what both list implementations compute from them: the curve points
of round 1 and the set-difference sketch.

A list keeps, per match key, its records' SHA-256 digests packed
(:class:`cleanroom.identifiers.digests.KeyDigests`), never a Python ``bytes`` per record. The
hash-to-curve input ``key:digest``
(:func:`cleanroom.protocol.common.element_message`) is given to the native core as the
prefix ``key:`` and the packed digests, so no message is built in Python either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from cleanroom import _native
from cleanroom.crypto.constants import ELEMENT_SIZE
from cleanroom.crypto.hash_to_curve import hash_to_curve_prefixed
from cleanroom.identifiers.digests import DIGEST_SIZE, KeyDigests
from cleanroom.privacy.setdiff import BUCKETS
from cleanroom.protocol.common import dummy_message, element_message

#: The hash-to-curve prefix of a missing key slot's random filler (``dummy:``).
DUMMY_PREFIX = dummy_message()[:-DIGEST_SIZE]


def key_prefix(key: str) -> bytes:
    """The hash-to-curve input of match key ``key`` before the digest (``key:``)."""
    return element_message(key, b"")


def hash_points(key: str, digests: np.ndarray, dst: bytes) -> bytes:
    """H(key:digest) on the curve for each row of an (m, 32) digest matrix, packed."""
    return hash_to_curve_prefixed(key_prefix(key), np.ascontiguousarray(digests).tobytes(), dst)


def dummy_points(count: int, dst: bytes) -> bytes:
    """``count`` fresh random points H(dummy:r), r 32 bytes from the OS: the filler of the
    key slots a partner record lacks (no identifier hashes to one)."""
    return hash_to_curve_prefixed(DUMMY_PREFIX, os.urandom(DIGEST_SIZE * count), dst)


def record_points(keys: Sequence[str], columns: Sequence[KeyDigests], dst: bytes) -> bytes:
    """Each record's points, one slot per key, record after record: H(key:digest) where the
    record has the key, a dummy point where it does not."""
    n = len(columns[0]) if columns else 0
    slots = np.zeros((n, len(keys), ELEMENT_SIZE), dtype=np.uint8)
    for k, (key, column) in enumerate(zip(keys, columns, strict=True)):
        present = column.present
        missing = n - int(present.sum())
        if missing < n:
            hashed = hash_points(key, column.matrix[present], dst)
            slots[present, k] = np.frombuffer(hashed, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
        if missing:
            dummies = dummy_points(missing, dst)
            slots[~present, k] = np.frombuffer(dummies, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
    return slots.tobytes()


def sketch(
    columns: Sequence[KeyDigests], key: bytes, labels: np.ndarray | None = None
) -> np.ndarray:
    """:func:`cleanroom.privacy.setdiff.list_sketch` of packed digests (the same counts):
    a brand's records carry their segment index as ``labels``."""
    digests = b"".join(np.ascontiguousarray(c.matrix).tobytes() for c in columns)
    present = b"".join(c.present.astype(np.uint8).tobytes() for c in columns)
    packed_labels = None if labels is None else labels.astype(np.int8).tobytes()
    counts = _native.list_sketch_packed(digests, present, len(columns), key, packed_labels)
    result = np.frombuffer(counts, dtype="<u4").astype(np.uint32)
    assert len(result) == BUCKETS
    return result
