"""The Spark implementation's mapInArrow kernels, run on Arrow batches without Spark: the packed
buffers they hand to the native batch functions give, row for row, what one call per
element gives, also on sliced batches and with missing keys."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import ELEMENT_SIZE
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch
from cleanroom.lists.spark.kernels import (
    encrypt_brand_batches,
    encrypt_partner_batches,
    hash_batches,
    sketch_batches,
)
from cleanroom.privacy.setdiff import list_sketch
from cleanroom.protocol.common import element_message

DST = b"cleanroom-test-dst"
KEYS = ("email", "phone")


def digest(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def hashed_batch(rows: int) -> pa.RecordBatch:
    """Digests with gaps (every third email, every second phone missing), hashed by the
    kernel, then sliced so the arrays start at an offset."""
    emails = [None if i % 3 == 0 else digest(i) for i in range(rows)]
    phones = [None if i % 2 == 0 else digest(-i) for i in range(rows)]
    batch = pa.RecordBatch.from_pydict(
        {
            "k0": pa.array(emails, pa.binary()),
            "k1": pa.array(phones, pa.binary()),
            "segment": pa.array([i % 3 for i in range(rows)], pa.int8()),
            "a0": pa.array([i % 5 == 0 for i in range(rows)]),
        }
    )
    (hashed,) = hash_batches(KEYS, DST, [batch])
    return hashed.slice(2)


def one_point(key: str, value: bytes | None) -> bytes | None:
    return None if value is None else hash_to_curve_batch([element_message(key, value)], DST)


def test_hash_kernel_gives_each_present_digest_its_point_and_null_elsewhere():
    batch = hashed_batch(40)
    for k, key in enumerate(KEYS):
        digests = batch.column(f"k{k}").to_pylist()
        assert batch.column(f"p{k}").to_pylist() == [one_point(key, d) for d in digests]
    assert batch.column("p0").null_count == len(
        [d for d in batch.column("k0").to_pylist() if d is None]
    )


def test_brand_kernel_encrypts_every_present_point_into_its_group():
    batch = hashed_batch(40)
    cipher = CommutativeCipher.generate()
    (out,) = encrypt_brand_batches(cipher, len(KEYS), [batch])
    expected = [
        (segment * len(KEYS) + k, cipher.encrypt(point))
        for k in range(len(KEYS))
        for segment, point in zip(
            batch.column("segment").to_pylist(), batch.column(f"p{k}").to_pylist(), strict=True
        )
        if point is not None
    ]
    groups, elements = out.column("group").to_pylist(), out.column("element").to_pylist()
    assert list(zip(groups, elements, strict=True)) == expected


def test_partner_kernel_packs_each_record_and_fills_missing_keys_with_fresh_elements():
    batch = hashed_batch(40)
    cipher = CommutativeCipher.generate()
    (out,) = encrypt_partner_batches(cipher, len(KEYS), 1, DST, [batch])
    records = out.column("record").to_pylist()
    assert len(records) == batch.num_rows
    assert out.column("a0").to_pylist() == batch.column("a0").to_pylist()
    fillers = set()
    for r, record in enumerate(records):
        assert len(record) == len(KEYS) * ELEMENT_SIZE
        for k in range(len(KEYS)):
            slot = record[k * ELEMENT_SIZE : (k + 1) * ELEMENT_SIZE]
            point = batch.column(f"p{k}")[r].as_py()
            if point is None:
                fillers.add(slot)
            else:
                assert slot == cipher.encrypt(point)
    missing = sum(batch.column(f"p{k}").null_count for k in range(len(KEYS)))
    assert len(fillers) == missing > 0  # every filler a different element
    assert cipher.encrypt(b"".join(fillers))  # and each a valid point the peer will accept


def test_sketch_kernel_counts_the_records_as_the_per_record_sketch_does():
    batch = hashed_batch(40)
    (out,) = sketch_batches(len(KEYS), b"sketch key", [batch])
    counts = np.frombuffer(out.column("sketch")[0].as_py(), dtype="<u8")
    digests = [batch.column(f"k{k}").to_pylist() for k in range(len(KEYS))]
    labels = batch.column("segment").to_pylist()
    assert counts.tolist() == list_sketch(digests, b"sketch key", labels).tolist()
    assert counts.sum() == batch.num_rows
