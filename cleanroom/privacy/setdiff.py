"""Set-difference defence: refuse (or flag) a session whose list barely differs from an
earlier session's list under the same contract (the check itself is
``cleanroom.protocol.common.check_set_difference``; this module makes and compares sketches).

Two sessions over lists that differ in a handful of records let a party compare the two
results and learn about those records (the differencing attack PAIR warns about). Each side
checks only its own list, using only what it already holds, before anything is sent.

What is kept is a sketch, not the list: a histogram of ``BUCKETS`` counters, each record
counted in the bucket chosen by a keyed BLAKE2b of its digests (the key is a random secret
of this party's state database). The L1 distance between two sketches equals the number of
records added plus removed, unless an added and a removed record share a bucket, which only
under-counts (the check then errs towards refusing). A sketch holds no identifier, hash or
encrypted element, and with ~15 records per bucket at 1M records it cannot be used to test
whether a given person is on the list.

Limits (docs/threat-model.md): it does not stop a party that changes the software, spreads
its probing over many sessions each above the threshold, pads a target with made-up
identifiers to exceed the threshold, or uses another contract. Noise bounds what the
partner can learn that way; the brand sees exact overlaps, so against a brand that probes
on purpose the protection is the semi-honest assumption, not this check.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from cleanroom import _native

BUCKETS = 1 << 16


def list_sketch(
    digests: Sequence[Sequence[bytes | None]], key: bytes, labels: Sequence[int] | None = None
) -> np.ndarray:
    """Bucket counts of the records: a record is the tuple of its digests, one per key, and
    for a brand its segment label, so that relabelling a record counts as a change (it
    moves the record's bucket: one removed, one added).

    Natively (native/src/sketch.rs), on the calling engine's threads: record r is counted in
    bucket int.from_bytes(blake2b(b"|".join(d or b"-" for d in record), key=key,
    digest_size=4), "little") % BUCKETS, the label entering as one more field ``b"s<label>"``.
    """
    columns = list(digests)
    if labels is not None:
        columns.append([b"s%d" % int(s) for s in labels])
    counts = np.frombuffer(_native.list_sketch(columns, key), dtype="<u4").astype(np.uint32)
    assert len(counts) == BUCKETS
    return counts


def difference(first: np.ndarray, second: np.ndarray) -> int:
    """Records added plus removed between two lists (a lower bound; exact in practice)."""
    return int(np.abs(first.astype(np.int64) - second.astype(np.int64)).sum())


def pack(sketch: np.ndarray) -> bytes:
    return zlib.compress(sketch.astype("<u4").tobytes(), 6)


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype="<u4")
