"""Elements received from the peer get RFC 7748's bytes on every CPU, even crafted ones.

Hypothesis found that Intel crypto_mb's ``mbx_x25519_mb8`` returns wrong bytes for some
valid, canonical inputs: with the all-zero key, u = 2^254 - 1402 gave ``db2352ca...``
where pyca, libsodium and curve25519-dalek give ``5c739715...``. The wrong results cluster
just below 2^254, just below p - 1 and just below 2^255 - 2^128, and whether a given input
fails depends on the key. A peer that chose such elements and watched which results came
out wrong could learn bits of the other side's key, so received elements never take that
path (docs/design-decisions.md); this test keeps the inputs that showed it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.crypto.commutative import CommutativeCipher

P = 2**255 - 19
CRAFTED = (
    [2**254 - d for d in (19, 100, 1000, 1390, 1402)]
    + [P - 1 - d for d in (2, 19, 100, 500, 1000)]
    + [2**255 - 2**128 - d for d in (100, 700, 1200)]
)


def rfc7748(key: bytes, u: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(key).exchange(X25519PublicKey.from_public_bytes(u))


@given(key=st.binary(min_size=32, max_size=32), u=st.sampled_from(CRAFTED))
@settings(max_examples=300, deadline=None)
def test_a_crafted_received_element_gets_rfc7748_bytes(key: bytes, u: int) -> None:
    element = u.to_bytes(32, "little")
    assert CommutativeCipher._from_key(key).encrypt(element) == rfc7748(key, element)


def test_the_all_zero_key_case_hypothesis_found() -> None:
    element = (2**254 - 1402).to_bytes(32, "little")
    encrypted = CommutativeCipher._from_key(bytes(32)).encrypt(element)
    assert encrypted.hex().startswith("5c73971502bc244c")
    assert encrypted == rfc7748(bytes(32), element)
