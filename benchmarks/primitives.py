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


# -- ElGamal (cleanroom.crypto.elgamal) ----------------------------------------------------
# python -c "import benchmarks.primitives as b; b.elgamal_main()" runs this section alone.

ELGAMAL_RECORDS = 20_000
# (masks, share of records each selects): the partner's attribute sums per indicator chunk.
ELGAMAL_MASKS = [(1, 0.2), (3, 0.5), (8, 0.5), (20, 0.2)]


def cpu_and_wall(run: Callable[[], object], count: int) -> tuple[float, float]:
    """Best wall time and the CPU time of that run (every thread), in us per element."""
    best = (float("inf"), float("inf"))
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = min(best, (wall, cpu))
    return best[0] / count * 1e6, best[1] / count * 1e6


def elgamal_rows(clear_table: Callable[[], None] | None = None) -> list[tuple[str, float, float]]:
    import numpy as np

    from cleanroom.crypto import elgamal

    if clear_table is None:
        from cleanroom import _native

        clear_table = _native.elgamal_clear_table
    rng = np.random.default_rng(1)
    key = elgamal.ElGamalPrivateKey.generate()
    public = key.public_key
    n = ELGAMAL_RECORDS
    packed = key.encrypt_indicators(rng.integers(0, 2, n))
    ct = public.encrypt(5)
    rows = [
        (
            "encrypt_indicators",
            *cpu_and_wall(lambda: key.encrypt_indicators(np.ones(BATCH, bool)), BATCH),
        ),
        ("check_encodings", *cpu_and_wall(lambda: elgamal.check_encodings(packed), n)),
        ("add", *cpu_and_wall(lambda: [elgamal.add(ct, ct) for _ in range(200)], 200)),
        (
            "clear_torsion",
            *cpu_and_wall(lambda: [elgamal.clear_torsion(ct) for _ in range(200)], 200),
        ),
        (
            "encrypt (public key)",
            *cpu_and_wall(lambda: [public.encrypt(7) for _ in range(200)], 200),
        ),
        ("rerandomize", *cpu_and_wall(lambda: [public.rerandomize(ct) for _ in range(200)], 200)),
    ]
    for k, share in ELGAMAL_MASKS:
        masks = rng.random((k, n)) < share
        rows.append(
            (
                f"sum_by_mask k={k} {share:.0%} /record",
                *cpu_and_wall(lambda masks=masks: elgamal.sum_by_mask(packed, masks), n),
            )
        )
    for bound in (10**6, 10**8):
        values = rng.integers(-bound, bound + 1, 50).tolist()
        cts = [public.encrypt(v) for v in values]
        clear_table()
        start = time.perf_counter()
        key.decrypt(public.encrypt(1), bound)  # builds the table
        build = (time.perf_counter() - start) * 1e6
        rows.append((f"decrypt table build {bound:.0e}", build, float("nan")))
        rows.append(
            (
                f"decrypt |m| uniform <= {bound:.0e}",
                *cpu_and_wall(lambda cts=cts, b=bound: [key.decrypt(c, b) for c in cts], len(cts)),
            )
        )
    return rows


def elgamal_main(clear_table: Callable[[], None] | None = None) -> None:
    print(f"ElGamal: {ELGAMAL_RECORDS} records, best of {REPEATS} runs; wall and CPU (all threads)")
    for name, wall, cpu in elgamal_rows(clear_table):
        print(f"{name:34s} {wall:10.1f} us wall {cpu:10.1f} us CPU")


if __name__ == "__main__":
    main()
    elgamal_main()
