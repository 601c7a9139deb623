"""RFC 7748 section 5.2 X25519 vectors, run through CommutativeCipher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.errors import CryptoError

VECTORS = json.loads((Path(__file__).parent / "rfc7748_x25519.json").read_text())


def test_vector_file_names_its_source() -> None:
    assert VECTORS["source"] == "RFC 7748 Section 5.2"
    assert bytes.fromhex(VECTORS["vectors"][1]["u"])[31] & 0x80, "vector 2 exercises the top bit"


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=["vector1", "vector2"])
def test_scalar_multiplication(vector: dict[str, Any]) -> None:
    cipher = CommutativeCipher._from_key(bytes.fromhex(vector["scalar"]))
    u = bytearray.fromhex(vector["u"])
    if u[31] & 0x80:
        # Vector 2's u has the top bit set, which RFC 7748 tells receivers to mask off.
        # Elements received here must be canonical, so it is refused as sent and
        # accepted once masked: the same point, the same result.
        with pytest.raises(CryptoError):
            cipher.encrypt(bytes(u))
        u[31] &= 0x7F
    assert cipher.encrypt(bytes(u)).hex() == vector["output"]


@pytest.mark.parametrize("iterations", [1, 1000])
def test_iterated(iterations: int) -> None:
    k = u = bytes.fromhex(VECTORS["iterated"]["start"])
    for _ in range(iterations):
        k, u = CommutativeCipher._from_key(k).encrypt(u), k
    assert k.hex() == VECTORS["iterated"]["after"][str(iterations)]
