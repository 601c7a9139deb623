"""Every native function of cleanroom._native against its pure-Python oracle (tests/reference/)
on random inputs: same bytes, and the same error where the oracle refuses.

The RFC 9380 and RFC 7748 vectors are in tests/vectors/; these properties cover the rest of
the input space, including batches long enough to be split over several rayon tasks and
crypto_mb's 8 lanes with a short tail.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import commutative as reference_commutative
from reference import hash_to_curve as reference_h2c
from reference import records

from cleanroom import _native
from cleanroom.crypto.commutative import CommutativeCipher, x25519_fresh_keys
from cleanroom.crypto.hash_to_curve import (
    hash_to_curve_batch,
    hash_to_curve_edwards25519,
    hash_to_curve_prefixed,
)
from cleanroom.errors import CryptoError
from cleanroom.identifiers.normalize import _digests_of
from cleanroom.privacy.setdiff import list_sketch
from cleanroom.protocol.common import (
    BASE_POINT,
    TRUNCATED_SIZE,
    random_permutation,
    shuffled_packed,
)

P = 2**255 - 19
keys = st.binary(min_size=32, max_size=32)
messages = st.lists(st.binary(max_size=80), max_size=40)
dsts = st.binary(min_size=1, max_size=300)  # over 255 bytes: hashed first (RFC 9380 5.3.3)
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (P - 1).to_bytes(32, "little"),
]
# Received elements: valid points, arbitrary canonical strings (curve or twist), low-order
# points, and non-canonical or high-bit strings.
elements = st.one_of(
    st.binary(max_size=40).map(lambda m: reference_h2c.hash_to_curve(m, b"oracle")),
    st.integers(0, P - 1).map(lambda u: u.to_bytes(32, "little")),
    st.sampled_from(LOW_ORDER),
    st.integers(P, 2**256 - 1).map(lambda u: u.to_bytes(32, "little")),
)


def outcome(encrypt, packed: bytes) -> bytes | type[CryptoError]:
    try:
        return encrypt(packed)
    except CryptoError:
        return CryptoError


@given(batch=messages, dst=dsts)
@settings(max_examples=60, deadline=None)
def test_hash_to_curve_batch_matches_the_oracle(batch: list[bytes], dst: bytes) -> None:
    assert hash_to_curve_batch(batch, dst) == reference_h2c.hash_to_curve_batch(batch, dst)


@given(msg=st.binary(max_size=200), dst=dsts)
@settings(max_examples=60, deadline=None)
def test_hash_to_curve_edwards25519_matches_the_oracle(msg: bytes, dst: bytes) -> None:
    assert hash_to_curve_edwards25519(msg, dst) == reference_h2c.hash_to_curve_edwards25519(
        msg, dst
    )


def test_a_long_batch_spans_many_rayon_tasks_in_order() -> None:
    batch = [os.urandom(i % 50) for i in range(3000)]
    assert hash_to_curve_batch(batch, b"oracle") == reference_h2c.hash_to_curve_batch(
        batch, b"oracle"
    )


@given(key=keys, batch=st.lists(elements, max_size=19))
@settings(max_examples=200, deadline=None)
def test_x25519_batch_matches_pyca(key: bytes, batch: list[bytes]) -> None:
    """Same bytes as the former pyca path, or CryptoError exactly where it refused."""
    packed = b"".join(batch)
    native = outcome(CommutativeCipher._from_key(key).encrypt, packed)
    oracle = outcome(reference_commutative.CommutativeCipher._from_key(key).encrypt, packed)
    assert native == oracle


@given(key_list=st.lists(keys, max_size=19), point=st.one_of(elements, st.just(BASE_POINT)))
@settings(max_examples=200, deadline=None)
def test_x25519_fresh_keys_matches_pyca(key_list: list[bytes], point: bytes) -> None:
    """Many keys on one point (the partner's dummy matches, the base point on dalek's
    fixed-base tables): pyca's bytes key by key, or CryptoError exactly where it refuses."""
    native = outcome(lambda k: x25519_fresh_keys(k, point), b"".join(key_list))
    results = [
        outcome(reference_commutative.CommutativeCipher._from_key(key).encrypt, point)
        for key in key_list
    ]
    oracle = CryptoError if CryptoError in results else b"".join(results)  # type: ignore[arg-type]
    assert native == oracle


def test_x25519_fresh_keys_spans_many_rayon_tasks_in_key_order() -> None:
    key_list = [os.urandom(32) for _ in range(1500)]
    point = reference_h2c.hash_to_curve(b"one point", b"oracle")
    packed = x25519_fresh_keys(b"".join(key_list), point)
    for index in (0, 511, 512, 1499):
        expected = reference_commutative.CommutativeCipher._from_key(key_list[index]).encrypt(point)
        assert packed[32 * index : 32 * index + 32] == expected


# What the fast path (crypto_mb where the CPU has it) is given: this party's own hashed points,
# plus the refusals, which are checked before either path runs.
own_points = st.one_of(
    st.binary(max_size=40).map(lambda m: reference_h2c.hash_to_curve(m, b"oracle")),
    st.sampled_from(LOW_ORDER),
    st.integers(P, 2**256 - 1).map(lambda u: u.to_bytes(32, "little")),
)


@given(key=keys, batch=st.lists(own_points, max_size=19))
@settings(max_examples=200, deadline=None)
def test_own_points_get_the_oracles_bytes_on_the_fast_path(key: bytes, batch: list[bytes]) -> None:
    packed = b"".join(batch)
    fast = outcome(CommutativeCipher._from_key(key).encrypt_own, packed)
    portable = outcome(lambda p: _native.x25519_batch(key, p, portable=True), packed)
    oracle = outcome(reference_commutative.CommutativeCipher._from_key(key).encrypt, packed)
    assert fast == portable == oracle


def test_crypto_mb_and_portable_give_the_same_bytes_on_a_long_batch() -> None:
    """The multi-buffer path (8 lanes, rayon tasks of 512) against the portable one."""
    path, reason = _native.x25519_path()
    if path != "crypto_mb":
        pytest.skip(f"multi-buffer X25519 is not active here: {reason}")
    key = os.urandom(32)
    packed = reference_h2c.hash_to_curve_batch([os.urandom(16) for _ in range(2053)], b"oracle")
    assert _native.x25519_batch(key, packed) == _native.x25519_batch(key, packed, portable=True)
    assert _native.x25519_batch(key, packed) == reference_commutative.CommutativeCipher(
        key
    ).encrypt(packed)


@given(
    prefix=st.binary(max_size=12),
    digests=st.lists(st.binary(min_size=32, max_size=32), max_size=20),
    dst=st.binary(min_size=1, max_size=40),
)
@settings(max_examples=40, deadline=None)
def test_hash_to_curve_prefixed_matches_the_oracle_of_the_joined_messages(
    prefix: bytes, digests: list[bytes], dst: bytes
) -> None:
    expected = reference_h2c.hash_to_curve_batch([prefix + d for d in digests], dst)
    assert hash_to_curve_prefixed(prefix, b"".join(digests), dst) == expected


def test_hash_to_curve_prefixed_refuses_a_partial_digest() -> None:
    with pytest.raises(ValueError):
        hash_to_curve_prefixed(b"email:", bytes(33), b"dst")


@given(items=st.lists(st.binary(max_size=70), max_size=1200))
@settings(max_examples=40, deadline=None)
def test_sha256_of_identifiers_matches_hashlib(items: list[bytes]) -> None:
    strings = pa.array([item.hex() for item in items], pa.string())
    assert _digests_of(strings) == b"".join(
        records.sha256_all([item.hex().encode() for item in items])
    )
    if len(items) > 2:  # a sliced Arrow array: offsets that do not start at 0
        assert _digests_of(strings.slice(1, len(items) - 2)) == b"".join(
            records.sha256_all([item.hex().encode() for item in items[1:-1]])
        )


@given(
    columns=st.integers(1, 3).flatmap(
        lambda keys: st.lists(
            st.lists(st.one_of(st.none(), st.binary(max_size=33)), min_size=keys, max_size=keys),
            max_size=300,
        )
    ),
    key=st.binary(max_size=64),
)
@settings(max_examples=60, deadline=None)
def test_list_sketch_matches_the_oracle(columns: list[list[bytes | None]], key: bytes) -> None:
    digests = [list(column) for column in zip(*columns, strict=True)] if columns else []
    assert np.array_equal(list_sketch(digests, key), records.list_sketch(digests, key))


@given(
    table=st.lists(
        st.tuples(st.binary(min_size=12, max_size=12), st.integers(0, 120)), max_size=200
    ),
    others=st.lists(st.binary(min_size=12, max_size=12), max_size=50),
    picks=st.lists(st.integers(0, 10**6), max_size=50),
)
@settings(max_examples=100, deadline=None)
def test_match_lookup_matches_the_oracle(
    table: list[tuple[bytes, int]], others: list[bytes], picks: list[int]
) -> None:
    values = others + [table[p % len(table)][0] for p in picks if table]
    native = _native.MatchTable(
        b"".join(v for v, _ in table), bytes(s for _, s in table), TRUNCATED_SIZE
    )
    found = np.frombuffer(native.lookup(b"".join(values)), dtype=np.int8).tolist()
    assert found == records.match_lookup(table, values)


def shuffled(items: list[int]) -> list[int]:
    return [items[i] for i in random_permutation(len(items)).tolist()]


def test_shuffles_are_permutations_and_vary() -> None:
    items = list(range(500))
    first, second = shuffled(list(items)), shuffled(list(items))
    assert sorted(first) == items and first != items and first != second
    packed = b"".join(i.to_bytes(12, "little") for i in items)
    out = shuffled_packed(packed, 12)
    pieces = [out[i : i + 12] for i in range(0, len(out), 12)]
    assert pieces != [packed[i : i + 12] for i in range(0, len(packed), 12)]
    assert sorted(pieces) == sorted(packed[i : i + 12] for i in range(0, len(packed), 12))
    assert shuffled([]) == [] and shuffled_packed(b"", 12) == b""


def test_shuffle_positions_are_uniform() -> None:
    """Each item lands in each of 4 positions about 1/4 of the time (chi-square, 3 dof:
    99.99th percentile 21.1), a check that the permutation is not biased."""
    counts = np.zeros((4, 4), dtype=np.int64)
    for _ in range(4000):
        for position, item in enumerate(shuffled([0, 1, 2, 3])):
            counts[item, position] += 1
    expected = 1000
    chi_square = ((counts - expected) ** 2 / expected).sum(axis=1)
    assert (chi_square < 21.1).all(), counts
