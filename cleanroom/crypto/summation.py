"""Sums of exponential ElGamal ciphertexts: Enc(x) + Enc(y) = Enc(x + y).

The partner adds up, per attribute, the indicator ciphertexts of the records that have
it. Every point added is decoded, so a point off the curve raises the one `CryptoError`;
torsion is cleared once per sum (:func:`cleanroom.crypto.validation.clear_torsion`).
"""

from __future__ import annotations

import numpy as np

from cleanroom import _native
from cleanroom.crypto.constants import CIPHERTEXT_SIZE
from cleanroom.crypto.validation import received_bytes
from cleanroom.errors import CryptoError


def add(a: bytes, b: bytes) -> bytes:
    """Enc(x) + Enc(y) = Enc(x + y), component-wise point addition."""
    return _native.elgamal_add(
        received_bytes(a, CIPHERTEXT_SIZE), received_bytes(b, CIPHERTEXT_SIZE)
    )


def sum_by_mask(packed: bytes, masks: np.ndarray) -> list[bytes]:
    """For each row j of masks (shape (k, n)), the sum of the ciphertexts where it is True.

    An all-False row gives the trivial encryption of 0 (two identity points), which
    the caller must re-randomise before sending it. The records are bucketed by their
    pattern over groups of masks where that saves additions (docs/design-decisions.md).
    """
    packed = received_bytes(packed)
    if len(packed) % CIPHERTEXT_SIZE:
        raise CryptoError()
    n = len(packed) // CIPHERTEXT_SIZE
    arr = np.asarray(masks)
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(f"masks must have shape (k, {n}), got {arr.shape}")
    if arr.dtype != np.bool_:
        raise ValueError(f"masks must be a boolean array, got dtype {arr.dtype}")
    k = arr.shape[0]
    rows = np.ascontiguousarray(arr).view(np.uint8).tobytes()
    sums = _native.elgamal_sum_by_mask(packed, rows, k)
    return [sums[CIPHERTEXT_SIZE * j : CIPHERTEXT_SIZE * (j + 1)] for j in range(k)]
