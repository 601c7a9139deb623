"""Fuzz the native core's Python surface with random bytes, wrong lengths, odd buffers and
wrong types: a result equal to the oracle's, the one CryptoError for bad received data, or a
ValueError/TypeError for a caller's misuse; never a panic (pyo3's PanicException is a
BaseException, so it would fail these tests) and never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import commutative as reference_commutative
from reference import hash_to_curve as reference_h2c

from cleanroom import _native
from cleanroom.crypto.commutative import CommutativeCipher
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
        assert hash_to_curve_edwards25519(batch[0], dst) == reference_h2c.hash_to_curve_edwards25519(
            batch[0], dst
        )


@given(item=st.one_of(st.none(), st.integers(), st.text(), st.just(bytearray(b"x"))))
def test_hash_to_curve_takes_only_bytes_items(item: object) -> None:
    with pytest.raises(TypeError, match="sequence of bytes"):
        _native.hash_to_curve_batch([b"ok", item], b"dst")
    with pytest.raises(TypeError):
        _native.hash_to_curve_batch(item, b"dst")
