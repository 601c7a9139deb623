"""Pure-Python exponential ElGamal on edwards25519: the test oracle for the native module.

Slow and simple on purpose: Python integers with the RFC 8032 (section 5.1) formulas,
double-and-add multiplication, a subgroup check by multiplying by l, a naive sum per mask
and a dictionary baby-step giant-step. It shares no code with curve25519-dalek or with
cleanroom, so an agreement on random inputs means something. Every refusal is `Invalid`.

    Enc(m; r) = (r*B, m*B + r*pk),  64 bytes: two compressed points (RFC 8032, 5.1.2)
"""

from __future__ import annotations

import math
from functools import lru_cache

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z
IDENTITY: Point = (0, 1, 1, 0)
IDENTITY_BYTES = b"\x01" + bytes(31)


class Invalid(Exception):
    """A wrong length, a non-canonical encoding, a point off the curve or of the wrong order."""


def point_add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def point_neg(p: Point) -> Point:
    return -p[0] % P, p[1], p[2], -p[3] % P


def point_mul(s: int, p: Point) -> Point:
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = point_add(q, p)
        p = point_add(p, p)
        s >>= 1
    return q


def point_equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def compress(p: Point) -> bytes:
    z_inv = pow(p[2], -1, P)
    x, y = p[0] * z_inv % P, p[1] * z_inv % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def decompress(data: bytes) -> Point:
    """RFC 8032 5.1.3, strictly: 32 bytes, y < p, x on the curve, no sign bit on x = 0."""
    if len(data) != 32:
        raise Invalid
    value = int.from_bytes(data, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= P:
        raise Invalid
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P:
        if (v * x * x + u) % P:
            raise Invalid
        x = x * SQRT_M1 % P
    if x == 0 and sign:
        raise Invalid
    if x & 1 != sign:
        x = P - x
    return x, y, 1, x * y % P


def decompress_prime_order(data: bytes) -> Point:
    """A point of the prime-order subgroup other than the identity: [l]P = O, P != O."""
    point = decompress(data)
    if point_equal(point, IDENTITY) or not point_equal(point_mul(L, point), IDENTITY):
        raise Invalid
    return point


BASE: Point = decompress((4 * pow(5, -1, P) % P).to_bytes(32, "little"))


def base_mult(scalar: int) -> Point:
    return point_mul(scalar % L, BASE)


def torsion_points() -> list[bytes]:
    """The eight points of order dividing 8, from [l]Q for a Q of order 8l."""
    y = 2
    while True:
        try:
            t = point_mul(L, decompress(y.to_bytes(32, "little")))
        except Invalid:
            y += 1
            continue
        if not point_equal(point_mul(4, t), IDENTITY):
            break
        y += 1
    points, acc = [], IDENTITY
    for _ in range(8):
        points.append(compress(acc))
        acc = point_add(acc, t)
    return points


# --------------------------------------------------------------------------- the scheme


def public_key(secret: int) -> bytes:
    return compress(base_mult(secret))


def encrypt(public: bytes, value: int, randomness: int) -> bytes:
    pk = decompress_prime_order(public)
    r = randomness % L
    return compress(base_mult(r)) + compress(point_add(base_mult(value), point_mul(r, pk)))


def encrypt_indicators(secret: int, bits: list[int], wide_randomness: bytes) -> bytes:
    """Enc(d; r) with r = 64 bytes of the pool, little-endian, reduced mod l, per element."""
    pk = public_key(secret)
    out = b""
    for i, bit in enumerate(bits):
        r = int.from_bytes(wide_randomness[64 * i : 64 * (i + 1)], "little") % L
        out += encrypt(pk, bit, r)
    return out


def _halves(ciphertext: bytes) -> tuple[Point, Point]:
    if len(ciphertext) != 64:
        raise Invalid
    return decompress(ciphertext[:32]), decompress(ciphertext[32:])


def add(a: bytes, b: bytes) -> bytes:
    a1, a2 = _halves(a)
    b1, b2 = _halves(b)
    return compress(point_add(a1, b1)) + compress(point_add(a2, b2))


def rerandomize(public: bytes, ciphertext: bytes, randomness: int) -> bytes:
    return add(ciphertext, encrypt(public, 0, randomness))


def check_encodings(packed: bytes) -> None:
    """Whole ciphertexts; every point y < p and no sign bit where x = 0 (y = 1 or p - 1)."""
    if len(packed) % 64:
        raise Invalid
    for i in range(0, len(packed), 32):
        value = int.from_bytes(packed[i : i + 32], "little")
        sign, y = value >> 255, value & ((1 << 255) - 1)
        if y >= P or (sign and y in (1, P - 1)):
            raise Invalid


def clear_torsion(ciphertext: bytes) -> bytes:
    """[8^-1 mod l]([8]Q) for both points Q."""
    inverse_of_eight = pow(8, -1, L)
    return b"".join(
        compress(point_mul(inverse_of_eight, point_mul(8, q))) for q in _halves(ciphertext)
    )


def sum_by_mask(packed: bytes, masks: list[list[bool]]) -> list[bytes]:
    """Per mask, the sum of the ciphertexts it selects, one addition at a time."""
    sums = []
    for row in masks:
        total = IDENTITY_BYTES * 2
        for i, selected in enumerate(row):
            if selected:
                total = add(total, packed[64 * i : 64 * (i + 1)])
        sums.append(total)
    return sums


@lru_cache(maxsize=4)
def _baby_steps(size: int) -> dict[bytes, int]:
    """compress(j*B) -> j for |j| <= size."""
    table, point = {}, IDENTITY
    for j in range(size + 1):
        table[compress(point)] = j
        table[compress(point_neg(point))] = -j
        point = point_add(point, BASE)
    return table


def decrypt(secret: int, ciphertext: bytes, bound: int) -> int:
    """m with |m| <= bound, or Invalid; both points of prime order and not the identity."""
    if len(ciphertext) != 64:
        raise Invalid
    c1, c2 = decompress_prime_order(ciphertext[:32]), decompress_prime_order(ciphertext[32:])
    message = point_add(c2, point_neg(point_mul(secret % L, c1)))
    size = math.isqrt(bound) + 1
    table = _baby_steps(size)
    stride = 2 * size + 1
    giant = base_mult(stride)
    down, up = message, message  # message - i*stride*B and message + i*stride*B
    for i in range(bound // stride + 2):
        for point, offset in ((down, i * stride), (up, -i * stride)):
            j = table.get(compress(point))
            if j is not None and abs(offset + j) <= bound:
                return offset + j
        down, up = point_add(down, point_neg(giant)), point_add(up, giant)
    raise Invalid
