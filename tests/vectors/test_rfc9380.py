"""RFC 9380 vectors: expand_message_xmd (Appendix K.3), the two 25519 RO suites (J.4.1, J.5.1).

The suites are checked on the native core (cleanroom.crypto.hash_to_curve); the internal
steps (expand_message_xmd, map_to_curve) on the pure-Python oracle, tests/reference/, which
tests/property/test_native_oracles.py compares with the native core on random inputs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from reference.hash_to_curve import P, _map_to_edwards, expand_message_xmd

from cleanroom.crypto.hash_to_curve import (
    hash_to_curve,
    hash_to_curve_batch,
    hash_to_curve_edwards25519,
)

HERE = Path(__file__).parent
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def even_sqrt(a: int) -> int:
    root = pow(a, (P + 3) // 8, P)
    if root * root % P != a % P:
        root = root * SQRT_M1 % P
    assert root * root % P == a % P
    return P - root if root & 1 else root


C1 = even_sqrt(-486664)  # RFC 9380 Appendix D.1: c1 = sqrt(-486664) with sgn0(c1) = 0


def load(name: str) -> dict[str, Any]:
    return json.loads((HERE / name).read_text())


XMD = load("rfc9380_expand_message_xmd_sha512.json")
CURVE = load("rfc9380_curve25519_ro.json")
EDWARDS = load("rfc9380_edwards25519_ro.json")


def fe(hex_value: str) -> int:
    return int(hex_value, 16)


def decode_edwards(encoded: bytes) -> tuple[int, int]:
    """Decompress an edwards25519 point the slow way (RFC 8032 section 5.1.3)."""
    value = int.from_bytes(encoded, "little")
    y = value & ((1 << 255) - 1)
    assert y < P
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = even_sqrt(x2)
    return (P - x if value >> 255 else x), y


def test_vector_files_name_their_source() -> None:
    assert XMD["source"] == "RFC 9380 Appendix K.3 (expand_message_xmd(SHA-512))"
    assert CURVE["source"] == "RFC 9380 Appendix J.4.1"
    assert EDWARDS["source"] == "RFC 9380 Appendix J.5.1"
    assert len(XMD["vectors"]) == 10
    assert [len(v["msg"]) for v in CURVE["vectors"]] == [0, 3, 16, 133, 517]
    assert [v["msg"] for v in EDWARDS["vectors"]] == [v["msg"] for v in CURVE["vectors"]]


@pytest.mark.parametrize(
    "vector", XMD["vectors"], ids=lambda v: f"{v['msg'][:8]}-{v['len_in_bytes']}"
)
def test_expand_message_xmd_sha512(vector: dict[str, Any]) -> None:
    out = expand_message_xmd(vector["msg"].encode(), XMD["dst"].encode(), vector["len_in_bytes"])
    assert out.hex() == vector["uniform_bytes"]


@pytest.mark.parametrize("suite", [CURVE, EDWARDS], ids=["curve25519", "edwards25519"])
def test_hash_to_field(suite: dict[str, Any]) -> None:
    for vector in suite["vectors"]:
        uniform = expand_message_xmd(vector["msg"].encode(), suite["dst"].encode(), 96)
        assert int.from_bytes(uniform[:48], "big") % P == fe(vector["u[0]"])
        assert int.from_bytes(uniform[48:], "big") % P == fe(vector["u[1]"])


def edwards_to_montgomery(x: int, y: int) -> tuple[int, int]:
    """RFC 9380 Appendix D.1's rational map from edwards25519 to curve25519."""
    u = (1 + y) * pow(1 - y, -1, P) % P
    return u, C1 * u * pow(x, -1, P) % P


@pytest.mark.parametrize("vector", CURVE["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_curve25519_ro(vector: dict[str, Any]) -> None:
    """P = (P.x, P.y) exactly.

    ``hash_to_curve`` returns only u (P.x): X25519 takes nothing else, and the batch path
    clears the cofactor with x-only doublings, so v is never computed there. The whole
    point, v included, comes from the implementation's other output form of the same map:
    ``hash_to_curve_edwards25519`` run with this suite's DST gives the Edwards point that
    Appendix D.1's rational map sends to P (the two suites differ only by that map), and
    its u must be the bytes ``hash_to_curve`` returns.
    """
    msg, dst = vector["msg"].encode(), CURVE["dst"].encode()
    u_bytes = hash_to_curve(msg, dst)
    u, v = edwards_to_montgomery(*decode_edwards(hash_to_curve_edwards25519(msg, dst)))
    assert (u, v) == (fe(vector["P.x"]), fe(vector["P.y"]))
    assert u_bytes == u.to_bytes(32, "little")
    # P is on Curve25519: v^2 = u^3 + A u^2 + u
    assert v * v % P == (u**3 + 486662 * u * u + u) % P


def test_curve25519_ro_batch_packs_in_order() -> None:
    messages = [v["msg"].encode() for v in CURVE["vectors"]]
    expected = b"".join(fe(v["P.x"]).to_bytes(32, "little") for v in CURVE["vectors"])
    assert hash_to_curve_batch(messages, CURVE["dst"].encode()) == expected
    assert hash_to_curve_batch([], CURVE["dst"].encode()) == b""


@pytest.mark.parametrize("vector", EDWARDS["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_edwards25519_ro(vector: dict[str, Any]) -> None:
    point = hash_to_curve_edwards25519(vector["msg"].encode(), EDWARDS["dst"].encode())
    assert decode_edwards(point) == (fe(vector["P.x"]), fe(vector["P.y"]))


@pytest.mark.parametrize("vector", EDWARDS["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_edwards25519_map_to_curve(vector: dict[str, Any]) -> None:
    """Q0 and Q1 before cofactor clearing: pins the sign rule that libsodium's from_hash misses."""
    q0, q1 = _map_to_edwards([fe(vector["u[0]"]), fe(vector["u[1]"])])
    assert q0 == (fe(vector["Q0.x"]), fe(vector["Q0.y"]))
    assert q1 == (fe(vector["Q1.x"]), fe(vector["Q1.y"]))


@pytest.mark.parametrize("vector", CURVE["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_curve25519_map_to_curve(vector: dict[str, Any]) -> None:
    """Q0 and Q1 as Montgomery (u, v), through the RFC's birational map from Edwards (x, y)."""
    for (x, y), name in zip(
        _map_to_edwards([fe(vector["u[0]"]), fe(vector["u[1]"])]), ["Q0", "Q1"], strict=True
    ):
        assert edwards_to_montgomery(x, y) == (fe(vector[f"{name}.x"]), fe(vector[f"{name}.y"]))


def test_both_suites_share_the_map() -> None:
    """The curve25519 output is the birational image of the edwards25519 output (same DST)."""
    dst = b"cleanroom-test-v1"
    messages = [secrets.token_bytes(n) for n in (0, 1, 17, 64, 200)]
    packed = hash_to_curve_batch(messages, dst)
    for i, msg in enumerate(messages):
        _, y = decode_edwards(hash_to_curve_edwards25519(msg, dst))
        u = (1 + y) * pow(1 - y, -1, P) % P
        assert packed[32 * i : 32 * i + 32] == u.to_bytes(32, "little")


def test_oversized_dst_is_hashed_first() -> None:
    """RFC 9380 section 5.3.3: a DST over 255 bytes is replaced by H("H2C-OVERSIZE-DST-" || DST)."""
    long_dst = b"x" * 256
    short_dst = hashlib.sha512(b"H2C-OVERSIZE-DST-" + long_dst).digest()
    assert expand_message_xmd(b"abc", long_dst, 96) == expand_message_xmd(b"abc", short_dst, 96)
    assert hash_to_curve(b"abc", long_dst) == hash_to_curve(b"abc", short_dst)
    assert hash_to_curve(b"abc", long_dst) != hash_to_curve(b"abc", long_dst[:255])


@pytest.mark.parametrize("length", [0, 255 * 64 + 1, 65536])
def test_expand_message_xmd_rejects_lengths(length: int) -> None:
    with pytest.raises(ValueError):
        expand_message_xmd(b"abc", b"dst", length)


def test_empty_dst_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty domain separation tag"):
        hash_to_curve(b"abc", b"")
    with pytest.raises(ValueError, match="non-empty domain separation tag"):
        hash_to_curve_edwards25519(b"abc", b"")
