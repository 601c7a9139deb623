"""Validation of received group elements: encodings and torsion (edwards25519).

`check_encodings` is the cheap half of validation for ciphertexts the partner only adds
up: every point canonically encoded. Curve membership is checked where a point is decoded
to be added (:mod:`cleanroom.crypto.summation`), and whatever torsion a sum carries is
removed by :func:`clear_torsion` before anything derived from it is sent
(docs/protocol.md). Every failure raises the one opaque `CryptoError`.
"""

from __future__ import annotations

from cleanroom import _native
from cleanroom.crypto.constants import CIPHERTEXT_SIZE
from cleanroom.errors import CryptoError


def received_bytes(data: object, size: int | None = None) -> bytes:
    """Received data as bytes of ``size`` (any length if None); anything else, a wrong type
    or a wrong length, is a CryptoError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CryptoError()
    encoded = bytes(data)
    if size is not None and len(encoded) != size:
        raise CryptoError()
    return encoded


def check_public_key(encoded: bytes) -> None:
    """A canonical encoding of a point of the prime-order subgroup other than the identity."""
    _native.elgamal_check_public_key(encoded)


def check_encodings(packed: bytes) -> None:
    """Whole ciphertexts, every point canonically encoded (y < p, no sign bit on x = 0)."""
    _native.elgamal_check_encodings(received_bytes(packed))


def clear_torsion(ciphertext: bytes) -> bytes:
    """Both points mapped onto the prime-order subgroup without changing the plaintext.

    Each point Q = P + T (P of prime order l, T of order dividing 8) becomes
    [8^-1 mod l]([8]Q) = P: the three doublings kill T, the multiplication undoes the factor
    8 on P. A sum the partner computed over ciphertexts a brand may have salted with small-
    order components therefore decrypts as if they were absent, and carries no trace of which
    records it included. A point not on the curve raises CryptoError.
    """
    return _native.elgamal_clear_torsion(received_bytes(ciphertext, CIPHERTEXT_SIZE))
