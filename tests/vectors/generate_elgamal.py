"""Generate tests/vectors/elgamal_kat.json: known answers for cleanroom.crypto.elgamal.

Deterministic (every scalar is derived from SHA-512 of a fixed label) and independent of
the code under test: points are computed with the pure-Python Ed25519 reference
arithmetic of RFC 8032, section 6, not with libsodium and not with cleanroom.

    python tests/vectors/generate_elgamal.py          # rewrite the file
    python tests/vectors/generate_elgamal.py --check  # exit 1 if the file is stale
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("elgamal_kat.json")

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
IDENTITY: Point = (0, 1, 1, 0)


def point_add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_neg(p: Point) -> Point:
    return (-p[0] % P, p[1], p[2], -p[3] % P)


def point_mul(s: int, p: Point) -> Point:
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = point_add(q, p)
        p = point_add(p, p)
        s >>= 1
    return q


def recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def compress(p: Point) -> bytes:
    zinv = pow(p[2], -1, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decompress(s: bytes) -> Point | None:
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


GY = 4 * pow(5, -1, P) % P
GX = recover_x(GY, 0)
assert GX is not None
G: Point = (GX, GY, 1, GX * GY % P)


def scalar(label: str) -> int:
    return int.from_bytes(hashlib.sha512(label.encode()).digest(), "little") % L


def scalar_hex(s: int) -> str:
    return s.to_bytes(32, "little").hex()


def mul_base(m: int) -> Point:
    return point_mul(m % L, G)


def encrypt(pk: Point, value: int, r: int) -> bytes:
    return compress(mul_base(r)) + compress(point_add(mul_base(value), point_mul(r, pk)))


def add_ct(a: bytes, b: bytes) -> bytes:
    pa1, pa2 = decompress(a[:32]), decompress(a[32:])
    pb1, pb2 = decompress(b[:32]), decompress(b[32:])
    assert pa1 and pa2 and pb1 and pb2
    return compress(point_add(pa1, pb1)) + compress(point_add(pa2, pb2))


def torsion_points() -> list[bytes]:
    """The 8 points of the torsion subgroup E[8], as T8 * k for k in 0..7."""
    y = 2
    while True:
        pt = decompress(y.to_bytes(32, "little"))
        if pt is not None:
            t = point_mul(L, pt)  # kills the prime-order component
            if not equal(point_mul(4, t), IDENTITY):  # order exactly 8
                break
        y += 1
    points = []
    acc = IDENTITY
    for _ in range(8):
        points.append(compress(acc))
        acc = point_add(acc, t)
    assert equal(acc, IDENTITY)
    assert len(set(points)) == 8
    return points


def build() -> dict[str, object]:
    sk = scalar("cleanroom/elgamal/kat/secret-key")
    pk = mul_base(sk)
    encryptions = []
    for i, value in enumerate([0, 1, 2, -1, 7, -12345, 1_000_000, -(10**8)]):
        r = scalar(f"cleanroom/elgamal/kat/randomness/{i}")
        ct = encrypt(pk, value, r)
        encryptions.append({"value": value, "randomness": scalar_hex(r), "ciphertext": ct.hex()})
    rerandomizations = []
    for i, e in enumerate(encryptions[:3]):
        s = scalar(f"cleanroom/elgamal/kat/rerandomize/{i}")
        ct = bytes.fromhex(str(e["ciphertext"]))
        result = add_ct(ct, encrypt(pk, 0, s))
        rerandomizations.append(
            {
                "ciphertext": ct.hex(),
                "randomness": scalar_hex(s),
                "result": result.hex(),
                "value": e["value"],
            }
        )
    additions = []
    for a, b in [(0, 1), (1, 3), (3, 5), (5, 4)]:
        ea, eb = encryptions[a], encryptions[b]
        additions.append(
            {
                "a": ea["ciphertext"],
                "b": eb["ciphertext"],
                "sum": add_ct(
                    bytes.fromhex(str(ea["ciphertext"])), bytes.fromhex(str(eb["ciphertext"]))
                ).hex(),
                "value": int(str(ea["value"])) + int(str(eb["value"])),
            }
        )

    torsion = torsion_points()
    # libsodium's blocklist names the y-coordinates of the order-8 points; check ours.
    order8_y = {
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    }
    clear_sign = [t[:31] + bytes([t[31] & 0x7F]) for t in torsion]
    assert order8_y <= {c.hex() for c in clear_sign}

    invalid = [{"name": f"torsion-{k}", "point": t.hex()} for k, t in enumerate(torsion)]
    base7 = mul_base(7)
    for k in range(1, 8):
        mixed = point_add(base7, decompress(torsion[k]) or IDENTITY)
        invalid.append({"name": f"7B+torsion-{k}", "point": compress(mixed).hex()})
    mixed_pk = point_add(pk, decompress(torsion[1]) or IDENTITY)
    invalid.append({"name": "pk+torsion-1", "point": compress(mixed_pk).hex()})
    # Non-canonical: y >= p where y - p is the y of a curve point (identity, order 4).
    for y_small in range(19):
        for sign in (0, 1):
            if recover_x(y_small, sign) is not None:
                enc = ((P + y_small) | (sign << 255)).to_bytes(32, "little")
                invalid.append(
                    {"name": f"non-canonical-y=p+{y_small}-sign{sign}", "point": enc.hex()}
                )
    # Identity with the sign bit set (x = 0 cannot be negative).
    invalid.append({"name": "identity-sign1", "point": (1 | 1 << 255).to_bytes(32, "little").hex()})
    # Off the curve: y with no x.
    found = 0
    y = 2
    while found < 3:
        if recover_x(y, 0) is None and recover_x(y, 1) is None:
            invalid.append({"name": f"off-curve-y={y}", "point": y.to_bytes(32, "little").hex()})
            found += 1
        y += 1
    # y = 2^255 - 1 = p + 18, the largest non-canonical value.
    invalid.append({"name": "non-canonical-max", "point": ("ff" * 31) + "7f"})

    valid_points = [compress(mul_base(m)).hex() for m in (1, 2, 3, L - 1)]

    return {
        "_comment": (
            "generated by tests/vectors/generate_elgamal.py (RFC 8032 reference arithmetic, "
            "no libsodium); do not edit by hand"
        ),
        "secret_scalar": scalar_hex(sk),
        "public_key": compress(pk).hex(),
        "encryptions": encryptions,
        "rerandomizations": rerandomizations,
        "additions": additions,
        "valid_points": valid_points,
        "invalid_points": invalid,
    }


def main() -> int:
    text = json.dumps(build(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
