"""Test oracle: the former pure-Python RFC 9380 hash_to_curve, suite
curve25519_XMD:SHA-512_ELL2_RO_ (and its edwards25519 twin). cleanroom now runs the native
core (cleanroom/crypto/hash_to_curve.py); the tests compare the two on random inputs.

H(id) maps an identifier to a point of the prime-order subgroup of Curve25519, given as
the 32-byte little-endian u-coordinate that X25519 takes (docs/protocol.md). The curve25519
suite's point is the image of the edwards25519 suite's point under the RFC's birational
map, so both suites share one Elligator 2 map here and differ only in the output form.

Why it is built this way. Elligator 2 needs a square root per field element, two per
message, and one square root in Python (``pow`` with a 252-bit exponent) costs about
250 us, in gmpy2 (``powmod``) about 35 us. libsodium, bundled with PyNaCl, does the
arithmetic in C, but PyNaCl 1.6.2's copy predates RFC 9380: its exported
``crypto_core_ed25519_from_hash`` does Elligator 2 and clears the cofactor, yet picks the
sign of x by its own rule instead of the RFC's sgn0 rule, so roughly half of its points
are the negatives of the RFC's Q0 and Q1 and their sum is then a different point (checked
against Appendix J.5.1). So libsodium is used only for the square roots.
``crypto_core_ed25519_add`` decompresses its inputs, which computes
x = sqrt((y^2 - 1) / (d*y^2 + 1)); adding the point of order 4, T = (sqrt(-1), 0), returns
P + T = (sqrt(-1)*y, sqrt(-1)*x), whose encoded y-coordinate hands x back. That is two
such calls per message, each about 0.4 to 0.5 of an X25519 scalar multiplication, and
the floor of this design: a call reveals one field element, and the RFC's sign rule needs
each of the two roots on its own.

The rest is a few dozen multiplications per message over the whole batch at once, in
gmpy2 integers, whose multiply-and-reduce at 255 bits is about 1.5 times as fast as
Python's: a Jacobi symbol picks Elligator 2's branch before any square root is taken
(no call is spent on a candidate that is not on the curve), Montgomery's trick turns the
inversions of each step into one, the RFC's sign rule becomes a parity check, and the
cofactor is cleared with three x-only doublings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import gmpy2  # type: ignore[import-untyped]  # no stubs; mpz is typed as Any below
import nacl.bindings
from gmpy2 import mpz

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

# The batch path computes in mpz, with mpz constants: mixing in a Python int costs a
# conversion per operation.
_P = mpz(P)
_DZ = mpz(_D)
_Y_MASK_Z = mpz(_Y_MASK)
_A2 = mpz(_A * _A)
_M_FIRST = mpz(-_A % P)  # Elligator 2's first branch: x1 = m / t with m = -A
_C1_SQRT_M1 = mpz(_C1 * _X_T % P)
assert gmpy2.jacobi(-_A % P, P) == -1  # -A is not a square mod p (see _elligator2)


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
    rs, ys = _elligator2(_hash_to_field(messages, dst))
    p = _P
    numerators = []
    denominators = []
    for r0, r1, y0, y1 in zip(rs[0::2], rs[1::2], ys[0::2], ys[1::2], strict=True):
        # R = Q0 + Q1 (section 3, step 5) has Edwards y = (xx + yy) / (1 - d*xx*yy), with
        # xx = x0*x1 = -r0*r1 and yy = y0*y1. The birational map u = (1 + y) / (1 - y)
        # (RFC 7748 section 4.1) gives it projectively as u = U / W, U = e + xx + yy,
        # W = e - xx - yy, e = 1 - d*xx*yy, without inverting.
        k = r0 * r1 % p
        yy = y0 * y1 % p
        e = (_DZ * (k * yy % p) + 1) % p
        s = yy - k  # xx + yy
        # clear_cofactor (h = 8) as three x-only doublings, RFC 7748 section 5's ladder:
        # AA = (U + W)^2, BB = (U - W)^2, E = AA - BB, 2R = (AA*BB : E*(AA + a24*E)). The first
        # takes U + W = 2e and U - W = 2s; the common factor 2 scales U and W alike.
        aa = e * e % p
        bb = s * s % p
        for _ in range(2):
            diff = aa - bb
            u = aa * bb % p
            w = diff * (aa + _A24 * diff) % p
            aa = (u + w) * (u + w) % p
            bb = (u - w) * (u - w) % p
        diff = aa - bb
        numerators.append(aa * bb % p)
        denominators.append(diff * (aa + _A24 * diff) % p)
    return b"".join(u.to_bytes(32, "little") for u in _ratios(numerators, denominators))


def _dst_prime(dst: bytes) -> bytes:
    """DST_prime = DST || I2OSP(len(DST), 1); a DST over 255 bytes is hashed first (5.3.3)."""
    if not dst:
        raise ValueError("RFC 9380 requires a non-empty domain separation tag")
    if len(dst) > 255:
        dst = hashlib.sha512(b"H2C-OVERSIZE-DST-" + dst).digest()
    return dst + bytes([len(dst)])


def _xmd_expander(dst: bytes, len_in_bytes: int) -> Callable[[bytes], bytes]:
    """expand_message_xmd with the per-DST work (padding block, DST_prime) done once."""
    dst_prime = _dst_prime(dst)
    ell = -(-len_in_bytes // 64)
    if not 0 < len_in_bytes <= 65535 or ell > 255:
        raise ValueError("expand_message_xmd: len_in_bytes out of range")
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


def _hash_to_field(messages: Sequence[bytes], dst: bytes) -> list[mpz]:
    """hash_to_field with count = 2 and L = 48: u0, u1 of each message, in order.

    expand_message_xmd (section 5.3.1) written out for len_in_bytes = 96: ell = 2, so
    uniform_bytes = b1 || b2[:32]; this saves a closure call, a join and a slice per message.
    """
    dst_prime = _dst_prime(dst)
    after_msg = (96).to_bytes(2, "big") + b"\x00" + dst_prime
    one = b"\x01" + dst_prime
    two = b"\x02" + dst_prime
    z_pad = hashlib.sha512(bytes(128))
    sha512 = hashlib.sha512
    p = _P
    elements = []
    for msg in messages:
        state = z_pad.copy()
        state.update(msg)
        state.update(after_msg)
        b0 = state.digest()
        b1 = sha512(b0 + one).digest()
        mixed = int.from_bytes(b0, "big") ^ int.from_bytes(b1, "big")
        b2 = sha512(mixed.to_bytes(64, "big") + two).digest()
        elements.append(mpz.from_bytes(b1[:48], "big") % p)
        elements.append(mpz.from_bytes(b1[48:] + b2[:32], "big") % p)
    return elements


def _map_to_edwards(elements: list[mpz]) -> list[tuple[mpz, mpz]]:
    """map_to_curve_elligator2_edwards25519 (RFC 9380 section 6.8.2) of each u, as affine (x, y)."""
    rs, ys = _elligator2(elements)
    return [(r * _INV_X_T % _P, y) for r, y in zip(rs, ys, strict=True)]


def _elligator2(elements: list[mpz]) -> tuple[list[mpz], list[mpz]]:
    """map_to_curve_elligator2_edwards25519 of each u as (r, y), with r = sqrt(-1) * x.

    The batch keeps r, which is what libsodium hands back: x0 * x1 = -r0 * r1.
    """
    # Elligator 2 (section 6.7.1, Z = 2, J = A, K = 1), with t = 1 + 2*u^2: the Montgomery
    # u-coordinate is x1 = -A / t when gx1 = x1^3 + A*x1^2 + x1 is a square, else
    # x2 = -x1 - A = A*(1 - t) / t. Write it m / t; its Edwards y (section 6.8.2) is
    # (x - 1) / (x + 1) = (m - t) / (m + t). As gx1 = -A * h / t^3 with h = t^2 - A^2*t + A^2
    # and -A is not a square, gx1 is a square exactly when t*h is not (neither t nor h is
    # ever 0, since -1/2 and A^2 - 4 are not squares either).
    p = _P
    ts = []
    firsts = []
    y_numerators = []
    y_denominators = []
    v_numerators = []
    for u in elements:
        t = (2 * u * u + 1) % p
        first = gmpy2.jacobi(t * (t * (t - _A2) + _A2) % p, p) < 0
        m = _M_FIRST if first else _A * (1 - t) % p
        ts.append(t)
        firsts.append(first)
        y_numerators.append(m - t)
        y_denominators.append((m + t) % p)
        v_numerators.append(_C1_SQRT_M1 * m)
    ys = _ratios(y_numerators, y_denominators)
    rs = _sqrt_m1_times_x(ys)
    # Sign rule (section 6.7.1, steps 6 and 7): the Montgomery v = c1 * (m / t) / x, that is
    # (c1 * sqrt(-1) * m) / (t * r) (c1 from Appendix D.1), has sgn0(v) = 1 exactly on the
    # first branch. libsodium returned one of the two roots; the other negates r and v.
    vs = _ratios(v_numerators, [t * r % p for t, r in zip(ts, rs, strict=True)])
    signed = [r if v & 1 == first else -r % p for r, v, first in zip(rs, vs, firsts, strict=True)]
    return signed, ys


def _sqrt_m1_times_x(ys: list[mpz]) -> list[mpz]:
    """sqrt(-1) * x for each y, where -x^2 + y^2 = 1 + d*x^2*y^2 has a solution x.

    ``crypto_core_ed25519_add`` decompresses its inputs, which computes one of the roots
    x = sqrt((y^2 - 1) / (d*y^2 + 1)); adding the point of order 4, T = (sqrt(-1), 0),
    returns P + T = (sqrt(-1)*y, sqrt(-1)*x), whose encoded y-coordinate hands x back.
    """
    buffer = ffi.new("unsigned char[32]")
    view = ffi.buffer(buffer)
    add = _crypto_core_ed25519_add
    roots = []
    for y in ys:
        if add(buffer, y.to_bytes(32, "little"), _T) != 0:
            raise ArithmeticError("Elligator 2 produced a y-coordinate off edwards25519")
        roots.append(mpz.from_bytes(view, "little") & _Y_MASK_Z)
    return roots


def _encode(x: int, y: int) -> bytes:
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _ratios(numerators: list[mpz], denominators: list[mpz]) -> list[mpz]:
    """n / d mod p for each pair, with one inversion for all (Montgomery's trick).

    A zero d gives 0, like RFC 9380's inv0; d must be reduced mod p.
    """
    p = _P
    prefixes = []
    product = mpz(1)
    for d in denominators:
        prefixes.append(product)
        if d:
            product = product * d % p
    inverse = gmpy2.invert(product, p)
    ratios = []
    for n, d, prefix in zip(
        reversed(numerators), reversed(denominators), reversed(prefixes), strict=True
    ):
        if d:
            ratios.append(inverse * prefix % p * n % p)
            inverse = inverse * d % p
        else:
            ratios.append(mpz(0))
    ratios.reverse()
    return ratios
