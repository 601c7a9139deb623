"""Properties of H and E_k that the PSI rests on (docs/protocol.md).

That the PSI count equals the plain intersection is checked on the real protocol, sessions
and all, in test_protocol_intersection.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import ELEMENT_SIZE, FIELD_PRIME
from cleanroom.crypto.hash_to_curve import hash_to_curve, hash_to_curve_batch
from cleanroom.errors import CryptoError

P = FIELD_PRIME
DST = b"cleanroom-property-test"
keys = st.binary(min_size=32, max_size=32)
identifiers = st.binary(max_size=64)
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (P - 1).to_bytes(32, "little"),
]


def split(packed: bytes) -> list[bytes]:
    return [packed[i : i + ELEMENT_SIZE] for i in range(0, len(packed), ELEMENT_SIZE)]


@given(a=keys, b=keys, x=identifiers)
def test_encryption_commutes(a: bytes, b: bytes, x: bytes) -> None:
    ea, eb = CommutativeCipher._from_key(a), CommutativeCipher._from_key(b)
    h = hash_to_curve(x, DST)
    assert ea.encrypt(eb.encrypt(h)) == eb.encrypt(ea.encrypt(h))


@given(messages=st.lists(identifiers, max_size=8))
def test_hash_output_is_always_a_valid_element(messages: list[bytes]) -> None:
    packed = hash_to_curve_batch(messages, DST)
    assert len(packed) == ELEMENT_SIZE * len(messages)
    for u in split(packed):
        assert int.from_bytes(u, "little") < P
    assert len(CommutativeCipher.generate().encrypt(packed)) == len(packed)


@given(data=st.binary().filter(lambda d: len(d) % ELEMENT_SIZE != 0))
def test_wrong_lengths_rejected(data: bytes) -> None:
    with pytest.raises(CryptoError):
        CommutativeCipher.generate().encrypt(data)


@given(value=st.integers(P, 2**256 - 1), key=keys)
def test_non_canonical_rejected(value: int, key: bytes) -> None:
    with pytest.raises(CryptoError):
        CommutativeCipher._from_key(key).encrypt(value.to_bytes(32, "little"))


@given(point=st.sampled_from(LOW_ORDER), key=keys, good=st.lists(identifiers, max_size=4))
def test_low_order_points_rejected_anywhere_in_a_batch(
    point: bytes, key: bytes, good: list[bytes]
) -> None:
    batch = hash_to_curve_batch(good, DST)
    with pytest.raises(CryptoError):
        CommutativeCipher._from_key(key).encrypt(batch + point)
