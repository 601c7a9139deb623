"""Everything of a session but the cryptography, in one process: reading, normalising,
hashing and de-duplicating each side's list, its sketch, and building the messages that go
to hash-to-curve (with the hash-to-curve replaced by a stub that returns zero bytes and
an identity cipher, so only the Python around them is timed), then truncating and reshuffling Z.

Run from the repository root: python -m benchmarks.prepare --n 1000000 [--attributes]
It writes the lists the way benchmarks/run.py does (to a temporary directory, removed at the
end) and prints the best of --repeat runs of each step: wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.run import ATTRIBUTES, write_lists
from cleanroom.brand.demo import contract_text
from cleanroom.crypto import batches
from cleanroom.crypto.batches import INLINE
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import ELEMENT_SIZE
from cleanroom.lists import elements
from cleanroom.lists import local as lists
from cleanroom.privacy.calibration import parse_contract
from cleanroom.protocol.common import TRUNCATED_SIZE, shuffled_packed, truncate


def stub_hash_to_curve(prefix: bytes, digests: bytes, dst: bytes) -> bytes:
    return bytes(len(digests))  # one 32-byte zero "point" per 32-byte digest


class Unencrypted(CommutativeCipher):
    """Leaves the points as they are: only the steps around the cryptography are timed."""

    def encrypt(self, packed: bytes) -> bytes:
        return packed


def best_of(repeat: int, step: Callable[[], Any]) -> tuple[float, float]:
    """The best wall and CPU seconds (all of this process's threads) of *repeat* runs: on a
    shared machine the CPU time is the steadier figure."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        step()
        wall = min(wall, time.perf_counter() - began)
        cpu = min(cpu, time.process_time() - began_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="records per side")
    parser.add_argument("--attributes", action="store_true", help="20 attributes at 20%%")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="cleanroom-prepare-"))
    try:
        write_lists(directory, args.n, "fast")
        attributes = ATTRIBUTES if args.attributes else ()
        contract = parse_contract(
            contract_text(
                "a" * 64, "b" * 64, segments=("all",), attributes=attributes, keys=("email",)
            ).encode()
        )
        audience = directory / ("audience-attrs.csv" if args.attributes else "audience.csv")
        crm = directory / "crm.csv"
        for module in (batches, elements):  # time only the steps around hash to curve
            vars(module)["hash_to_curve_prefixed"] = stub_hash_to_curve
        cipher = Unencrypted(bytes(32))
        partner = lists.prepare_partner_list(audience, {}, contract)
        brand = lists.prepare_brand_list(crm, {"email": "email"}, contract)
        packed = secrets.token_bytes(ELEMENT_SIZE * args.n)
        z = truncate(packed)
        steps: dict[str, Callable[[], Any]] = {
            "partner: read, normalise, SHA-256, de-duplicate": lambda: lists.prepare_partner_list(
                audience, {}, contract
            ),
            "brand: read, normalise, SHA-256, de-duplicate": lambda: lists.prepare_brand_list(
                crm, {"email": "email"}, contract
            ),
            "sketch (one side)": lambda: brand.sketch(os.urandom(32)),
            "brand: shuffle groups, gather E's digests": lambda: list(
                brand.encrypt(cipher, INLINE)
            ),
            "partner: shuffle records, gather W's digests": lambda: list(
                partner.encrypt(cipher, INLINE).chunks
            ),
            "partner: truncate Z": lambda: truncate(packed),
            "partner: reshuffle Z": lambda: shuffled_packed(z, TRUNCATED_SIZE),
        }
        print(f"n = {args.n:,} per side, best of {args.repeat}: wall s, CPU s")
        for name, step in steps.items():
            wall, cpu = best_of(args.repeat, step)
            print(f"  {name:48s} {wall:7.3f} {cpu:7.3f}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
