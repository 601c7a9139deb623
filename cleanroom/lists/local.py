"""Turn a party's table into what the protocol needs: per-record digests per match key, in
this process (``--engine local``; the list port is :mod:`cleanroom.protocol.list_port`).

Everything here runs on the owner's machine before anything is sent. Identifiers are
normalized and SHA-256 hashed (docs/reference/contract.md, normalization profiles),
duplicates are removed (first occurrence wins), records with no valid key are dropped, and an input-quality
summary is kept for this party only (it is never sent: docs/design-decisions.md). Bad
input (a missing column, unknown labels, too many invalid values, non-boolean attributes)
raises :class:`InputError` here, before any data leaves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa

from cleanroom.contract import Contract
from cleanroom.crypto.batches import BatchRunner, hash_prefixed_and_encrypt
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.errors import InputError
from cleanroom.identifiers.digests import KeyDigests, drop_repeats
from cleanroom.identifiers.quality import KeyQuality, check_invalid_fraction, digest_column
from cleanroom.lists.elements import key_prefix, record_points, sketch
from cleanroom.lists.mapping import check_mapping, key_columns
from cleanroom.lists.tables import (
    CsvDialect,
    boolean_column,
    load_table,
    release_unused_memory,
    segment_column,
    source_name,
    string_column,
)
from cleanroom.protocol.common import ELEMENTS_PER_CHUNK, chunk_sizes, random_permutation
from cleanroom.protocol.list_port import (
    EncryptedRecords,
    GroupChunk,
    OwnBrandList,
    OwnPartnerList,
)

if TYPE_CHECKING:
    import pandas as pd

TableSource: TypeAlias = "str | os.PathLike[str] | pd.DataFrame | pa.Table"


@dataclass(frozen=True)
class PreparedList:
    """One party's de-duplicated records for ``contract``: ``keys[k]`` holds every record's
    digest for the contract's k-th match key."""

    contract: Contract
    keys: tuple[KeyDigests, ...]
    quality: dict[str, dict[str, int]]
    source: str

    @property
    def size(self) -> int:
        return len(self.keys[0]) if self.keys else 0

    def sketch(self, key: bytes) -> np.ndarray:
        return sketch(self.keys, key)


@dataclass(frozen=True)
class BrandList(PreparedList):
    """A CRM prepared in this process; its crypto runs on the session's :class:`BatchRunner`."""

    segments: np.ndarray  # int8 segment index per record, contract order

    def sketch(self, key: bytes) -> np.ndarray:
        """With each record's segment label: moving a record to another segment is a change."""
        return sketch(self.keys, key, self.segments)

    def records_per_segment(self) -> list[int]:
        segments = len(self.contract.segments)
        counts = np.bincount(self.segments.astype(np.int64), minlength=segments)
        return [int(c) for c in counts]

    def group_sizes(self) -> list[int]:
        keys, segments = len(self.contract.keys), len(self.contract.segments)
        sizes = [0] * (segments * keys)
        for k, column in enumerate(self.keys):
            counts = np.bincount(self.segments[column.present].astype(np.int64), minlength=segments)
            for s, count in enumerate(counts):
                sizes[s * keys + k] = int(count)
        return sizes

    def encrypt(self, cipher: CommutativeCipher, runner: BatchRunner) -> Iterator[GroupChunk]:
        """Each group in a fresh secret random order, chunks encrypted on the runner's
        thread while earlier ones are being sent (their digests gathered only then)."""
        contract = self.contract
        keys = len(contract.keys)
        parts: list[tuple[int, int, bool, np.ndarray]] = []  # (segment, key, last, rows)
        for g in range(len(contract.segments) * keys):
            segment, k = divmod(g, keys)
            rows = np.flatnonzero(self.keys[k].present & (self.segments == segment))
            rows = rows[random_permutation(len(rows))]
            starts = range(0, len(rows), ELEMENTS_PER_CHUNK) or range(1)
            parts += [
                (segment, k, i == len(starts) - 1, rows[a : a + ELEMENTS_PER_CHUNK])
                for i, a in enumerate(starts)
            ]
        dst = contract.hash_to_curve_dst()

        def jobs() -> Iterator[tuple[int, tuple[Any, ...]]]:
            for _, k, _, rows in parts:
                digests = self.keys[k].matrix[rows].tobytes()
                yield len(rows), (cipher, key_prefix(contract.keys[k]), digests, dst)

        encrypted = runner.map(hash_prefixed_and_encrypt, jobs())
        for (segment, k, last, _), elements in zip(parts, encrypted, strict=True):
            yield segment, k, last, elements


def encrypt_records(
    cipher: CommutativeCipher, keys: Sequence[str], columns: Sequence[KeyDigests], dst: bytes
) -> bytes:
    """E_k of each record's points (:func:`cleanroom.lists.elements.record_points`)."""
    points = record_points(keys, columns, dst)
    return cipher.encrypt_own(points) if points else b""


@dataclass(frozen=True)
class PartnerList(PreparedList):
    """An audience prepared in this process; its crypto runs on the session's
    :class:`BatchRunner`."""

    attributes: np.ndarray  # bool (records, attributes), contract order

    def encrypt(self, cipher: CommutativeCipher, runner: BatchRunner) -> EncryptedRecords:
        """The records in a secret random order."""
        contract = self.contract
        order = random_permutation(self.size)
        attributes = self.attributes[order] if self.size else self.attributes
        dst = contract.hash_to_curve_dst()

        def jobs() -> Iterator[tuple[int, tuple[Any, ...]]]:
            start = 0
            for size in chunk_sizes(self.size, contract):
                rows = order[start : start + size]
                start += size
                columns = [column.select(rows) for column in self.keys]
                yield size * len(columns), (cipher, contract.keys, columns, dst)

        return EncryptedRecords(attributes, runner.map(encrypt_records, jobs()))


# Both satisfy the list port (checked by mypy --strict).
_brand_port: type[OwnBrandList] = BrandList
_partner_port: type[OwnPartnerList] = PartnerList


def _digests(
    table: pa.Table, mapping: Mapping[str, str], contract: Contract, source: str
) -> tuple[list[KeyDigests], dict[str, dict[str, int]]]:
    chosen = key_columns(table.column_names, mapping, contract, source)
    missing = [
        col for pairs in chosen.values() for _, col in pairs if col not in table.column_names
    ]
    if missing:
        raise InputError(
            f"{source}: missing column '{missing[0]}' (columns: {', '.join(table.column_names)})"
        )
    per_key: list[KeyDigests] = []
    qualities: dict[str, KeyQuality] = {}
    columns_of: dict[str, str] = {}
    for pairs in chosen.values():
        # Raw and pre-hashed columns of one key are coalesced per row (a column fills only
        # rows the earlier ones left empty or invalid), then the first occurrence of each
        # coalesced digest wins; a dropped repeat counts against the column that supplied it.
        merged = KeyDigests.missing(table.num_rows)
        supplier = np.zeros(table.num_rows, dtype=np.int64)  # index into pairs
        for j, (kind, column) in enumerate(pairs):
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
            fill = digests.present & ~merged.present
            merged.matrix[fill] = digests.matrix[fill]
            merged.present[fill] = True
            supplier[fill] = j
        if len(pairs) > 1:
            for i in drop_repeats(merged).tolist():
                qualities[pairs[supplier[i]][0]].duplicates += 1
        per_key.append(merged)
    check_invalid_fraction(qualities, contract.max_invalid_fraction, source, columns_of)
    return per_key, {kind: quality.to_dict() for kind, quality in qualities.items()}


def _keep_records_with_a_key(per_key: list[KeyDigests]) -> np.ndarray:
    keep = np.zeros(len(per_key[0]), dtype=bool)
    for digests in per_key:
        keep |= digests.present
    return keep


def _select(per_key: list[KeyDigests], keep: np.ndarray) -> tuple[KeyDigests, ...]:
    rows = np.flatnonzero(keep)
    return tuple(digests.select(rows) for digests in per_key)


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
    prepared = BrandList(
        contract=contract,
        keys=_select(per_key, keep),
        quality=quality,
        source=name,
        segments=segments[keep],
    )
    del table, labels  # their Arrow buffers go back to the pool, and the pool's to the OS
    release_unused_memory()
    return prepared


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
    attributes = np.zeros((table.num_rows, len(attribute_columns)), dtype=bool)
    for j, column in enumerate(attribute_columns):
        attributes[:, j] = boolean_column(table, column, name)
    # The attributes' text columns go before the keys are digested: with 20 attributes they
    # are most of a CSV's table, and the digests' own copies would stack on top of them.
    table = table.select([c for c in table.column_names if c not in set(attribute_columns)])
    release_unused_memory()
    per_key, quality = _digests(table, columns, contract, name)
    keep = _keep_records_with_a_key(per_key)
    prepared = PartnerList(
        contract=contract,
        keys=_select(per_key, keep),
        quality=quality,
        source=name,
        attributes=attributes[keep],
    )
    del table  # its Arrow buffers go back to the pool, and the pool's to the OS
    release_unused_memory()
    return prepared
