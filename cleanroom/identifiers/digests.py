"""One match key's SHA-256 digests of a whole list, packed: an (n, 32) uint8 matrix and a
presence mask, never a Python ``bytes`` object per record (at 10^6 records 32 MB per key
instead of about 80 MB of objects and list slots)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A SHA-256 digest: what every identifier becomes before it is matched.
DIGEST_SIZE = 32


@dataclass(frozen=True, eq=False)
class KeyDigests:
    """Row i of ``matrix`` is record i's digest where ``present[i]``, zeros where the record
    has no such key (empty, invalid, or a repeat that was dropped)."""

    matrix: np.ndarray  # (n, DIGEST_SIZE) uint8
    present: np.ndarray  # (n,) bool

    @classmethod
    def missing(cls, n: int) -> KeyDigests:
        """n records, none with the key."""
        return cls(np.zeros((n, DIGEST_SIZE), dtype=np.uint8), np.zeros(n, dtype=bool))

    @classmethod
    def of(cls, digests: Sequence[bytes | None]) -> KeyDigests:
        """From one digest or None per record."""
        out = cls.missing(len(digests))
        for i, d in enumerate(digests):
            if d is not None:
                out.set(i, d)
        return out

    def set(self, row: int, digest: bytes) -> None:
        self.matrix[row] = np.frombuffer(digest, dtype=np.uint8)
        self.present[row] = True

    def as_list(self) -> list[bytes | None]:
        """One digest or None per record: the inverse of :meth:`of`."""
        return [
            bytes(row) if present else None
            for row, present in zip(self.matrix, self.present, strict=True)
        ]

    def select(self, rows: np.ndarray) -> KeyDigests:
        """The records at ``rows``, in that order (a copy)."""
        return KeyDigests(np.ascontiguousarray(self.matrix[rows]), self.present[rows])

    def __len__(self) -> int:
        return len(self.present)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, KeyDigests)
            and np.array_equal(self.present, other.present)
            and np.array_equal(self.matrix, other.matrix)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays: not hashable


def drop_repeats(digests: KeyDigests) -> np.ndarray:
    """Blank every digest an earlier row already holds, in place: the first occurrence
    wins. Returns the rows blanked, in order.

    Only rows whose first 8 bytes occur more than once go through the per-row set; the rest
    are told apart by a NumPy sort of those 8 bytes.
    """
    rows = np.flatnonzero(digests.present)
    if len(rows) < 2:
        return np.empty(0, dtype=np.int64)
    heads = np.ascontiguousarray(digests.matrix[rows, :8]).view(np.uint64).ravel()
    order = np.argsort(heads, kind="stable")
    ranked = heads[order]
    same = ranked[1:] == ranked[:-1]
    repeated = np.zeros(len(rows), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    known: set[bytes] = set()
    dropped = []
    for i in rows[np.sort(order[repeated])].tolist():
        d = digests.matrix[i].tobytes()
        if d in known:
            dropped.append(i)
        else:
            known.add(d)
    blanked = np.asarray(dropped, dtype=np.int64)
    digests.matrix[blanked] = 0
    digests.present[blanked] = False
    return blanked
