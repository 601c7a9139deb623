"""CommutativeCipher: encryption of packed batches and validation of received elements."""

from __future__ import annotations

import pickle

import pytest

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import ELEMENT_SIZE, FIELD_PRIME
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch
from cleanroom.errors import CryptoError

P = FIELD_PRIME
DST = b"cleanroom-unit-test"

# Curve25519 points of low order, as libsodium blocks them (crypto_scalarmult/curve25519/
# ref10/x25519_ref10.c, after https://cr.yp.to/ecdh.html): canonical ones first.
LOW_ORDER_CANONICAL = [
    bytes(32),  # 0, order 4
    (1).to_bytes(32, "little"),  # 1, order 1
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),  # order 8
    (P - 1).to_bytes(32, "little"),  # order 2
]
LOW_ORDER_NON_CANONICAL = [
    P.to_bytes(32, "little"),  # = 0
    (P + 1).to_bytes(32, "little"),  # = 1
]


@pytest.fixture(scope="module")
def points() -> bytes:
    return hash_to_curve_batch([f"user{i}@example.com".encode() for i in range(8)], DST)


def test_element_size() -> None:
    assert ELEMENT_SIZE == 32


def test_encrypt_keeps_order_and_size(points: bytes) -> None:
    cipher = CommutativeCipher.generate()
    encrypted = cipher.encrypt(points)
    assert len(encrypted) == len(points)
    for i in range(0, len(points), ELEMENT_SIZE):
        one = points[i : i + ELEMENT_SIZE]
        assert cipher.encrypt(one) == encrypted[i : i + ELEMENT_SIZE]
        assert encrypted[i : i + ELEMENT_SIZE] != one


def test_encrypt_is_deterministic_per_key_and_differs_across_keys(points: bytes) -> None:
    a, b = CommutativeCipher.generate(), CommutativeCipher.generate()
    assert a.encrypt(points) == a.encrypt(points)
    assert a.encrypt(points) != b.encrypt(points)


def test_output_is_a_valid_element(points: bytes) -> None:
    """What one side sends must pass the other side's validation."""
    encrypted = CommutativeCipher.generate().encrypt(points)
    assert len(CommutativeCipher.generate().encrypt(encrypted)) == len(points)


def test_empty_batch() -> None:
    assert CommutativeCipher.generate().encrypt(b"") == b""


def test_commutes(points: bytes) -> None:
    a, b = CommutativeCipher.generate(), CommutativeCipher.generate()
    assert a.encrypt(b.encrypt(points)) == b.encrypt(a.encrypt(points))


@pytest.mark.parametrize("length", [1, 31, 33, 63, 65])
def test_wrong_length_rejected(length: int) -> None:
    with pytest.raises(CryptoError):
        CommutativeCipher.generate().encrypt(bytes(range(length)))


@pytest.mark.parametrize("point", LOW_ORDER_CANONICAL, ids=lambda p: p.hex()[:8])
def test_low_order_point_rejected(point: bytes) -> None:
    with pytest.raises(CryptoError):
        CommutativeCipher.generate().encrypt(point)


@pytest.mark.parametrize(
    "element",
    [
        *LOW_ORDER_NON_CANONICAL,
        (2**255 - 1).to_bytes(32, "little"),
        *(
            (int.from_bytes(p, "little") | 1 << 255).to_bytes(32, "little")
            for p in LOW_ORDER_CANONICAL
        ),
    ],
    ids=lambda e: e.hex()[-8:],
)
def test_non_canonical_rejected(element: bytes) -> None:
    with pytest.raises(CryptoError):
        CommutativeCipher.generate().encrypt(element)


def test_valid_point_with_top_bit_set_rejected(points: bytes) -> None:
    first = bytearray(points[:ELEMENT_SIZE])
    first[31] |= 0x80
    with pytest.raises(CryptoError):
        CommutativeCipher.generate().encrypt(bytes(first))


@pytest.mark.parametrize("position", [0, 3, 7])
def test_one_bad_element_aborts_the_batch(points: bytes, position: int) -> None:
    start = position * ELEMENT_SIZE
    tampered = points[:start] + bytes(32) + points[start + ELEMENT_SIZE :]
    with pytest.raises(CryptoError):
        CommutativeCipher.generate().encrypt(tampered)


def test_every_failure_looks_the_same() -> None:
    cipher = CommutativeCipher.generate()
    messages = set()
    for bad in [bytes(31), bytes(32), P.to_bytes(32, "little"), b"\xff" * 32]:
        with pytest.raises(CryptoError) as caught:
            cipher.encrypt(bad)
        messages.add((type(caught.value), caught.value.args, caught.value.__cause__))
        assert caught.value.__suppress_context__ or caught.value.__context__ is None
    assert len(messages) == 1


def test_pickle_keeps_the_key_for_spark_executors(points: bytes) -> None:
    cipher = CommutativeCipher.generate()
    clone = pickle.loads(pickle.dumps(cipher))  # noqa: S301 - our own pickle, as Spark sends it
    assert clone is not cipher
    assert clone.encrypt(points) == cipher.encrypt(points)


def test_key_is_not_exposed() -> None:
    key = bytes(range(32))
    cipher = CommutativeCipher._from_key(key)
    assert not hasattr(cipher, "key_bytes")
    assert not hasattr(cipher, "__dict__")
    assert key.hex() not in repr(cipher)


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        CommutativeCipher._from_key(bytes(31))
