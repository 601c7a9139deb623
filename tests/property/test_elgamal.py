"""Property tests of cleanroom.crypto.elgamal: every native function against the pure-Python
oracle (tests/reference/elgamal.py) on random inputs, the homomorphism, and random bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import elgamal as reference

from cleanroom import _native
from cleanroom.crypto.elgamal import ElGamalPrivateKey, ElGamalPublicKey
from cleanroom.crypto.summation import add, sum_by_mask
from cleanroom.crypto.validation import check_encodings, clear_torsion
from cleanroom.errors import CryptoError

SK = ElGamalPrivateKey.generate()
PK = SK.public_key
VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "elgamal_kat.json").read_text(encoding="utf-8")
)
TORSION = [
    bytes.fromhex(v["point"]) for v in VECTORS["invalid_points"] if v["name"].startswith("torsion-")
]
EDGE_POINTS = [bytes.fromhex(v["point"]) for v in VECTORS["invalid_points"]] + [
    bytes.fromhex(v) for v in VECTORS["valid_points"]
]
BOUND = 2 * 10**6

FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
values = st.integers(min_value=-(10**6), max_value=10**6)
scalars = st.integers(min_value=1, max_value=reference.L - 1)
# Any curve point: a multiple of B plus any torsion point (the partner adds such points).
curve_points = st.tuples(scalars, st.integers(0, 7)).map(
    lambda st_: reference.compress(
        reference.point_add(reference.base_mult(st_[0]), reference.decompress(TORSION[st_[1]]))
    )
)
ciphertexts = st.tuples(curve_points, curve_points).map(b"".join)
# 32 bytes: random, a curve point, or one of the vectors' edge cases (torsion, y >= p, ...).
point_bytes = st.one_of(
    st.binary(min_size=32, max_size=32), curve_points, st.sampled_from(EDGE_POINTS)
)


def _oracle(fn: Callable[..., Any], *args: Any) -> Any:
    """The oracle's answer, or CryptoError where the oracle refuses the input."""
    try:
        return fn(*args)
    except reference.Invalid:
        return CryptoError


def _native_answer(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except CryptoError:
        return CryptoError


# --------------------------------------------------------------------------- against the oracle


@FAST
@given(secret=scalars)
def test_public_key_matches_oracle(secret: int) -> None:
    assert ElGamalPrivateKey(secret).public_key.to_bytes() == reference.public_key(secret)


@FAST
@given(data=point_bytes)
def test_public_key_validation_matches_oracle(data: bytes) -> None:
    expected = _oracle(reference.decompress_prime_order, data)
    got = _native_answer(ElGamalPublicKey.from_bytes, data)
    assert (got is CryptoError) == (expected is CryptoError)


@FAST
@given(
    secret=scalars,
    value=st.one_of(values, st.integers(-(2**300), 2**300)),
    randomness=scalars,
)
def test_encrypt_matches_oracle(secret: int, value: int, randomness: int) -> None:
    key = ElGamalPrivateKey(secret)
    expected = reference.encrypt(reference.public_key(secret), value, randomness)
    assert key.public_key._encrypt_with_randomness(value, randomness) == expected
    assert key._encrypt_with_randomness(value, randomness) == expected


@FAST
@given(
    secret=scalars,
    data=st.data(),
)
def test_encrypt_indicators_matches_oracle(secret: int, data: st.DataObject) -> None:
    bits = data.draw(st.lists(st.integers(0, 1), max_size=6), label="bits")
    pool = data.draw(st.binary(min_size=64 * len(bits), max_size=64 * len(bits)), label="pool")
    key = ElGamalPrivateKey(secret)
    rs = [
        int.from_bytes(pool[64 * i : 64 * (i + 1)], "little") % reference.L
        for i in range(len(bits))
    ]
    if any(
        r == 0 or (bit + r * secret) % reference.L == 0 for bit, r in zip(bits, rs, strict=True)
    ):
        # An identity point in a ciphertext, which every receiver would reject.
        with pytest.raises(ValueError):
            key._encrypt_indicators_with_randomness(bits, pool)
        return
    expected = reference.encrypt_indicators(secret, bits, pool)
    assert key._encrypt_indicators_with_randomness(bits, pool) == expected


@FAST
@given(a=ciphertexts, b=ciphertexts)
def test_add_matches_oracle(a: bytes, b: bytes) -> None:
    assert add(a, b) == reference.add(a, b)


@FAST
@given(ciphertext=ciphertexts, randomness=scalars)
def test_rerandomize_matches_oracle(ciphertext: bytes, randomness: int) -> None:
    expected = reference.rerandomize(PK.to_bytes(), ciphertext, randomness)
    assert PK._rerandomize_with_randomness(ciphertext, randomness) == expected


@FAST
@given(ciphertext=st.one_of(ciphertexts, st.tuples(point_bytes, point_bytes).map(b"".join)))
def test_clear_torsion_matches_oracle(ciphertext: bytes) -> None:
    expected = _oracle(reference.clear_torsion, ciphertext)
    assert _native_answer(clear_torsion, ciphertext) == expected


@FAST
@given(points=st.lists(point_bytes, max_size=8))
def test_check_encodings_matches_oracle(points: list[bytes]) -> None:
    packed = b"".join(points)
    expected = _oracle(reference.check_encodings, packed)
    assert _native_answer(check_encodings, packed) == expected


@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_sum_by_mask_matches_oracle(data: st.DataObject) -> None:
    # Up to 20 masks, sparse to dense: the planner takes the naive and the bucketed paths.
    n = data.draw(st.integers(min_value=0, max_value=24), label="n")
    k = data.draw(st.integers(min_value=0, max_value=20), label="k")
    density = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), label="density")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    packed = b"".join(data.draw(st.lists(ciphertexts, min_size=n, max_size=n), label="cts"))
    masks = np.random.default_rng(seed).random((k, n)) < density
    assert sum_by_mask(packed, masks) == reference.sum_by_mask(packed, masks.tolist())


@FAST
@given(m=st.integers(-(10**4), 10**4), bound=st.integers(0, 10**4), torsion=st.integers(0, 7))
def test_decrypt_matches_oracle(m: int, bound: int, torsion: int) -> None:
    secret = SK._sk
    ct = PK.encrypt(m)
    expected = _oracle(reference.decrypt, int.from_bytes(secret, "little"), ct, bound)
    assert _native_answer(SK.decrypt, ct, bound) == expected
    assert expected == (m if abs(m) <= bound else CryptoError)
    salted = reference.add(ct, TORSION[torsion] * 2)  # outside the subgroup unless torsion 0
    expected = _oracle(reference.decrypt, int.from_bytes(secret, "little"), salted, bound)
    assert _native_answer(SK.decrypt, salted, bound) == expected


# --------------------------------------------------------------------------- the scheme


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
@given(m=st.integers(min_value=-(10**9), max_value=10**9), bound=st.integers(0, 10**9))
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
    sums = sum_by_mask(SK.encrypt_indicators(bits), masks)
    assert len(sums) == k
    for row, ct in zip(masks, sums, strict=True):
        assert SK.decrypt(PK.rerandomize(ct), n) == int(bits[row].sum())


@FAST
@given(m=values)
def test_rerandomize_changes_bytes_not_plaintext(m: int) -> None:
    ct = PK.encrypt(m)
    fresh = PK.rerandomize(ct)
    assert fresh[:32] != ct[:32] and fresh[32:] != ct[32:]
    assert SK.decrypt(fresh, 10**6) == m


# --------------------------------------------------------------------------- random bytes


def _fuzz_calls(
    blobs: list[bytes], number: int
) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    a, b, c = blobs
    return [
        (_native.elgamal_public_key, (a,)),
        (_native.elgamal_check_public_key, (a,)),
        (_native.elgamal_encrypt, (a, b)),
        (_native.elgamal_encrypt, (a, b, c)),
        (_native.elgamal_rerandomize, (a, b)),
        (_native.elgamal_rerandomize, (a, b, c)),
        (_native.elgamal_encrypt_indicators, (a, b)),
        (_native.elgamal_encrypt_indicators, (a, b, c)),
        (_native.elgamal_add, (a, b)),
        (_native.elgamal_check_encodings, (a,)),
        (_native.elgamal_clear_torsion, (a,)),
        (_native.elgamal_sum_by_mask, (a, b, number % 5)),
        (_native.elgamal_sum_by_mask, (a, b, number)),
        (_native.elgamal_decrypt, (a, b, number % 2**41)),
        (_native.elgamal_decrypt, (a, b, number)),
    ]


@settings(max_examples=200, deadline=None, database=None)
@given(
    blobs=st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from([32, 64, 128]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
            st.lists(point_bytes, max_size=4).map(b"".join),
        ),
        min_size=3,
        max_size=3,
    ),
    number=st.integers(0, 2**64 - 1),
)
def test_native_functions_take_random_bytes_without_crashing(
    blobs: list[bytes], number: int
) -> None:
    """Random bytes into every native function: a result or the one CryptoError, never a
    panic (PanicException is not an Exception, so it would escape the except below)."""
    for fn, args in _fuzz_calls(blobs, number):
        try:
            result = fn(*args)
        except CryptoError as error:
            assert str(error) == str(CryptoError())  # the one opaque message
            continue
        assert result is None or isinstance(result, bytes | int)
