"""Reading and writing the parties' tables: CSV (.csv, .csv.gz), Parquet, pandas, Arrow.

Every problem with a user's table is an :class:`~cleanroom.errors.InputError` whose
message names the table (its path, ``<DataFrame>`` or ``<Arrow table>``), the column and,
where there is one, the 1-based data row (the first row after a CSV header is row 1).
Messages never contain a full identifier: parser messages are passed through
:func:`~cleanroom.identifiers.mask_in_text` and CSV rows are never echoed.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cleanroom.errors import InputError
from cleanroom.identifiers import mask_in_text, to_string_array

__all__ = [
    "ALL_SEGMENT",
    "CSV_EXTENSIONS",
    "PARQUET_EXTENSIONS",
    "boolean_column",
    "load_table",
    "segment_column",
    "source_name",
    "string_column",
    "write_table",
]

CSV_EXTENSIONS: tuple[str, ...] = (".csv", ".csv.gz")
PARQUET_EXTENSIONS: tuple[str, ...] = (".parquet", ".pq")
ALL_SEGMENT = "all"
TABLE_PREFIX = "table:"  # a catalog table as a list source (--engine spark only)

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_MAX_SHOWN = 40  # characters of a bad (non-identifier) value quoted in a message


def source_name(source: object) -> str:
    """How a table is named in messages: its path, ``<DataFrame>`` or ``<Arrow table>``."""
    if isinstance(source, pd.DataFrame):
        return "<DataFrame>"
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return "<Arrow table>"
    if isinstance(source, (str, os.PathLike)):
        return str(os.fspath(source))
    return f"<{type(source).__name__}>"


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_EXTENSIONS):
        return "csv"
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    return None


def _reason(exc: BaseException) -> str:
    """A parser's reason, one line, identifiers masked."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return mask_in_text(text)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# ------------------------------------------------------------------------ reading


def load_table(
    source: str | os.PathLike[str] | pd.DataFrame | pa.Table,
    *,
    required: Sequence[str] = (),
    role: str = "input",
) -> pa.Table:
    """Load a party's table and check that the *required* columns are present.

    *source* is a path (``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``, chosen by the
    extension), a pandas DataFrame or an Arrow table. CSV columns are all read as
    strings (so phone numbers keep their ``+`` and leading zeros) with empty cells as
    nulls; Parquet, DataFrame and Arrow columns keep their types, and the caller casts
    (:func:`string_column`, :func:`boolean_column`, :func:`segment_column`).

    *role* (``"brand CRM"``, ``"partner audience"``) opens every message, e.g.
    ``brand CRM file not found: crm.csv``.
    """
    if isinstance(source, pd.DataFrame):
        table = _from_pandas(source, role)
        name = "<DataFrame>"
    elif isinstance(source, pa.RecordBatch):
        table = pa.Table.from_batches([source])
        name = "<Arrow table>"
    elif isinstance(source, pa.Table):
        table = source
        name = "<Arrow table>"
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        table = _read_path(Path(name), role)
    else:
        raise InputError(
            f"{role}: cannot read a {type(source).__name__}; give a path to a CSV or "
            "Parquet file, a pandas DataFrame or an Arrow table"
        )
    _check_required(table, required, role, name)
    return table


def _from_pandas(df: pd.DataFrame, role: str) -> pa.Table:
    names = [str(c) for c in df.columns]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise InputError(f"{role} <DataFrame>: duplicate column name(s) {duplicated}")
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{role} <DataFrame>: cannot convert to Arrow: {_reason(exc)}") from None


def _read_path(path: Path, role: str) -> pa.Table:
    fmt = _format_of(path)
    if fmt is None:
        raise InputError(
            f"{role} file {path}: unknown file extension; use one of "
            f"{', '.join(CSV_EXTENSIONS + PARQUET_EXTENSIONS)}"
        )
    if not path.exists():
        raise InputError(f"{role} file not found: {path}")
    if path.is_dir():
        raise InputError(f"{role} file {path} is a directory, not a file")
    try:
        if fmt == "csv":
            return _read_csv(path, role)
        return pq.read_table(path)
    except InputError:
        raise
    except PermissionError:
        raise InputError(f"{role} file {path}: permission denied") from None
    except (pa.ArrowException, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise InputError(
            f"{role} file {path}: unreadable or corrupt {kind} file: {_reason(exc)}"
        ) from None


def _csv_header(path: Path) -> list[str]:
    """The header row, read from the first line only (the data may be huge or bad)."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        line = fh.readline(1 << 20)
    text = line.decode("utf-8-sig")
    row = next(csv.reader([text]), None)
    return [] if row is None else row


def _read_csv(path: Path, role: str) -> pa.Table:
    header = _csv_header(path)
    if not header:
        raise InputError(f"{role} file {path}: empty CSV file (no header row)")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise InputError(f"{role} file {path}: duplicate column name(s) {duplicated}")
    bad_rows: list[tuple[int | None, int, int]] = []

    def on_invalid_row(row: Any) -> str:
        # Record where and how, never the row's text (it holds identifiers).
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "error"

    def read(use_threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=use_threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        return read(use_threads=True)
    except pa.ArrowInvalid:
        if not bad_rows:
            raise
    # The threaded reader does not know line numbers; find the row single-threaded.
    bad_rows.clear()
    with contextlib.suppress(pa.ArrowInvalid):
        read(use_threads=False)
    number, expected, actual = bad_rows[0] if bad_rows else (None, 0, 0)
    # pyarrow counts physical lines from 1, the header being line 1.
    where = f"data row {number - 1}" if number else "a row"
    raise InputError(
        f"{role} file {path}: {where} has {actual} field(s), expected {expected} "
        "(check for an unquoted comma or a missing delimiter)"
    )


def _check_required(table: pa.Table, required: Sequence[str], role: str, name: str) -> None:
    available = list(table.column_names)
    missing = [c for c in required if c not in available]
    if not missing:
        return
    hints = []
    folded = {c.strip().lower(): c for c in available}
    for c in missing:
        near = folded.get(c.strip().lower())
        if near is not None:
            hints.append(f"{c!r} -> did you mean {near!r}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise InputError(
        f"{role} {name}: missing required column(s) {', '.join(repr(c) for c in missing)}"
        f"{hint}; available columns: {', '.join(repr(c) for c in available) or 'none'}"
    )


# ---------------------------------------------------------------------- columns


def _column(table: pa.Table, column: str, source_name: str) -> pa.Array:
    if column not in table.column_names:
        raise InputError(
            f"{source_name}: no column {column!r}; available columns: "
            f"{', '.join(repr(c) for c in table.column_names) or 'none'}"
        )
    chunked = table.column(column)
    return chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)


def string_column(table: pa.Table, column: str, source_name: str = "<table>") -> pa.Array:
    """Column *column* as an Arrow string array, nulls kept.

    Integers become their digits and whole-number floats lose their ``.0`` (a phone
    column that pandas stored as float64 because of missing values), so identifiers
    survive a round trip through a typed file.
    """
    values = _column(table, column, source_name)
    try:
        return to_string_array(values)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputError(
            f"{source_name}: column {column!r} of type {values.type} cannot be read as "
            f"text: {_reason(exc)}"
        ) from None


def boolean_values(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(truth, bad)`` per row: booleans, integers 0/1 (also 0.0/1.0), or the strings
    ``true/false``, ``1/0``, ``yes/no`` in any case, whitespace ignored; anything else,
    or a missing value, is bad."""
    t = values.type
    if pa.types.is_boolean(t):
        truth = values
        bad = pc.is_null(values)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        is_one = pc.equal(values, 1)
        truth = is_one
        bad = pc.invert(pc.or_(is_one, pc.equal(values, 0)))
    else:
        text = to_string_array(values)
        text = pc.utf8_lower(pc.utf8_trim_whitespace(text))
        truth = pc.is_in(text, value_set=pa.array(_TRUE))
        bad = pc.invert(pc.or_(truth, pc.is_in(text, value_set=pa.array(_FALSE))))
    bad_np = np.asarray(pc.fill_null(bad, True).to_numpy(zero_copy_only=False), dtype=bool)
    truth_np = np.asarray(pc.fill_null(truth, False).to_numpy(zero_copy_only=False), dtype=bool)
    return truth_np, bad_np


def bad_boolean_error(
    source_name: str, column: str, row: int, value: object, bad: int
) -> InputError:
    """The error for a non-boolean attribute value at 0-based data row *row*."""
    shown = "an empty value" if value is None else f"value {_shown(value)}"
    return InputError(
        f"{source_name}: column {column!r} data row {row + 1}: {shown} is not a "
        f"boolean (expected true/false, 1/0 or yes/no); {bad} bad row(s) in total"
    )


def boolean_column(table: pa.Table, column: str, source_name: str) -> np.ndarray:
    """Column *column* as a NumPy bool array (see :func:`boolean_values`).

    A bad value raises :class:`InputError` naming the table, the column, the first bad
    1-based data row and its value.
    """
    values = _column(table, column, source_name)
    truth, bad = boolean_values(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise bad_boolean_error(source_name, column, row, values[row].as_py(), int(bad.sum()))
    return truth


def segment_labels(values: pa.Array) -> pa.Array:
    """Trimmed labels; a missing or empty one means ``"all"``."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(
        pc.fill_null(pc.equal(pc.utf8_length(trimmed), 0), True), ALL_SEGMENT, trimmed
    )


def check_segment_column_configured(
    column: str | None, allowed: Sequence[str], rows: int, source_name: str
) -> None:
    """Without a segment column every row is in ``"all"``, which the contract must allow."""
    if column is None and allowed and ALL_SEGMENT not in allowed and rows:
        raise InputError(
            f"{source_name}: no segment column is configured, so every row is in "
            f"segment {ALL_SEGMENT!r}, but the contract's segments "
            f"{list(allowed)} do not include it; configure the segment column"
        )


def bad_segment_error(
    source_name: str, column: str, row: int, raw: object, allowed: Sequence[str], bad: int
) -> InputError:
    """The error for a label outside the contract's segments at 0-based data row *row*."""
    if raw is None or not str(raw).strip():
        what = f"has no label (which means {ALL_SEGMENT!r})"
    else:
        what = f"has label {_shown(str(raw).strip())}"
    return InputError(
        f"{source_name}: column {column!r} data row {row + 1} {what}, which is "
        f"not one of the contract's segments {list(allowed)}; {bad} row(s) in total"
    )


def segment_column(
    table: pa.Table,
    column: str | None,
    allowed: Sequence[str],
    source_name: str,
) -> list[str]:
    """The segment label of every row.

    A missing or empty label (after trimming whitespace) means ``"all"``; with
    ``column=None`` every row is in ``"all"``. Labels are case-sensitive.

    When *allowed* (the contract's ``[release] segments``) is empty, any label is
    accepted. When it is not, every label must be one of them, and so must ``"all"``
    if any row's label is empty: an unlisted label would put rows in a segment the
    other party never agreed to. A bad label raises :class:`InputError` naming the
    table, the column, the first bad 1-based data row, the label and the allowed ones.
    """
    n = table.num_rows
    check_segment_column_configured(column, allowed, n, source_name)
    if column is None:
        return [ALL_SEGMENT] * n
    values = string_column(table, column, source_name)
    labels = segment_labels(values)
    if allowed:
        ok = pc.is_in(labels, value_set=pa.array(list(allowed), pa.string()))
        bad = ~np.asarray(pc.fill_null(ok, False).to_numpy(zero_copy_only=False), dtype=bool)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise bad_segment_error(
                source_name, column, row, values[row].as_py(), allowed, int(bad.sum())
            )
    return [str(v) for v in labels.to_pylist()]


# ------------------------------------------------------------------------ writing


def write_table(table_or_df: pa.Table | pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table as CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``).

    The file is written next to its destination under a temporary name, flushed to
    disk and then renamed over *path* (``os.replace``), so a reader sees either the old
    file or the complete new one, never half of it; on failure the temporary file is
    removed and *path* is untouched. Like any ``mkstemp`` file, the result is readable
    by its owner only (these files hold personal data).
    """
    target = Path(os.fspath(path))
    fmt = _format_of(target)
    if fmt is None:
        raise InputError(
            f"output file {target}: unknown file extension; use one of "
            f"{', '.join(CSV_EXTENSIONS + PARQUET_EXTENSIONS)}"
        )
    if isinstance(table_or_df, pd.DataFrame):
        table = _from_pandas(table_or_df, "output")
    elif isinstance(table_or_df, pa.Table):
        table = table_or_df
    else:
        raise InputError(
            f"output file {target}: cannot write a {type(table_or_df).__name__}; "
            "give a pandas DataFrame or an Arrow table"
        )
    directory = target.parent
    if not directory.is_dir():
        raise InputError(f"output file {target}: directory {directory} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"output file {target}: cannot write: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            if fmt == "parquet":
                pq.write_table(table, raw)
            elif target.name.lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                    _write_csv(table, gz)
            else:
                _write_csv(table, raw)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise InputError(
                f"output file {target}: cannot write: {exc.strerror or _reason(exc)}"
            ) from None
        raise
    _fsync_directory(directory)


def _write_csv(table: pa.Table, sink: Any) -> None:
    pacsv.write_csv(table, sink)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows it (best effort)."""
    if os.name != "posix":  # pragma: no cover
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
