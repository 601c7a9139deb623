"""What the partner does instead of a subgroup check per ciphertext: canonical encodings per
point, curve membership per addition, and one projection onto the prime-order subgroup per sum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.crypto.elgamal import ElGamalPrivateKey
from cleanroom.crypto.summation import add, sum_by_mask
from cleanroom.crypto.validation import check_encodings, clear_torsion
from cleanroom.errors import CryptoError

# The eight torsion points of edwards25519 (libsodium's blocklist, canonical encodings).
ORDER_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
ORDER_2 = bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
IDENTITY = b"\x01" + bytes(31)
KEY = ElGamalPrivateKey.generate()


def salted(ciphertext: bytes, torsion: bytes) -> bytes:
    """A ciphertext with a small-order component planted in both points."""
    return add(ciphertext, torsion + torsion)


@settings(max_examples=30, deadline=None)
@given(
    bits=st.lists(st.integers(0, 1), min_size=1, max_size=12),
    planted=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_planted_torsion_does_not_survive_into_the_sum(bits, planted):
    packed = KEY.encrypt_indicators(bits)
    cts = [packed[i * 64 : (i + 1) * 64] for i in range(len(bits))]
    tainted = b"".join(salted(c, ORDER_8) if p else c for c, p in zip(cts, planted, strict=False))
    check_encodings(tainted)
    (total,) = sum_by_mask(tainted, np.ones((1, len(bits)), dtype=bool))
    assert KEY.decrypt(clear_torsion(total), bound=100) == sum(bits)


def test_a_sum_of_pure_torsion_projects_to_the_identity():
    assert clear_torsion(ORDER_2 + ORDER_8) == IDENTITY + IDENTITY
    assert clear_torsion(IDENTITY + IDENTITY) == IDENTITY + IDENTITY


def test_non_canonical_and_off_curve_points_are_refused():
    non_canonical = (2**255 - 19 + 1).to_bytes(32, "little")  # y = p + 1, i.e. 1 encoded twice
    with pytest.raises(CryptoError):
        check_encodings(KEY.encrypt_indicators([1])[:32] + non_canonical)
    off_curve = (2).to_bytes(32, "little")  # y = 2 has no x on edwards25519
    with pytest.raises(CryptoError):
        clear_torsion(off_curve + IDENTITY)
    with pytest.raises(CryptoError):
        check_encodings(b"\0" * 63)
