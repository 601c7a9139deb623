"""Commutative encryption of hashed identifiers, E_k(P) = X25519(k, u(P)) (docs/protocol.md).

X25519 clamps every key to a multiple of 8 below 2^255, and multiplying by clamped
scalars commutes: E_a(E_b(P)) = E_b(E_a(P)). That is the whole PSI: each side raises the
other's already-encrypted points to its own key and equal identifiers meet.

Validation of received elements: canonical encoding (u < p, so the top bit is clear) and
not of low order. The clamped key is a multiple of the cofactor, so X25519 of a low-order
point is all zeros, which is refused; a point with a low-order component loses it, and a
point on the twist (order 4 times a large prime) cannot leak key bits either, so no further
on-curve check is needed.

The batch runs natively (``cleanroom._native``, native/src/x25519.rs) on every thread the
calling :class:`~cleanroom.crypto.batches.BatchRunner` allows. Elements received from the
peer always go through curve25519-dalek (:meth:`CommutativeCipher.encrypt`). Only
points this party derived itself, by hashing its own identifiers, may take Intel
crypto_mb's 8-lane X25519 where the CPU has AVX-512 IFMA
(:meth:`CommutativeCipher.encrypt_own`): crypto_mb returns wrong bytes for some valid
inputs a peer could craft, never for a hash-to-curve output in practice
(docs/design-decisions.md, "X25519: Intel crypto_mb only for a party's own points").
"""

from __future__ import annotations

import secrets

from cleanroom import _native
from cleanroom.crypto.native import packed_bytes


class CommutativeCipher:
    """One party's commutative cipher for one session; the key never leaves the object.

    Pickling carries the key, so that Spark can run ``encrypt`` in its executors
    (:mod:`cleanroom.lists.spark.kernels`). That is the only reason to pickle it: never persist
    or log a pickle.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        """Use ``generate()``; a given key is for test vectors and Spark executors only."""
        if len(key) != 32:
            raise ValueError("an X25519 key is 32 bytes")
        self._key = bytes(key)

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
        """E_k of each 32-byte element of ``packed`` received from the peer, packed in the
        same order, on curve25519-dalek whatever the CPU.

        Every element comes from the peer, so each is validated; any invalid one (or a
        length that is not a multiple of 32) aborts with the same opaque CryptoError,
        whichever check failed.
        """
        return _native.x25519_batch(self._key, packed_bytes(packed), portable=True)

    def encrypt_own(self, points: bytes) -> bytes:
        """E_k of points this party hashed to the curve from its own identifiers: the fast
        path (Intel crypto_mb where the CPU has it), with the same validation and bytes."""
        return _native.x25519_batch(self._key, packed_bytes(points))


def x25519_fresh_keys(keys: bytes, point: bytes) -> bytes:
    """X25519(t, point) for each 32-byte key t of ``keys``, packed in key order: fresh
    one-use keys on one point (the partner's dummy matches, docs/protocol.md), on
    curve25519-dalek. ``point`` is validated like a received element, and so is each result."""
    return _native.x25519_keys(packed_bytes(keys), packed_bytes(point))
