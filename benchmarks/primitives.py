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
from cleanroom.crypto.native import X25519_PATH

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
            f"X25519 batch, own points ({X25519_PATH})",
            per_element_us(lambda: cipher.encrypt_own(points), BATCH),
            per_element_us(lambda: cipher.encrypt_own(points), BATCH, cores),
        ),
        (
            "X25519 batch, received elements (dalek)",
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
    from functools import partial

    import numpy as np

    from cleanroom.crypto import elgamal, summation, validation

    if clear_table is None:
        from cleanroom import _native

        clear_table = _native.elgamal_clear_table
    rng = np.random.default_rng(1)
    key = elgamal.ElGamalPrivateKey.generate()
    public = key.public_key
    n = ELGAMAL_RECORDS
    packed = key.encrypt_indicators(rng.integers(0, 2, n))
    ct = public.encrypt(5)

    def decrypt_all(ciphertexts: list[bytes], bound: int) -> list[int]:
        return [key.decrypt(c, bound) for c in ciphertexts]

    rows = [
        (
            "encrypt_indicators",
            *cpu_and_wall(lambda: key.encrypt_indicators(np.ones(BATCH, bool)), BATCH),
        ),
        ("check_encodings", *cpu_and_wall(lambda: validation.check_encodings(packed), n)),
        ("add", *cpu_and_wall(lambda: [summation.add(ct, ct) for _ in range(200)], 200)),
        (
            "clear_torsion",
            *cpu_and_wall(lambda: [validation.clear_torsion(ct) for _ in range(200)], 200),
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
                *cpu_and_wall(partial(summation.sum_by_mask, packed, masks), n),
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
                *cpu_and_wall(partial(decrypt_all, cts, bound), len(cts)),
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
