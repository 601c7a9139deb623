"""Fuzz the native core's Python surface with random bytes, wrong lengths, odd buffers and
wrong types: a result equal to the oracle's, the one CryptoError for bad received data, or a
ValueError/TypeError for a caller's misuse; never a panic (pyo3's PanicException is a
BaseException, so it would fail these tests) and never a crash."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import commutative as reference_commutative
from reference import hash_to_curve as reference_h2c
from reference import records

from cleanroom import _native
from cleanroom.crypto.commutative import CommutativeCipher, x25519_fresh_keys
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch, hash_to_curve_edwards25519
from cleanroom.errors import CryptoError


def odd_buffers(data: bytes) -> list[bytes | bytearray | memoryview]:
    """The same bytes as bytes, bytearray, and a memoryview starting at an odd address."""
    shifted = memoryview(b"\x00" + data)[1:]
    return [data, bytearray(data), shifted]


@given(key=st.binary(min_size=32, max_size=32), data=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_encrypt_random_bytes_any_buffer(key: bytes, data: bytes) -> None:
    try:
        expected: bytes | None = reference_commutative.CommutativeCipher(key).encrypt(data)
    except CryptoError:
        expected = None
    for buffer in odd_buffers(data):
        try:
            got: bytes | None = CommutativeCipher(key).encrypt(buffer)  # type: ignore[arg-type]
        except CryptoError:
            got = None
        assert got == expected


@given(keys=st.binary(max_size=200), point=st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_x25519_fresh_keys_random_bytes(keys: bytes, point: bytes) -> None:
    """A ragged key buffer or a point of the wrong length, low order or not canonical: the
    one CryptoError, never a crash; otherwise one 32-byte result per key."""
    try:
        packed = x25519_fresh_keys(keys, point)
    except CryptoError:
        return
    assert len(keys) % 32 == 0 and len(point) == 32
    assert len(packed) == len(keys)


@given(key=st.binary(max_size=64).filter(lambda k: len(k) != 32), data=st.binary(max_size=64))
def test_x25519_key_of_the_wrong_length_is_a_value_error(key: bytes, data: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        _native.x25519_batch(key, data)


@given(data=st.binary(max_size=64))
def test_x25519_refuses_buffers_it_would_read_without_the_gil(data: bytes) -> None:
    """Only immutable bytes cross the boundary; CommutativeCipher copies other buffers."""
    for buffer in (bytearray(data), memoryview(data), None, 3, "text"):
        with pytest.raises(TypeError):
            _native.x25519_batch(bytes(32), buffer)


@given(batch=st.lists(st.binary(max_size=100), max_size=20), dst=st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_hash_to_curve_random_messages_and_dsts(batch: list[bytes], dst: bytes) -> None:
    if not dst:
        with pytest.raises(ValueError, match="non-empty domain separation tag"):
            hash_to_curve_batch(batch, dst)
        return
    assert hash_to_curve_batch(batch, dst) == reference_h2c.hash_to_curve_batch(batch, dst)
    for buffer in odd_buffers(dst):
        assert hash_to_curve_batch(batch, buffer) == hash_to_curve_batch(batch, dst)  # type: ignore[arg-type]
    if batch:
        assert hash_to_curve_edwards25519(
            batch[0], dst
        ) == reference_h2c.hash_to_curve_edwards25519(batch[0], dst)


@given(item=st.one_of(st.none(), st.integers(), st.text(), st.just(bytearray(b"x"))))
def test_hash_to_curve_takes_only_bytes_items(item: object) -> None:
    with pytest.raises(TypeError, match="sequence of bytes"):
        _native.hash_to_curve_batch([b"ok", item], b"dst")
    with pytest.raises(TypeError):
        _native.hash_to_curve_batch(item, b"dst")


@given(data=st.binary(max_size=100), offsets=st.lists(st.integers(-5, 120), max_size=12))
@settings(max_examples=300, deadline=None)
def test_sha256_spans_random_offsets(data: bytes, offsets: list[int]) -> None:
    packed_offsets = b"".join(o.to_bytes(8, "little", signed=True) for o in offsets)
    in_range = all(0 <= a <= b for a, b in itertools.pairwise(offsets)) and (
        not offsets or 0 <= offsets[-1] <= len(data)
    )
    if not in_range:
        with pytest.raises(CryptoError):
            _native.sha256_spans(data, packed_offsets)
        return
    packed = _native.sha256_spans(data, packed_offsets)
    expected = [hashlib.sha256(data[a:b]).digest() for a, b in itertools.pairwise(offsets)]
    assert packed == b"".join(expected)


@given(data=st.binary(max_size=40), cut=st.integers(1, 7))
def test_sha256_spans_offsets_of_a_ragged_length(data: bytes, cut: int) -> None:
    with pytest.raises(CryptoError):
        _native.sha256_spans(data, bytes(8 + cut))


@given(data=st.binary(max_size=100), size=st.integers(0, 40))
def test_shuffle_packed_random_sizes(data: bytes, size: int) -> None:
    if size == 0 or len(data) % size:
        with pytest.raises(CryptoError):
            _native.shuffle_packed(data, size)
        return
    out = _native.shuffle_packed(data, size)
    assert sorted(out[i : i + size] for i in range(0, len(out), size)) == sorted(
        data[i : i + size] for i in range(0, len(data), size)
    )


def test_permutation_of_a_negative_length_is_refused() -> None:
    with pytest.raises(OverflowError):
        _native.permutation(-1)


@given(
    packed=st.binary(max_size=60),
    segments=st.binary(max_size=8),
    size=st.integers(0, 20),
    values=st.binary(max_size=60),
)
@settings(max_examples=300, deadline=None)
def test_match_table_random_shapes(
    packed: bytes, segments: bytes, size: int, values: bytes
) -> None:
    if not 1 <= size <= 16 or len(packed) != len(segments) * size:
        with pytest.raises(CryptoError):
            _native.MatchTable(packed, segments, size)
        return
    table = _native.MatchTable(packed, segments, size)
    if len(values) % size:
        with pytest.raises(CryptoError):
            table.lookup(values)
        return
    entries = [(packed[i * size : (i + 1) * size], segments[i]) for i in range(len(segments))]
    items = [values[i : i + size] for i in range(0, len(values), size)]
    as_int8 = [
        -1 if v == -1 else int(np.int8(np.uint8(v))) for v in records.match_lookup(entries, items)
    ]
    assert np.frombuffer(table.lookup(values), dtype=np.int8).tolist() == as_int8


@given(key=st.binary(min_size=65, max_size=100))
def test_list_sketch_refuses_a_long_key(key: bytes) -> None:
    with pytest.raises(ValueError, match="at most 64 bytes"):
        _native.list_sketch([[b"a"]], key)


@given(item=st.one_of(st.integers(), st.text(min_size=1), st.just(bytearray(b"x"))))
def test_list_sketch_refuses_wrong_types_and_ragged_columns(item: object) -> None:
    with pytest.raises(TypeError, match="bytes or None"):
        _native.list_sketch([[b"a", item]], b"k")
    with pytest.raises(ValueError, match="one entry per record"):
        _native.list_sketch([[b"a", None], [b"b"]], b"k")
