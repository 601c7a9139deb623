"""Decryption's last step: the discrete logarithm m of m*B for |m| <= bound, by baby-step
giant-step (native/src/elgamal/bsgs.rs).

The baby steps are a table kept per process for the largest bound asked so far, so the
many decryptions of one report share it; a value outside the bound is a CryptoError, never
a wrong number.
"""

from __future__ import annotations

import operator

from cleanroom import _native

#: The largest bound accepted: far beyond any count (2^40: at most 2^19 giant steps each way).
MAX_BOUND = 2**40


def decrypt(secret: bytes, ciphertext: bytes, bound: int) -> int:
    """m with C2 - sk*C1 = m*B and |m| <= bound, for the 32-byte scalar ``secret``."""
    bound = operator.index(bound)
    if not 0 <= bound <= MAX_BOUND:
        raise ValueError(f"bound must be in [0, 2**40], got {bound}")
    return _native.elgamal_decrypt(secret, ciphertext, bound)
