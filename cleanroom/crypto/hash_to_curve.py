"""RFC 9380 hash_to_curve, suite curve25519_XMD:SHA-512_ELL2_RO_ (and its edwards25519 twin).

H(id) maps an identifier to a point of the prime-order subgroup of Curve25519, given as the
32-byte little-endian u-coordinate that X25519 takes (docs/protocol.md). The work is native
(native/src/h2c.rs): curve25519-dalek's RFC 9380 edwards25519 suite, mapped to the
Montgomery curve by RFC 7748's birational map, which is a group isomorphism, so it is the
curve25519 suite's point (checked against RFC 9380 Appendix J.4.1 and J.5.1). The former
pure-Python implementation is kept as the test oracle in tests/reference/hash_to_curve.py.

A DST over 255 bytes is hashed first (RFC 9380 section 5.3.3); an empty DST is a ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

from cleanroom import _native
from cleanroom.crypto.native import packed_bytes


def hash_to_curve_edwards25519(msg: bytes, dst: bytes) -> bytes:
    """Suite edwards25519_XMD:SHA-512_ELL2_RO_: the point in 32-byte compressed form."""
    return _native.hash_to_curve_edwards25519(packed_bytes(msg), packed_bytes(dst))


def hash_to_curve(msg: bytes, dst: bytes) -> bytes:
    """Suite curve25519_XMD:SHA-512_ELL2_RO_: the point's u-coordinate, 32 bytes little-endian."""
    return hash_to_curve_batch([msg], dst)


def hash_to_curve_batch(messages: Sequence[bytes], dst: bytes) -> bytes:
    """hash_to_curve of every message, packed as consecutive 32-byte u-coordinates."""
    return _native.hash_to_curve_batch(messages, packed_bytes(dst))


def hash_to_curve_prefixed(prefix: bytes, digests: bytes, dst: bytes) -> bytes:
    """hash_to_curve of ``prefix + digest`` for each 32-byte digest packed in ``digests``:
    the same points as :func:`hash_to_curve_batch` of the joined messages, without a Python
    ``bytes`` per message."""
    return _native.hash_to_curve_prefixed(
        packed_bytes(prefix), packed_bytes(digests), packed_bytes(dst)
    )
