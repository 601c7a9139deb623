"""Every native function of cleanroom._native against its pure-Python oracle (tests/reference/)
on random inputs: same bytes, and the same error where the oracle refuses.

The RFC 9380 and RFC 7748 vectors are in tests/vectors/; these properties cover the rest of
the input space, including batches long enough to be split over several rayon tasks and
crypto_mb's 8 lanes with a short tail.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import commutative as reference_commutative
from reference import hash_to_curve as reference_h2c

from cleanroom import _native
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.hash_to_curve import (
    hash_to_curve_batch,
    hash_to_curve_edwards25519,
)
from cleanroom.errors import CryptoError

P = 2**255 - 19
keys = st.binary(min_size=32, max_size=32)
messages = st.lists(st.binary(max_size=80), max_size=40)
dsts = st.binary(min_size=1, max_size=300)  # over 255 bytes: hashed first (RFC 9380 5.3.3)
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (P - 1).to_bytes(32, "little"),
]
# Received elements: valid points, arbitrary canonical strings (curve or twist), low-order
# points, and non-canonical or high-bit strings.
elements = st.one_of(
    st.binary(max_size=40).map(lambda m: reference_h2c.hash_to_curve(m, b"oracle")),
    st.integers(0, P - 1).map(lambda u: u.to_bytes(32, "little")),
    st.sampled_from(LOW_ORDER),
    st.integers(P, 2**256 - 1).map(lambda u: u.to_bytes(32, "little")),
)


def outcome(encrypt, packed: bytes) -> bytes | type[CryptoError]:
    try:
        return encrypt(packed)
    except CryptoError:
        return CryptoError


@given(batch=messages, dst=dsts)
@settings(max_examples=60, deadline=None)
def test_hash_to_curve_batch_matches_the_oracle(batch: list[bytes], dst: bytes) -> None:
    assert hash_to_curve_batch(batch, dst) == reference_h2c.hash_to_curve_batch(batch, dst)


@given(msg=st.binary(max_size=200), dst=dsts)
@settings(max_examples=60, deadline=None)
def test_hash_to_curve_edwards25519_matches_the_oracle(msg: bytes, dst: bytes) -> None:
    assert hash_to_curve_edwards25519(msg, dst) == reference_h2c.hash_to_curve_edwards25519(msg, dst)


def test_a_long_batch_spans_many_rayon_tasks_in_order() -> None:
    batch = [os.urandom(i % 50) for i in range(3000)]
    assert hash_to_curve_batch(batch, b"oracle") == reference_h2c.hash_to_curve_batch(batch, b"oracle")


@given(key=keys, batch=st.lists(elements, max_size=19))
@settings(max_examples=200, deadline=None)
def test_x25519_batch_matches_pyca(key: bytes, batch: list[bytes]) -> None:
    """Same bytes as the former pyca path, or CryptoError exactly where it refused."""
    packed = b"".join(batch)
    native = outcome(CommutativeCipher._from_key(key).encrypt, packed)
    oracle = outcome(reference_commutative.CommutativeCipher._from_key(key).encrypt, packed)
    assert native == oracle


@given(key=keys, batch=st.lists(elements, max_size=19))
@settings(max_examples=200, deadline=None)
def test_portable_x25519_gives_the_bytes_of_the_active_path(key: bytes, batch: list[bytes]) -> None:
    packed = b"".join(batch)
    active = outcome(lambda p: _native.x25519_batch(key, p), packed)
    portable = outcome(lambda p: _native.x25519_batch(key, p, portable=True), packed)
    assert active == portable


def test_crypto_mb_and_portable_give_the_same_bytes_on_a_long_batch() -> None:
    """The multi-buffer path (8 lanes, rayon tasks of 512) against the portable one."""
    path, reason = _native.x25519_path()
    if path != "crypto_mb":
        pytest.skip(f"multi-buffer X25519 is not active here: {reason}")
    key = os.urandom(32)
    packed = reference_h2c.hash_to_curve_batch([os.urandom(16) for _ in range(2053)], b"oracle")
    assert _native.x25519_batch(key, packed) == _native.x25519_batch(key, packed, portable=True)
    assert _native.x25519_batch(key, packed) == reference_commutative.CommutativeCipher(key).encrypt(packed)
