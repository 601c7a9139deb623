"""The vectorised steps of list preparation and the protocol against their per-value
definitions (hypothesis): element messages, truncation, de-duplication, shuffles, and the
messages each side hands to hash-to-curve."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.brand.demo import contract_text
from cleanroom.crypto import batches
from cleanroom.crypto.batches import INLINE
from cleanroom.identifiers.digests import KeyDigests, drop_repeats
from cleanroom.lists import elements
from cleanroom.lists.elements import sketch
from cleanroom.lists.local import BrandList, PartnerList
from cleanroom.privacy.calibration import parse_contract
from cleanroom.privacy.setdiff import list_sketch
from cleanroom.protocol import common
from cleanroom.protocol.common import (
    ELEMENT_SIZE,
    ELEMENTS_PER_CHUNK,
    TRUNCATED_SIZE,
    chunk_sizes,
    element_message,
    element_messages,
    pieces,
    random_permutation,
    shuffled_packed,
    truncate,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

digests = st.binary(min_size=32, max_size=32)
# Digests that share their first 8 bytes, or end in zero bytes (which NumPy's fixed-width
# byte strings would drop): the cases a vectorised path gets wrong first.
tricky_digests = st.one_of(
    digests,
    st.binary(min_size=24, max_size=24).map(lambda tail: b"\x07" * 8 + tail),
    st.binary(min_size=28, max_size=28).map(lambda head: head + bytes(4)),
)


def matrix_of(values: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), 32)


@SETTINGS
@given(key=st.sampled_from(["email", "phone", "maid", "dummy"]), values=st.lists(tricky_digests))
def test_element_messages_equal_element_message(key: str, values: list[bytes]) -> None:
    assert element_messages(key, matrix_of(values)) == [element_message(key, d) for d in values]


@SETTINGS
@given(count=st.integers(0, 50))
def test_dummy_messages_are_fresh_and_never_an_identifier(count: int) -> None:
    dummies = common.dummy_messages(count)
    assert len(dummies) == count == len(set(dummies))  # 2^-256 chance of a repeat
    assert all(len(m) == 38 and m.startswith(b"dummy:") for m in dummies)


@SETTINGS
@given(elements=st.lists(st.binary(min_size=ELEMENT_SIZE, max_size=ELEMENT_SIZE)))
def test_truncate_keeps_the_first_bytes_of_each_element(elements: list[bytes]) -> None:
    assert truncate(b"".join(elements)) == b"".join(e[:TRUNCATED_SIZE] for e in elements)


@SETTINGS
@given(count=st.integers(0, 3000))
def test_random_permutation_is_a_permutation(count: int) -> None:
    order = random_permutation(count)
    assert sorted(order.tolist()) == list(range(count))


@SETTINGS
@given(rows=st.lists(st.binary(min_size=12, max_size=12)))
def test_shuffled_packed_keeps_every_row(rows: list[bytes]) -> None:
    out = shuffled_packed(b"".join(rows), 12)
    assert Counter(out[i : i + 12] for i in range(0, len(out), 12)) == Counter(rows)


def reference_drop_repeats(values: list[bytes | None], seen: set[bytes]) -> list[int]:
    dropped = []
    for i, d in enumerate(values):
        if d is None:
            continue
        if d in seen:
            values[i] = None
            dropped.append(i)
        else:
            seen.add(d)
    return dropped


@SETTINGS
@given(
    pool=st.lists(tricky_digests, min_size=1, max_size=8),
    picks=st.lists(st.one_of(st.none(), st.integers(0, 7)), max_size=40),
)
def test_drop_repeats_equals_the_per_row_definition(
    pool: list[bytes], picks: list[int | None]
) -> None:
    values = [None if p is None else pool[p % len(pool)] for p in picks]
    expected_values = list(values)
    expected = reference_drop_repeats(expected_values, set())
    digests = KeyDigests.of(values)
    assert drop_repeats(digests).tolist() == expected
    assert digests.as_list() == expected_values
    assert digests == KeyDigests.of(expected_values)  # blanked rows are zeros, as if missing


# ------------------------------------------------ what each side hands to hash-to-curve

KEYS = ("email", "phone")
CONTRACT = parse_contract(
    contract_text(
        "a" * 64, "b" * 64, segments=("loyal", "lapsed"), keys=KEYS, attributes=("x", "y")
    ).encode()
)


@st.composite
def records(draw: st.DrawFn) -> list[tuple[bytes | None, bytes | None]]:
    """Records with at least one of the two keys, no digest in two places (as after
    preparation: de-duplicated per key, and a digest is one key's hash)."""
    slots = st.one_of(st.none(), tricky_digests)
    seen: set[bytes] = set()
    out = []
    for record in draw(st.lists(st.tuples(slots, slots), max_size=60)):
        kept = tuple(d if d is not None and d not in seen else None for d in record)
        seen.update(d for d in kept if d is not None)
        if any(d is not None for d in kept):
            out.append(kept)
    return out


class Recorder:
    """Stands in for the native hash to curve of a prefix and packed digests: keeps each
    message and returns its SHA-256 as its "point", so the output tells which message went
    into each slot."""

    def __init__(self) -> None:
        self.message_of: dict[bytes, bytes] = {}
        self.calls = 0

    def __call__(self, prefix: bytes, digests: bytes, dst: bytes) -> bytes:
        self.calls += 1
        points = []
        for digest in pieces(digests, 32):
            message = prefix + digest
            point = hashlib.sha256(message).digest()
            self.message_of[point] = message
            points.append(point)
        return b"".join(points)


class Identity:
    """A cipher that leaves the points as they are."""

    def encrypt_own(self, points: bytes) -> bytes:
        return points


def key_digests(rows: list[tuple[bytes | None, bytes | None]]) -> tuple[KeyDigests, ...]:
    return tuple(KeyDigests.of([r[k] for r in rows]) for k in range(2))


@SETTINGS
@given(rows=records(), segment_seed=st.integers(0, 2**32 - 1))
def test_brand_groups_hold_exactly_their_element_messages(
    rows: list[tuple[bytes | None, bytes | None]], segment_seed: int
) -> None:
    segments = np.random.default_rng(segment_seed).integers(0, 2, len(rows)).astype(np.int8)
    brand = BrandList(
        contract=CONTRACT, keys=key_digests(rows), quality={}, source="test", segments=segments
    )
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batches, "hash_to_curve_prefixed", recorder)
        chunks = list(brand.encrypt(Identity(), INLINE))  # type: ignore[arg-type]
    sizes = brand.group_sizes()
    for g in range(4):
        segment, k = divmod(g, 2)
        mine = [i for i, c in enumerate(chunks) if (c[0], c[1]) == (segment, k)]
        assert [chunks[i][2] for i in mine] == [False] * (len(mine) - 1) + [True]
        assert all(len(chunks[i][3]) <= ELEMENTS_PER_CHUNK * ELEMENT_SIZE for i in mine)
        sent = [
            recorder.message_of[point] for i in mine for point in pieces(chunks[i][3], ELEMENT_SIZE)
        ]
        expected = [
            element_message(KEYS[k], r[k])
            for r, s in zip(rows, segments, strict=True)
            if s == segment and r[k] is not None
        ]
        assert Counter(sent) == Counter(expected) and len(sent) == sizes[g]


@SETTINGS
@given(rows=records(), attribute_seed=st.integers(0, 2**32 - 1))
def test_partner_records_keep_their_keys_and_attributes_together(
    rows: list[tuple[bytes | None, bytes | None]], attribute_seed: int
) -> None:
    attributes = np.random.default_rng(attribute_seed).random((len(rows), 2)) < 0.5
    partner = PartnerList(
        contract=CONTRACT,
        keys=key_digests(rows),
        quality={},
        source="test",
        attributes=attributes,
    )
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(elements, "hash_to_curve_prefixed", recorder)
        encrypted = partner.encrypt(Identity(), INLINE)  # type: ignore[arg-type]
        chunks = list(encrypted.chunks)
    assert [len(c) for c in chunks] == [
        2 * ELEMENT_SIZE * s for s in chunk_sizes(len(rows), CONTRACT)
    ]
    sent = [recorder.message_of[point] for chunk in chunks for point in pieces(chunk, ELEMENT_SIZE)]
    index = {
        element_message(KEYS[k], r[k]): i
        for i, r in enumerate(rows)
        for k in range(2)
        if r[k] is not None
    }
    seen_records = []
    for position in range(len(rows)):
        slots = sent[2 * position : 2 * position + 2]
        owners = {index[m] for m in slots if m in index}
        assert len(owners) == 1  # both slots of a record belong to the same record
        (owner,) = owners
        for k, message in enumerate(slots):
            if rows[owner][k] is None:
                assert message.startswith(b"dummy:") and len(message) == 38
                assert message not in index
            else:
                assert message == element_message(KEYS[k], rows[owner][k])
        assert encrypted.attributes[position].tolist() == attributes[owner].tolist()
        seen_records.append(owner)
    assert sorted(seen_records) == list(range(len(rows)))


@SETTINGS
@given(rows=records(), segment_seed=st.integers(0, 2**32 - 1), key=st.binary(max_size=64))
def test_packed_sketch_equals_the_per_record_sketch(
    rows: list[tuple[bytes | None, bytes | None]], segment_seed: int, key: bytes
) -> None:
    segments = np.random.default_rng(segment_seed).integers(0, 3, len(rows)).astype(np.int8)
    columns = [[r[k] for r in rows] for k in range(2)]
    packed = key_digests(rows)
    assert sketch(packed, key).tolist() == list_sketch(columns, key).tolist()
    assert sketch(packed, key, segments).tolist() == list_sketch(columns, key, segments).tolist()
