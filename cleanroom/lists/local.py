"""Turn a party's table into what the protocol needs: per-record digests per match key.

Everything here runs on the owner's machine before anything is sent. Identifiers are
normalized and SHA-256 hashed (DESIGN §3), duplicates are removed (first occurrence wins),
records with no valid key are dropped, and an input-quality summary is kept for this
party only (it is never sent: docs/design-decisions.md). Bad input (a missing column, unknown labels, too many invalid values,
non-boolean attributes) raises :class:`InputError` here, before any data leaves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from cleanroom.contract import Contract
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.engine import Engine, hash_and_encrypt
from cleanroom.errors import InputError
from cleanroom.identifiers import (
    KEY_KINDS,
    MATCH_KEY_OF,
    KeyQuality,
    check_invalid_fraction,
    digest_column,
    drop_repeats,
)
from cleanroom.lists.tables import (
    CsvDialect,
    boolean_column,
    load_table,
    segment_column,
    source_name,
    string_column,
)
from cleanroom.privacy.setdiff import list_sketch
from cleanroom.protocol.common import (
    DIGEST_SIZE,
    ELEMENTS_PER_CHUNK,
    chunk_sizes,
    dummy_messages,
    element_messages,
    random_permutation,
)

TableSource = str | os.PathLike[str] | pd.DataFrame | pa.Table
Digest = bytes | None


GroupChunk = tuple[int, int, bool, bytes]  # (segment, key, last chunk of the group, elements)


class OwnList(Protocol):
    """What a session needs of its own side's prepared list, wherever the list lives (this
    process, or a Spark cluster: :mod:`cleanroom.lists.spark`)."""

    quality: dict[str, dict[str, int]]
    source: str

    @property
    def size(self) -> int: ...

    def sketch(self, key: bytes) -> np.ndarray:
        """The set-difference sketch of the records (:mod:`cleanroom.privacy.setdiff`)."""
        ...


class OwnBrandList(OwnList, Protocol):
    def records_per_segment(self, contract: Contract) -> list[int]: ...

    def group_sizes(self, contract: Contract) -> list[int]:
        """Elements per (segment, key) group, ``segment * len(keys) + key``."""
        ...

    def encrypt(
        self, cipher: CommutativeCipher, contract: Contract, engine: Engine
    ) -> Iterator[GroupChunk]:
        """Round 1: E_b(H(key:digest)) per group in group order, each group in an order that
        says nothing about the CRM's row order, in chunks of at most ELEMENTS_PER_CHUNK."""
        ...


@dataclass(frozen=True)
class EncryptedRecords:
    """Round 2's partner records: ``attributes`` in the order ``chunks`` sends the records."""

    attributes: np.ndarray
    chunks: Iterator[bytes]  # E_a(H(...)) of len(keys) slots per record, records_per_chunk each


class OwnPartnerList(OwnList, Protocol):
    def encrypt(
        self, cipher: CommutativeCipher, contract: Contract, engine: Engine
    ) -> EncryptedRecords:
        """The records in an order the brand cannot relate to the audience's row order
        (it learns which positions matched), a random element in each missing key slot."""
        ...


@dataclass(frozen=True)
class PreparedList:
    """One party's de-duplicated records: ``digests[k][i]`` is record i's digest for key k."""

    digests: tuple[tuple[Digest, ...], ...]
    quality: dict[str, dict[str, int]]
    source: str

    @property
    def size(self) -> int:
        return len(self.digests[0]) if self.digests else 0

    def sketch(self, key: bytes) -> np.ndarray:
        return list_sketch(self.digests, key)

    @cached_property
    def packed(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per key, the digests as an (n, 32) uint8 matrix (zeros where a record has no such
        key) and the mask of records that have one: what the vectorised steps work on."""
        missing = bytes(DIGEST_SIZE)
        out = []
        for digests in self.digests:
            present = np.fromiter((d is not None for d in digests), dtype=bool, count=self.size)
            joined = b"".join(missing if d is None else d for d in digests)
            matrix = np.frombuffer(joined, dtype=np.uint8).reshape(self.size, DIGEST_SIZE)
            out.append((matrix, present))
        return tuple(out)


@dataclass(frozen=True)
class BrandList(PreparedList):
    """A CRM prepared in this process; its crypto runs on the :class:`Engine`."""

    segments: np.ndarray  # int8 segment index per record, contract order

    def sketch(self, key: bytes) -> np.ndarray:
        """With each record's segment label: moving a record to another segment is a change."""
        return list_sketch(self.digests, key, self.segments)

    def records_per_segment(self, contract: Contract) -> list[int]:
        counts = np.bincount(self.segments.astype(np.int64), minlength=len(contract.segments))
        return [int(c) for c in counts]

    def group_sizes(self, contract: Contract) -> list[int]:
        keys = len(contract.keys)
        sizes = [0] * (len(contract.segments) * keys)
        for k, (_, present) in enumerate(self.packed):
            counts = np.bincount(
                self.segments[present].astype(np.int64), minlength=len(contract.segments)
            )
            for s, count in enumerate(counts):
                sizes[s * keys + k] = int(count)
        return sizes

    def encrypt(
        self, cipher: CommutativeCipher, contract: Contract, engine: Engine
    ) -> Iterator[GroupChunk]:
        """Each group in a fresh secret random order, chunks encrypted on the engine's
        workers while earlier ones are being sent (their messages built only then)."""
        keys = len(contract.keys)
        parts: list[tuple[int, int, bool, np.ndarray]] = []  # (segment, key, last, rows)
        for g in range(len(contract.segments) * keys):
            segment, k = divmod(g, keys)
            _, present = self.packed[k]
            rows = np.flatnonzero(present & (self.segments == segment))
            rows = rows[random_permutation(len(rows))]
            starts = range(0, len(rows), ELEMENTS_PER_CHUNK) or range(1)
            parts += [
                (segment, k, i == len(starts) - 1, rows[a : a + ELEMENTS_PER_CHUNK])
                for i, a in enumerate(starts)
            ]
        dst = contract.hash_to_curve_dst()

        def jobs() -> Iterator[tuple[int, tuple[Any, ...]]]:
            for _, k, _, rows in parts:
                matrix, _ = self.packed[k]
                messages = element_messages(contract.keys[k], matrix[rows])
                yield len(messages), (cipher, messages, dst)

        encrypted = engine.map(hash_and_encrypt, jobs())
        for (segment, k, last, _), elements in zip(parts, encrypted, strict=True):
            yield segment, k, last, elements


@dataclass(frozen=True)
class PartnerList(PreparedList):
    """An audience prepared in this process; its crypto runs on the :class:`Engine`."""

    attributes: np.ndarray  # bool (records, attributes), contract order

    def encrypt(
        self, cipher: CommutativeCipher, contract: Contract, engine: Engine
    ) -> EncryptedRecords:
        """The records in a secret random order."""
        order = random_permutation(self.size)
        attributes = self.attributes[order] if self.size else self.attributes
        dst = contract.hash_to_curve_dst()

        def jobs() -> Iterator[tuple[int, tuple[Any, ...]]]:
            start = 0
            for size in chunk_sizes(self.size, contract):
                rows = order[start : start + size]
                start += size
                slots = []  # per key, this chunk's messages in record order
                for (matrix, present), key in zip(self.packed, contract.keys, strict=True):
                    messages = element_messages(key, matrix[rows])
                    missing = np.flatnonzero(~present[rows]).tolist()
                    for i, dummy in zip(missing, dummy_messages(len(missing)), strict=True):
                        messages[i] = dummy
                    slots.append(messages)
                messages = (
                    slots[0]
                    if len(slots) == 1
                    else [m for record in zip(*slots, strict=True) for m in record]
                )
                yield len(messages), (cipher, messages, dst)

        return EncryptedRecords(attributes, engine.map(hash_and_encrypt, jobs()))


def key_columns(
    available: Sequence[str], mapping: Mapping[str, str], contract: Contract, source: str
) -> dict[str, list[tuple[str, str]]]:
    """For each match key, the (key kind, column) pairs to read, in coalescing order.

    A list may lack a key the contract allows (a publisher without phone numbers): those
    slots stay empty. A list with no column for any of the contract's keys is an error.
    """
    chosen: dict[str, list[tuple[str, str]]] = {}
    for match_key in contract.keys:
        kinds = [kind for kind in KEY_KINDS if MATCH_KEY_OF[kind] == match_key]
        explicit = [(kind, mapping[kind]) for kind in kinds if kind in mapping]
        chosen[match_key] = explicit or [(kind, kind) for kind in kinds if kind in available]
    if not any(chosen.values()):
        expected = ", ".join(
            f"'{kind}'" for kind in KEY_KINDS if MATCH_KEY_OF[kind] in contract.keys
        )
        raise InputError(
            f"{source}: no identifier column: expected one named {expected}, or map one with "
            f"--column {contract.keys[0]}=COLUMN"
        )
    return chosen


def check_mapping(mapping: Mapping[str, str], contract: Contract, extra: Sequence[str]) -> None:
    allowed = set(KEY_KINDS) | set(contract.attributes) | set(extra)
    for name in mapping:
        if name not in allowed:
            raise InputError(
                f"unknown column mapping '{name}': not a key kind ({', '.join(KEY_KINDS)})"
                f" or an attribute of contract '{contract.id}'"
                + (f" ({', '.join(contract.attributes)})" if contract.attributes else "")
            )


def _digests(
    table: pa.Table, mapping: Mapping[str, str], contract: Contract, source: str
) -> tuple[list[list[Digest]], dict[str, dict[str, int]]]:
    chosen = key_columns(table.column_names, mapping, contract, source)
    missing = [
        col for pairs in chosen.values() for _, col in pairs if col not in table.column_names
    ]
    if missing:
        raise InputError(
            f"{source}: missing column '{missing[0]}' (columns: {', '.join(table.column_names)})"
        )
    per_key: list[list[Digest]] = []
    qualities: dict[str, KeyQuality] = {}
    columns_of: dict[str, str] = {}
    for pairs in chosen.values():
        # Raw and pre-hashed columns of one key are coalesced per row (a column fills only
        # rows the earlier ones left empty or invalid), then the first occurrence of each
        # coalesced digest wins; a dropped repeat counts against the column that supplied it.
        merged: list[Digest] = [None] * table.num_rows
        supplier: list[str] = [""] * table.num_rows
        for kind, column in pairs:
            digests, quality = digest_column(
                string_column(table, column),
                kind,
                contract.normalization,
                contract.default_region,
                deduplicate=len(pairs) == 1,
            )
            qualities[kind] = quality
            columns_of[kind] = column
            if len(pairs) == 1:
                merged = digests
                continue
            for i, d in enumerate(digests):
                if d is not None and merged[i] is None:
                    merged[i], supplier[i] = d, kind
        if len(pairs) > 1:
            for i in drop_repeats(merged):
                qualities[supplier[i]].duplicates += 1
        per_key.append(merged)
    check_invalid_fraction(qualities, contract.max_invalid_fraction, source, columns_of)
    return per_key, {kind: quality.to_dict() for kind, quality in qualities.items()}


def _keep_records_with_a_key(per_key: list[list[Digest]]) -> np.ndarray:
    keep = np.zeros(len(per_key[0]), dtype=bool)
    for digests in per_key:
        keep |= np.fromiter((d is not None for d in digests), dtype=bool, count=len(digests))
    return keep


def _select(per_key: list[list[Digest]], keep: np.ndarray) -> tuple[tuple[Digest, ...], ...]:
    rows = np.flatnonzero(keep)
    return tuple(tuple(digests[i] for i in rows) for digests in per_key)


def prepare_brand_list(
    source: TableSource,
    columns: Mapping[str, str],
    contract: Contract,
    dialect: CsvDialect | None = None,
) -> BrandList:
    """Read and prepare a brand CRM. ``columns`` maps key kinds and ``segment`` to columns;
    ``dialect`` says how a CSV file is written (default: UTF-8, delimiter detected)."""
    name = source_name(source)
    check_mapping(columns, contract, extra=("segment",))
    required = [columns["segment"]] if "segment" in columns else []
    table = load_table(source, required=required, role="brand CRM", dialect=dialect)
    per_key, quality = _digests(table, columns, contract, name)
    labels = segment_column(table, columns.get("segment"), contract.segments, name)
    index = {segment: i for i, segment in enumerate(contract.segments)}
    segments = np.fromiter((index[label] for label in labels), dtype=np.int8, count=len(labels))
    keep = _keep_records_with_a_key(per_key)
    return BrandList(
        digests=_select(per_key, keep), quality=quality, source=name, segments=segments[keep]
    )


def prepare_partner_list(
    source: TableSource,
    columns: Mapping[str, str] | None,
    contract: Contract,
    dialect: CsvDialect | None = None,
) -> PartnerList:
    """Read and prepare a partner audience: key columns and the contract's attributes;
    ``dialect`` says how a CSV file is written (default: UTF-8, delimiter detected)."""
    columns = dict(columns or {})
    name = source_name(source)
    check_mapping(columns, contract, extra=())
    attribute_columns = [columns.get(a, a) for a in contract.attributes]
    table = load_table(source, required=attribute_columns, role="partner audience", dialect=dialect)
    per_key, quality = _digests(table, columns, contract, name)
    attributes = np.zeros((table.num_rows, len(attribute_columns)), dtype=bool)
    for j, column in enumerate(attribute_columns):
        attributes[:, j] = boolean_column(table, column, name)
    keep = _keep_records_with_a_key(per_key)
    return PartnerList(
        digests=_select(per_key, keep), quality=quality, source=name, attributes=attributes[keep]
    )
