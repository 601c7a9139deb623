"""RFC 9380 hash_to_curve, suite curve25519_XMD:SHA-512_ELL2_RO_ (and its edwards25519 twin).

H(id) maps an identifier to a point of the prime-order subgroup of Curve25519, given as
the 32-byte little-endian u-coordinate that X25519 takes (DESIGN §4). The curve25519
suite's point is the image of the edwards25519 suite's point under the RFC's birational
map, so both suites share one Elligator 2 map here and differ only in the output form.

Why it is built this way. Elligator 2 needs a square root per field element, two per
message, and one square root in Python (``pow`` with a 252-bit exponent) costs about
250 us. libsodium, bundled with PyNaCl, does the arithmetic in C, but PyNaCl 1.6.2's
copy predates RFC 9380: its exported ``crypto_core_ed25519_from_hash`` does Elligator 2
and clears the cofactor, yet picks the sign of x by its own rule instead of the RFC's
sgn0 rule, so roughly half of its points are the negatives of the RFC's Q0 and Q1 and
their sum is then a different point (checked against Appendix J.5.1). So libsodium is
used only for the square roots. ``crypto_core_ed25519_add`` decompresses its inputs,
which computes x = sqrt((y^2 - 1) / (d*y^2 + 1)) and fails when there is none; adding
the point of order 4, T = (sqrt(-1), 0), returns P + T = (sqrt(-1)*y, sqrt(-1)*x), whose
encoded y-coordinate hands x back. That is two such calls per message (three on average,
counting candidates that are not on the curve), against two from_hash calls and an
addition for the libsodium-only route. The rest is a few dozen multiplications in
Python per message, over the whole batch at once: Montgomery's trick turns the
inversions of each step into one, the RFC's sign rule becomes a parity check, and the
cofactor is cleared with three x-only doublings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import nacl.bindings

try:
    from nacl._sodium import ffi, lib  # type: ignore[import-not-found]  # cffi module, no stubs

    _crypto_core_ed25519_add = lib.crypto_core_ed25519_add
except (ImportError, AttributeError) as exc:
    raise ImportError(
        "cleanroom.crypto.hash_to_curve needs libsodium's crypto_core_ed25519_add "
        "through PyNaCl's bundled library (nacl._sodium.lib); install PyNaCl >= 1.5"
    ) from exc

P = 2**255 - 19
_A = 486662  # Curve25519: v^2 = u^3 + A*u^2 + u
_D = -121665 * pow(121666, -1, P) % P  # edwards25519: -x^2 + y^2 = 1 + d*x^2*y^2
_A24 = 121665  # (A - 2) / 4, RFC 7748 section 5
_Y_MASK = (1 << 255) - 1
_SQRT_M1 = pow(2, (P - 1) // 4, P)


def _even_sqrt(a: int) -> int:
    """The square root with sgn0 = 0 (p = 5 mod 8, RFC 9380 Appendix I.2); constants only."""
    root = pow(a, (P + 3) // 8, P)
    if root * root % P != a % P:
        root = root * _SQRT_M1 % P
    assert root * root % P == a % P
    return P - root if root & 1 else root


_C1 = _even_sqrt(-486664)  # RFC 9380 Appendix D.1: x = c1 * u / v, sgn0(c1) = 0
_X_T = _even_sqrt(-1)
_T = bytes(32)  # encodes T = (_X_T, 0): y = 0, sign of x even
_INV_X_T = P - _X_T  # 1 / sqrt(-1) = -sqrt(-1)


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-512."""
    return _xmd_expander(dst, len_in_bytes)(msg)


def hash_to_curve_edwards25519(msg: bytes, dst: bytes) -> bytes:
    """Suite edwards25519_XMD:SHA-512_ELL2_RO_: the point in 32-byte compressed form."""
    (x0, y0), (x1, y1) = _map_to_edwards(_hash_to_field([msg], dst))
    point = nacl.bindings.crypto_core_ed25519_add(_encode(x0, y0), _encode(x1, y1))
    for _ in range(3):  # clear_cofactor: multiply by h = 8
        point = nacl.bindings.crypto_core_ed25519_add(point, point)
    return point


def hash_to_curve(msg: bytes, dst: bytes) -> bytes:
    """Suite curve25519_XMD:SHA-512_ELL2_RO_: the point's u-coordinate, 32 bytes little-endian."""
    return hash_to_curve_batch([msg], dst)


def hash_to_curve_batch(messages: Sequence[bytes], dst: bytes) -> bytes:
    """hash_to_curve of every message, packed as consecutive 32-byte u-coordinates."""
    points = _map_to_edwards(_hash_to_field(messages, dst))
    numerators = []
    denominators = []
    for (x0, y0), (x1, y1) in zip(points[0::2], points[1::2], strict=True):
        # Q0 + Q1 has Edwards y = (y0*y1 + x0*x1) / (1 - d*x0*x1*y0*y1); the birational
        # map u = (1 + y) / (1 - y) gives it projectively as u = U / W without inverting.
        xx = x0 * x1 % P
        yy = y0 * y1 % P
        e = 1 - _D * xx % P * yy
        u, w = (e + xx + yy) % P, (e - xx - yy) % P
        for _ in range(3):  # clear_cofactor by three x-only doublings (RFC 7748 ladder)
            aa = (u + w) * (u + w) % P
            bb = (u - w) * (u - w) % P
            diff = aa - bb
            u, w = aa * bb % P, diff * (aa + _A24 * diff) % P
        numerators.append(u)
        denominators.append(w)
    return b"".join(
        (n * inverse % P).to_bytes(32, "little")
        for n, inverse in zip(numerators, _batch_inv0(denominators), strict=True)
    )


def _xmd_expander(dst: bytes, len_in_bytes: int) -> Callable[[bytes], bytes]:
    """expand_message_xmd with the per-DST work (padding block, DST_prime) done once."""
    if not dst:
        raise ValueError("RFC 9380 requires a non-empty domain separation tag")
    if len(dst) > 255:
        dst = hashlib.sha512(b"H2C-OVERSIZE-DST-" + dst).digest()
    ell = -(-len_in_bytes // 64)
    if not 0 < len_in_bytes <= 65535 or ell > 255:
        raise ValueError("expand_message_xmd: len_in_bytes out of range")
    dst_prime = dst + bytes([len(dst)])
    after_msg = len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    z_pad = hashlib.sha512(bytes(128))  # Z_pad is SHA-512's 128-byte input block

    def expand(msg: bytes) -> bytes:
        state = z_pad.copy()
        state.update(msg)
        state.update(after_msg)
        b0 = state.digest()
        b0_int = int.from_bytes(b0, "big")
        block = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
        blocks = [block]
        for i in range(2, ell + 1):
            mixed = (b0_int ^ int.from_bytes(block, "big")).to_bytes(64, "big")
            block = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
            blocks.append(block)
        return b"".join(blocks)[:len_in_bytes]

    return expand


def _hash_to_field(messages: Sequence[bytes], dst: bytes) -> list[int]:
    """hash_to_field with count = 2 and L = 48: u0, u1 of each message, in order."""
    expand = _xmd_expander(dst, 96)
    elements = []
    for msg in messages:
        uniform = expand(msg)
        elements.append(int.from_bytes(uniform[:48], "big") % P)
        elements.append(int.from_bytes(uniform[48:], "big") % P)
    return elements


def _map_to_edwards(elements: list[int]) -> list[tuple[int, int]]:
    """map_to_curve_elligator2_edwards25519 (RFC 9380 section 6.8.2) of each u, as affine (x, y)."""
    # Elligator 2 (section 6.7.1, Z = 2), with t = 1 + 2*u^2: the Montgomery u-coordinate
    # is x1 = -A / t when x1^3 + A*x1^2 + x1 is a square, else x2 = -x1 - A = A*(1 - t) / t,
    # never both. Write it m / t; its Edwards y = (x - 1) / (x + 1) is (m - t) / (m + t).
    ts = [(1 + 2 * u * u) % P for u in elements]
    ms = [-_A % P] * len(ts)
    ys = _ratios([(-_A - t) % P for t in ts], [(t - _A) % P for t in ts])
    buffer = ffi.new("unsigned char[32]")
    found = [_edwards_x(y, buffer) for y in ys]
    on_first = [x is not None for x in found]
    second = [i for i, first in enumerate(on_first) if not first]
    for i in second:
        ms[i] = _A * (1 - ts[i]) % P
    second_ys = _ratios(
        [(ms[i] - ts[i]) % P for i in second], [(ms[i] + ts[i]) % P for i in second]
    )
    for i, y in zip(second, second_ys, strict=True):
        ys[i] = y
        found[i] = _edwards_x(y, buffer)
    xs = [x for x in found if x is not None]  # all found: one of the two candidates is on the curve
    # Sign rule: the Montgomery v = c1 * (m / t) / x has sgn0(v) = 1 exactly on the first
    # branch. libsodium returned one of the two roots x; the other is -x, which negates v.
    vs = _ratios([_C1 * m % P for m in ms], [t * x % P for t, x in zip(ts, xs, strict=True)])
    return [
        (P - x if v & 1 != first else x, y)
        for x, y, v, first in zip(xs, ys, vs, on_first, strict=True)
    ]


def _edwards_x(y: int, buffer: object) -> int | None:
    """One x with -x^2 + y^2 = 1 + d*x^2*y^2, or None if there is none; libsodium does the root."""
    if _crypto_core_ed25519_add(buffer, y.to_bytes(32, "little"), _T) != 0:
        return None
    return (int.from_bytes(ffi.buffer(buffer), "little") & _Y_MASK) * _INV_X_T % P


def _encode(x: int, y: int) -> bytes:
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _ratios(numerators: list[int], denominators: list[int]) -> list[int]:
    """n / d mod p for each pair, sharing one inversion."""
    inverses = _batch_inv0(denominators)
    return [n * i % P for n, i in zip(numerators, inverses, strict=True)]


def _batch_inv0(values: list[int]) -> list[int]:
    """All inverses mod p for one pow (Montgomery's trick); 0 maps to 0, like RFC 9380 inv0."""
    prefixes = []
    product = 1
    for value in values:
        prefixes.append(product)
        if value:
            product = product * value % P
    inverse = pow(product, -1, P)
    result = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        if values[i]:
            result[i] = inverse * prefixes[i] % P
            inverse = inverse * values[i] % P
    return result
