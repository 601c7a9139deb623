"""The native core (``cleanroom._native``, built from native/ by ``pip install``): how its
X25519 path is chosen and what it reports.

Imported for its side effect once per process: Intel crypto_mb is looked for in the
environment's ``lib`` directory, where the ``ipp-crypto`` and ``intel-cmplr-lib-rt`` wheels
install it. Where it is missing, or the CPU lacks AVX-512 IFMA, X25519 runs on the portable
path at the portable speed; ``CLEANROOM_X25519=portable`` forces that path.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cleanroom import _native

X25519_PATH, X25519_REASON = _native.load_crypto_mb(str(Path(sys.prefix) / "lib"))


def packed_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` as immutable bytes: the native core reads it with the GIL released, so a
    buffer another thread could write to is copied first."""
    return data if type(data) is bytes else bytes(data)


def describe(workers: int | None = None) -> dict[str, object]:
    """What ``cleanroom doctor`` prints: version, X25519 path and why, curve25519-dalek's
    backend (received elements, hash to curve, ElGamal), and the threads a session would
    use with ``--workers`` (None: every core)."""
    path, reason = _native.x25519_path()
    if path == "portable":
        reason = f"curve25519-dalek; Intel crypto_mb not used: {reason}"
    else:
        reason = (
            f"{reason}, for this party's own hashed points; elements received from the "
            "peer always use curve25519-dalek"
        )
    return {
        "native_core": _native.__version__,
        "x25519_path": path,
        "x25519_reason": reason,
        "dalek_backend": _native.dalek_backend(),
        "threads": workers or _native.thread_count(),
    }
