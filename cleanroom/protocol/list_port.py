"""The list port: what a session needs of its own side's prepared list, wherever it lives.

A list is prepared for one contract and knows it: nothing here takes the contract again.
Two implementations satisfy these Protocols (under ``mypy --strict``, with typed
assignments beside each): :mod:`cleanroom.lists.local` (this process) and
:mod:`cleanroom.lists.spark` (a Spark cluster). The protocol layer imports this module,
never an implementation.

The batch runner stays a parameter of ``encrypt``: it belongs to the session (its threads
and its lifetime), while a list is prepared before any session and may serve several
(docs/design-decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cleanroom.crypto.batches import BatchRunner
from cleanroom.crypto.commutative import CommutativeCipher

GroupChunk = tuple[int, int, bool, bytes]  # (segment, key, last chunk of the group, elements)


@dataclass(frozen=True)
class EncryptedRecords:
    """Round 2's partner records: ``attributes`` in the order ``chunks`` sends the records."""

    attributes: np.ndarray
    chunks: Iterator[bytes]  # E_a(H(...)) of len(keys) slots per record, records_per_chunk each


class OwnList(Protocol):
    """A party's own prepared list: its de-duplicated records with at least one key."""

    @property
    def quality(self) -> dict[str, dict[str, int]]:
        """The input-quality summary per key kind (kept by this party, never sent)."""
        ...

    @property
    def source(self) -> str:
        """Where the list was read from, for messages."""
        ...

    @property
    def size(self) -> int: ...

    def sketch(self, key: bytes) -> np.ndarray:
        """The set-difference sketch of the records (:mod:`cleanroom.privacy.setdiff`)."""
        ...


class OwnBrandList(OwnList, Protocol):
    def records_per_segment(self) -> list[int]: ...

    def group_sizes(self) -> list[int]:
        """Elements per (segment, key) group, ``segment * len(keys) + key``."""
        ...

    def encrypt(self, cipher: CommutativeCipher, runner: BatchRunner) -> Iterator[GroupChunk]:
        """Round 1: E_b(H(key:digest)) per group in group order, each group in an order that
        says nothing about the CRM's row order, in chunks of at most ELEMENTS_PER_CHUNK."""
        ...


class OwnPartnerList(OwnList, Protocol):
    def encrypt(self, cipher: CommutativeCipher, runner: BatchRunner) -> EncryptedRecords:
        """The records in an order the brand cannot relate to the audience's row order
        (it learns which positions matched), a random element in each missing key slot."""
        ...
