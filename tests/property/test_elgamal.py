"""Property tests of cleanroom.crypto.elgamal: homomorphism, masked sums, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.crypto import elgamal
from cleanroom.crypto.elgamal import (
    ElGamalPrivateKey,
    ElGamalPublicKey,
    add,
    sum_by_mask,
    validate_ciphertexts,
)
from cleanroom.errors import CryptoError

SK = ElGamalPrivateKey.generate()
PK = SK.public_key
VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "elgamal_kat.json").read_text(encoding="utf-8")
)
TORSION = [
    bytes.fromhex(v["point"]) for v in VECTORS["invalid_points"] if v["name"].startswith("torsion-")
]
BOUND = 2 * 10**6

FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
values = st.integers(min_value=-(10**6), max_value=10**6)


@FAST
@given(a=values, b=values)
def test_decrypt_of_sum_is_sum(a: int, b: int) -> None:
    assert SK.decrypt(add(PK.encrypt(a), PK.encrypt(b)), BOUND) == a + b


@FAST
@given(a=values, b=st.integers(min_value=0, max_value=1))
def test_private_and_public_encryptions_mix(a: int, b: int) -> None:
    total = add(PK.encrypt(a), SK.encrypt_indicators([b]))
    assert SK.decrypt(total, BOUND) == a + b


@FAST
@given(m=st.integers(min_value=-(10**4), max_value=10**4), bound=st.integers(0, 10**4))
def test_decrypt_is_exact_or_raises(m: int, bound: int) -> None:
    ct = PK.encrypt(m)
    if abs(m) <= bound:
        assert SK.decrypt(ct, bound) == m
    else:
        try:
            SK.decrypt(ct, bound)
        except CryptoError:
            pass
        else:
            raise AssertionError("decrypt returned a value outside the bound")


@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_encrypt_indicators_then_sum_by_mask(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=24), label="n")
    k = data.draw(st.integers(min_value=1, max_value=6), label="k")
    bits = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    flat = data.draw(st.lists(st.booleans(), min_size=n * k, max_size=n * k))
    masks = np.array(flat, dtype=bool).reshape(k, n)
    packed = SK.encrypt_indicators(bits)
    sums = sum_by_mask(packed, masks)
    assert len(sums) == k
    zero = elgamal._ZERO_CIPHERTEXT
    assert sums == [zero if s is None else s for s in elgamal._sum_naive(packed, masks)]
    for row, ct in zip(masks, sums, strict=True):
        assert SK.decrypt(PK.rerandomize(ct), n) == int(bits[row].sum())


@FAST
@given(m=values)
def test_rerandomize_changes_bytes_not_plaintext(m: int) -> None:
    ct = PK.encrypt(m)
    fresh = PK.rerandomize(ct)
    assert fresh != ct
    assert fresh[:32] != ct[:32] and fresh[32:] != ct[32:]
    validate_ciphertexts(fresh)
    assert SK.decrypt(fresh, 10**6) == m


@FAST
@given(r=st.integers(min_value=1, max_value=elgamal._L - 1), t=st.integers(1, 7))
def test_points_outside_the_subgroup_are_rejected(r: int, t: int) -> None:
    point = elgamal._base_mult(r)
    mixed = elgamal._point_add(point, TORSION[t])  # r*B + a torsion point
    ElGamalPublicKey.from_bytes(point)
    for bad in (mixed, TORSION[t]):
        try:
            ElGamalPublicKey.from_bytes(bad)
        except CryptoError:
            pass
        else:
            raise AssertionError("a point outside the prime-order subgroup was accepted")
        for ct in (bad + point, point + bad):
            try:
                validate_ciphertexts(point + point + ct)
            except CryptoError:
                pass
            else:
                raise AssertionError("a ciphertext outside the prime-order subgroup was accepted")


@FAST
@given(
    data=st.one_of(
        st.binary(min_size=32, max_size=32),
        st.integers(0, 2**256 - 1).map(lambda v: v.to_bytes(32, "little")),
        st.tuples(st.integers(1, elgamal._L - 1), st.integers(0, 7)).map(
            lambda rt: elgamal._point_add(elgamal._base_mult(rt[0]), TORSION[rt[1]])
        ),
    )
)
def test_random_bytes_are_rejected_unless_a_valid_point(data: bytes) -> None:
    accepted = True
    try:
        ElGamalPublicKey.from_bytes(data)
    except CryptoError:
        accepted = False
    # Cross-check with an independent decoder: canonical, on the curve, [l]P = O, not O.
    assert accepted == _in_prime_subgroup(data)


def _in_prime_subgroup(data: bytes) -> bool:
    try:
        x, y = elgamal._decompress(data)
    except CryptoError:
        return False
    if (x, y) == (0, 1):
        return False
    # [l]P via the public-point walk: l*P = O  <=>  (l-1)*P = -P.
    p = elgamal._P
    acc = (0, 1, 1, 0)
    addend = elgamal._affine_addend(x, y)
    for bit in bin(elgamal._L - 1)[2:]:
        acc = _double(acc)
        if bit == "1":
            _, acc = elgamal._walk(acc, addend, 1)
    ax, ay, az, _ = acc
    return (ax + x * az) % p == 0 and (ay - y * az) % p == 0


def _double(pt: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    p = elgamal._P
    x, y, z, _ = pt
    a = x * x % p
    b = y * y % p
    c = 2 * z * z % p
    h = a + b
    e = h - (x + y) * (x + y)
    g = a - b
    f = c + g
    return e * f % p, g * h % p, f * g % p, e * h % p
