"""Per-element cost of the PSI primitives: hash_to_curve_batch, CommutativeCipher.encrypt, X25519.

Run from the repository root: python -m benchmarks.primitives. Prints the best of a
few runs in microseconds per element; the raw X25519 exchange (public keys loaded
beforehand) is the floor that encrypt cannot go below.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch

BATCH = 4096
REPEATS = 5
DST = b"cleanroom-benchmark"


def per_element_us(run: Callable[[], object], count: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    identifiers = [f"user{secrets.randbelow(10**9)}@example.com".encode() for _ in range(BATCH)]
    points = hash_to_curve_batch(identifiers, DST)
    cipher = CommutativeCipher.generate()
    private_key = X25519PrivateKey.generate()
    peers = [X25519PrivateKey.generate().public_key() for _ in range(BATCH)]

    def exchange_all() -> None:
        for peer in peers:
            private_key.exchange(peer)

    rows = [
        (
            "hash_to_curve_batch",
            per_element_us(lambda: hash_to_curve_batch(identifiers, DST), BATCH),
        ),
        ("CommutativeCipher.encrypt", per_element_us(lambda: cipher.encrypt(points), BATCH)),
        ("X25519 exchange (floor)", per_element_us(exchange_all, BATCH)),
    ]
    print(f"batch of {BATCH}, best of {REPEATS} runs")
    for name, us in rows:
        print(f"{name:28s} {us:8.1f} us/element")


if __name__ == "__main__":
    main()
