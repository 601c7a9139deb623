"""Test oracle: the former pyca-based commutative cipher, E_k(P) = X25519(k, u(P)).

cleanroom now runs the native core (cleanroom/crypto/commutative.py); the tests compare the
two on random inputs, byte for byte, errors included.

X25519 clamps every key to a multiple of 8 below 2^255, and multiplying by clamped
scalars commutes: E_a(E_b(P)) = E_b(E_a(P)). That is the whole PSI: each side raises the
other's already-encrypted points to its own key and equal identifiers meet.

Validation of received elements: canonical encoding (u < p, so the top bit is clear) and
not of low order. The clamped key is a multiple of the cofactor, so X25519 of a low-order
point is all zeros, which pyca reports as ValueError; a point with a low-order component
loses it, and a point on the twist (order 4 times a large prime) cannot leak key bits
either, so no further on-curve check is needed.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from cleanroom.errors import CryptoError

ELEMENT_SIZE = 32
_P = 2**255 - 19


class CommutativeCipher:
    """One party's commutative cipher for one session; the key never leaves the object.

    Pickling carries the key, so that a process pool can run ``encrypt`` in worker
    processes. That is the only reason to pickle it: never persist or log a pickle.
    """

    __slots__ = ("_key", "_private_key")

    def __init__(self, key: bytes) -> None:
        """Use ``generate()``; a given key is for test vectors and worker processes only."""
        if len(key) != 32:
            raise ValueError("an X25519 key is 32 bytes")
        self._key = bytes(key)
        # Loading costs ~23 us, as much as one multiplication: done once, never per element.
        self._private_key = X25519PrivateKey.from_private_bytes(self._key)

    @classmethod
    def generate(cls) -> CommutativeCipher:
        """A cipher with a fresh random key: one per session per party."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def _from_key(cls, key: bytes) -> CommutativeCipher:
        """A cipher with a known key, for tests (RFC 7748 vectors)."""
        return cls(key)

    def __reduce__(self) -> tuple[type[CommutativeCipher], tuple[bytes]]:
        return (type(self), (self._key,))

    def encrypt(self, packed: bytes) -> bytes:
        """E_k of each 32-byte element of ``packed``, packed in the same order.

        Every element comes from the peer, so each is validated; any invalid one aborts
        with the same opaque CryptoError, whichever check failed.
        """
        if len(packed) % ELEMENT_SIZE:
            raise CryptoError()
        exchange = self._private_key.exchange
        load = X25519PublicKey.from_public_bytes
        encrypted = []
        try:
            for start in range(0, len(packed), ELEMENT_SIZE):
                element = packed[start : start + ELEMENT_SIZE]
                if int.from_bytes(element, "little") >= _P:
                    raise CryptoError()
                encrypted.append(exchange(load(element)))
        except ValueError:  # all-zero result: a low-order point
            raise CryptoError() from None
        return b"".join(encrypted)
