"""Per-element cost of the PSI primitives: hash to curve and X25519, native and former Python.

Run from the repository root: python -m benchmarks.primitives. Prints the best of a few
runs in microseconds per element (wall time), on one thread and on every core: the native
core (cleanroom._native) with Intel crypto_mb's multi-buffer X25519 and with the portable
curve25519-dalek path, against the former pure-Python hash to curve (tests/reference/) and
pyca's X25519 called once per element.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cleanroom import _native
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch
from cleanroom.native import X25519_PATH

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import hash_to_curve as python_h2c

BATCH = 16384
REPEATS = 5
DST = b"cleanroom-benchmark"


def per_element_us(run: Callable[[], object], count: int, threads: int = 1) -> float:
    previous = _native.bind_threads(threads)
    try:
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    finally:
        _native.bind_threads(previous)
    return best / count * 1e6


def main() -> None:
    cores = os.cpu_count() or 1
    identifiers = [f"user{secrets.randbelow(10**9)}@example.com".encode() for _ in range(BATCH)]
    points = hash_to_curve_batch(identifiers, DST)
    cipher = CommutativeCipher.generate()
    key = secrets.token_bytes(32)
    private_key = X25519PrivateKey.generate()
    peers = [X25519PrivateKey.generate().public_key() for _ in range(BATCH // 4)]

    def exchange_all() -> None:
        for peer in peers:
            private_key.exchange(peer)

    def h2c() -> bytes:
        return hash_to_curve_batch(identifiers, DST)

    def mb8() -> bytes:
        return _native.x25519_batch(key, points)

    def portable() -> bytes:
        return _native.x25519_batch(key, points, portable=True)

    rows = [
        ("hash to curve, native", per_element_us(h2c, BATCH), per_element_us(h2c, BATCH, cores)),
        (
            "hash to curve, former Python",
            per_element_us(lambda: python_h2c.hash_to_curve_batch(identifiers[:2048], DST), 2048),
            None,
        ),
        (
            f"X25519 batch, active path ({X25519_PATH})",
            per_element_us(lambda: cipher.encrypt(points), BATCH),
            per_element_us(lambda: cipher.encrypt(points), BATCH, cores),
        ),
        (
            "X25519 batch, crypto_mb mb8",
            per_element_us(mb8, BATCH),
            per_element_us(mb8, BATCH, cores),
        )
        if X25519_PATH == "crypto_mb"
        else ("X25519 batch, crypto_mb mb8 (not active here)", float("nan"), None),
        (
            "X25519 batch, portable (dalek)",
            per_element_us(portable, BATCH),
            per_element_us(portable, BATCH, cores),
        ),
        ("X25519, pyca, one call per element", per_element_us(exchange_all, len(peers)), None),
    ]
    print(f"batch of {BATCH}, best of {REPEATS} runs, us per element (wall)")
    print(f"{'':44s} {'1 thread':>10s} {f'{cores} threads':>10s}")
    for name, one, many in rows:
        print(f"{name:44s} {one:10.2f} {'' if many is None else f'{many:10.2f}':>10s}")


if __name__ == "__main__":
    main()
