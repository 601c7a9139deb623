"""Digesting whole identifier columns, with the input-quality summary
(docs/reference/contract.md, normalization profiles; docs/design-decisions.md, input
quality stays local).

Counting rules, per key-kind column:

``rows``
    every row of the column, empty or not.
``valid``
    non-empty values that normalize (or decode) to a digest, duplicates included.
``invalid``
    non-empty values that do not; up to three of them are kept, masked, as
    ``rejected_examples``.
``duplicates``
    valid values whose digest already appeared earlier (in this column, or in the
    ``seen`` set the caller passes in). Their slot is returned as ``None``: the first
    occurrence wins.

An empty value (``None``, ``""``, whitespace only) means "this record has no such key";
it counts as a row but neither as valid nor as invalid. Hence
``rows == valid + invalid + empty`` and the unique digests number
``valid - duplicates``. The invalid fraction checked against the contract's
``max_invalid_fraction`` is ``invalid / (valid + invalid)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cleanroom.errors import ContractError, InputError
from cleanroom.identifiers.digests import KeyDigests, drop_repeats
from cleanroom.identifiers.masking import mask
from cleanroom.identifiers.normalize import digest_array, to_string_array

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["MAX_EXAMPLES", "KeyQuality", "check_invalid_fraction", "digest_column"]

MAX_EXAMPLES = 3
#: Rows digested at a time by :func:`digest_column`.
SLICE_ROWS = 1 << 17


@dataclass
class KeyQuality:
    """Input-quality counts of one identifier column (see the module docstring)."""

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    rejected_examples: list[str] = field(default_factory=list)

    @property
    def empty(self) -> int:
        """Rows without this key."""
        return self.rows - self.valid - self.invalid

    @property
    def unique(self) -> int:
        """Distinct valid digests kept (``valid - duplicates``)."""
        return self.valid - self.duplicates

    @property
    def invalid_fraction(self) -> float:
        """``invalid / (valid + invalid)``; 0.0 when the column has no non-empty value."""
        present = self.valid + self.invalid
        return self.invalid / present if present else 0.0

    def to_dict(self) -> dict[str, int]:
        """This party's input-quality summary (kept locally): rows, valid, invalid, duplicates."""
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
        }


def digest_column(
    values: Sequence[str | None] | pa.Array[Any] | pa.ChunkedArray[Any] | pd.Series,
    kind: str,
    profile: str,
    region: str,
    *,
    deduplicate: bool = True,
) -> tuple[KeyDigests, KeyQuality]:
    """Digest every value of one identifier column and count its quality.

    Returns the packed digests, one row per input row, present unless the value is empty,
    invalid, or a duplicate of an earlier digest. With ``deduplicate=False`` repeats are
    kept (and not counted): a caller that coalesces several columns of one key
    de-duplicates the coalesced column with :func:`drop_repeats`.

    Raises :class:`~cleanroom.errors.InputError` for an unknown key kind and
    :class:`~cleanroom.errors.ContractError` for an unknown profile or region.
    """
    column = to_string_array(values)
    n = len(column)
    digests = KeyDigests.missing(n)
    quality = KeyQuality(rows=n)
    # A slice at a time: each normalisation step copies what it is given, so the transient
    # memory is a few slices', not a few columns' (at 10^6 emails, about 200 MiB less).
    for start in range(0, max(n, 1), SLICE_ROWS):
        part, empty, invalid, trimmed = digest_array(
            column.slice(start, SLICE_ROWS), kind, profile, region
        )
        digests.matrix[start : start + len(part)] = part.matrix
        digests.present[start : start + len(part)] = part.present
        n_invalid = int(invalid.sum())
        quality.valid += len(part) - int(empty.sum()) - n_invalid
        quality.invalid += n_invalid
        for i in np.flatnonzero(invalid)[: MAX_EXAMPLES - len(quality.rejected_examples)]:
            quality.rejected_examples.append(mask(trimmed[int(i)].as_py()))

    if deduplicate:
        quality.duplicates = len(drop_repeats(digests))
    return digests, quality


def check_invalid_fraction(
    quality: Mapping[str, KeyQuality],
    max_invalid_fraction: float,
    source: str,
    columns: Mapping[str, str] | None = None,
) -> None:
    """Fail when a column's invalid fraction exceeds the contract's limit.

    *quality* maps key kind to its :class:`KeyQuality`; *columns* maps key kind to
    the column name in *source* (the kind itself when absent). Every offending column
    is named in one :class:`~cleanroom.errors.InputError`, with its fraction, the limit
    and up to three masked examples. A column whose values are all empty has no
    fraction and never fails here.
    """
    limit = _check_limit(max_invalid_fraction)
    columns = columns or {}
    problems: list[str] = []
    for kind, q in quality.items():
        present = q.valid + q.invalid
        if present == 0 or q.invalid / present <= limit:
            continue
        column = columns.get(kind, kind)
        examples = ", ".join(q.rejected_examples) if q.rejected_examples else "none kept"
        problems.append(
            f"column {column!r} ({kind}): {q.invalid} of {present} non-empty values are "
            f"invalid ({q.invalid / present:.1%}), above max_invalid_fraction = {limit:g}; "
            f"examples (masked): {examples}"
        )
    if problems:
        raise InputError(
            f"{source}: too many invalid identifiers; "
            + "; ".join(problems)
            + ". Fix the values or the column mapping, or raise [release] "
            "max_invalid_fraction in the contract."
        )


def _check_limit(value: Any) -> float:
    try:
        limit = float(value)
    except (TypeError, ValueError):
        limit = float("nan")
    if not (0.0 <= limit <= 1.0) or isinstance(value, bool):
        raise ContractError(
            f"contract setting [release] max_invalid_fraction = {value!r} must be a number "
            "between 0 and 1"
        )
    return limit
