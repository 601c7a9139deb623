"""Reading and writing the parties' tables: CSV (.csv, .csv.gz), Parquet, pandas, Arrow.

Every problem with a user's table is an :class:`~cleanroom.errors.InputError` whose
message names the table (its path, ``<DataFrame>`` or ``<Arrow table>``), the column and,
where there is one, the 1-based data row (the first row after a CSV header is row 1).
Messages never contain a full identifier: parser messages are passed through
:func:`~cleanroom.identifiers.masking.mask_in_text` and CSV rows are never echoed.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cleanroom.arrow_values import booleans, number_scalar, numpy_mask, string_scalar, strings
from cleanroom.errors import InputError
from cleanroom.identifiers.masking import mask_in_text
from cleanroom.identifiers.normalize import to_string_array

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ALL_SEGMENT",
    "CSV_EXTENSIONS",
    "DELIMITER_CANDIDATES",
    "PARQUET_EXTENSIONS",
    "CsvDialect",
    "boolean_column",
    "csv_dialect",
    "is_dataframe",
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

#: Delimiters tried, in this order of preference, when none is given.
DELIMITER_CANDIDATES: tuple[str, ...] = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024  # the sample the delimiter is sniffed from
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DELIMITER_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV list is written: its delimiter (``None``: sniffed from the file's first
    lines among :data:`DELIMITER_CANDIDATES`) and its text encoding (a Python codec name).

    ``style`` says where the user sets them, so that an error's fix names the right
    thing: ``"cli"`` (``--delimiter``), ``"toml"`` (``[crm] delimiter`` in
    ``brand.toml``) or ``"python"`` (``delimiter=``).
    """

    delimiter: str | None = None
    encoding: str = "utf-8"
    style: str = "python"

    def setting(self, name: str) -> str:
        """Where *name* (``delimiter`` or ``encoding``) is set."""
        return {"cli": f"--{name}", "toml": f"[crm] {name}", "python": f"{name}="}[self.style]

    def fix(self, name: str, value: str) -> str:
        """How to set *name* to *value*, as the user would write it."""
        shown = "\\t" if value == "\t" else value
        if self.style == "toml":
            return f'{name} = "{shown}" in [crm]'
        if self.style == "python":
            return f"{name}={shown!r}"
        return f"--{name} '{shown}'"


def csv_dialect(
    delimiter: str | None = None, encoding: str | None = None, *, style: str = "python"
) -> CsvDialect:
    """Check a user's delimiter and encoding and return the :class:`CsvDialect`.

    The delimiter is one character other than a quote or a line break, or one of the
    names ``comma``, ``semicolon``, ``tab`` (also written ``\\t``) and ``pipe``; ``None``
    or an empty string means "detect it". The encoding is any codec Python knows
    (``utf-8``, the default; ``latin-1``; ``cp1252`` for files saved by Excel on Windows).
    """
    unchecked = CsvDialect(style=style)
    chosen: str | None = None
    if delimiter:
        chosen = _DELIMITER_ALIASES.get(delimiter.lower(), delimiter)
        if len(chosen) != 1 or chosen in '"\r\n':
            raise InputError(
                f"{unchecked.setting('delimiter')} {delimiter!r}: not a delimiter; give one "
                "character such as ',' or ';', or tab (leave it out to detect it from the file)"
            )
    name = "utf-8" if encoding is None or not encoding.strip() else encoding.strip()
    try:
        codecs.lookup(name)
    except LookupError:
        raise InputError(
            f"{unchecked.setting('encoding')} {encoding!r}: unknown encoding; use utf-8 (the "
            "default), latin-1, or cp1252 for files saved by Excel on Windows"
        ) from None
    return CsvDialect(chosen, name, style)


def is_dataframe(value: object) -> TypeGuard[pd.DataFrame]:
    """A pandas DataFrame, told without importing pandas (about 0.4 s of every CLI's
    start-up): whoever holds a DataFrame has imported pandas already."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def source_name(source: object) -> str:
    """How a table is named in messages: its path, ``<DataFrame>`` or ``<Arrow table>``."""
    if is_dataframe(source):
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


def release_unused_memory() -> None:
    """Give back to the operating system what Arrow's memory pool keeps of freed buffers
    once a list has been read and digested: its allocator (mimalloc or jemalloc) holds
    those pages otherwise (figures in docs/performance.md, memory)."""
    pa.default_memory_pool().release_unused()


def load_table(
    source: str | os.PathLike[str] | pd.DataFrame | pa.Table,
    *,
    required: Sequence[str] = (),
    role: str = "input",
    dialect: CsvDialect | None = None,
) -> pa.Table:
    """Load a party's table and check that the *required* columns are present.

    *source* is a path (``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``, chosen by the
    extension), a pandas DataFrame or an Arrow table. CSV columns are all read as
    strings (so phone numbers keep their ``+`` and leading zeros) with empty cells as
    nulls; Parquet, DataFrame and Arrow columns keep their types, and the caller casts
    (:func:`string_column`, :func:`boolean_column`, :func:`segment_column`).

    *role* (``"brand CRM"``, ``"partner audience"``) opens every message, e.g.
    ``brand CRM file not found: crm.csv``. *dialect* says how a CSV file is written (by
    default: UTF-8, the delimiter sniffed from its first lines).
    """
    dialect = dialect or CsvDialect()
    if is_dataframe(source):
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
        table = _read_path(Path(name), role, dialect)
    else:
        raise InputError(
            f"{role}: cannot read a {type(source).__name__}; give a path to a CSV or "
            "Parquet file, a pandas DataFrame or an Arrow table"
        )
    _check_required(table, required, role, name, dialect)
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


def _read_path(path: Path, role: str, dialect: CsvDialect) -> pa.Table:
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
            return _read_csv(path, role, dialect)
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


def _open_binary(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _sample_lines(path: Path) -> list[str]:
    """The file's first complete lines (at most :data:`_SNIFF_BYTES`), decoded leniently:
    the sample only has to show the delimiter, the header is decoded strictly later."""
    with _open_binary(path) as fh:
        sample = fh.read(_SNIFF_BYTES + 1)
    cut = len(sample) > _SNIFF_BYTES
    lines: list[str] = sample[:_SNIFF_BYTES].decode("latin-1").splitlines(keepends=True)
    return lines[:-1] if cut and len(lines) > 1 else lines


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The candidate delimiter that splits the header into the most columns while every
    sampled row has as many fields; failing that, the one that splits the header most;
    a comma for a one-column file."""
    best: tuple[bool, int, int] | None = None
    chosen = ","
    for preference, candidate in enumerate(DELIMITER_CANDIDATES):
        rows = [r for r in csv.reader(lines, delimiter=candidate) if r]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (all(len(r) == width for r in rows[1:]), width, -preference)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


def _delimiter_of(path: Path, dialect: CsvDialect) -> str:
    return dialect.delimiter or sniff_delimiter(_sample_lines(path))


def _csv_header(path: Path, role: str, dialect: CsvDialect, delimiter: str) -> list[str]:
    """The header row, read from the first line only (the data may be huge or bad)."""
    with _open_binary(path) as fh:
        line = fh.readline(1 << 20)
    encoding = "utf-8-sig" if codecs.lookup(dialect.encoding).name == "utf-8" else dialect.encoding
    try:
        text = line.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{role} file {path}: the header row is not valid {dialect.encoding} "
            f"(byte 0x{line[exc.start]:02x} at position {exc.start + 1}); "
            f"{_encoding_fix(dialect)}"
        ) from None
    row = next(csv.reader([text], delimiter=delimiter), None)
    return [] if row is None else row


def _encoding_fix(dialect: CsvDialect) -> str:
    if codecs.lookup(dialect.encoding).name == "utf-8":
        return (
            "save the file as UTF-8, or give its encoding: "
            f"{dialect.fix('encoding', 'cp1252')} for Excel on Windows, "
            f"{dialect.fix('encoding', 'latin-1')} for ISO 8859-1"
        )
    return (
        f"save the file as {dialect.encoding}, or give its encoding with "
        f"{dialect.setting('encoding')}"
    )


def _first_undecodable(
    path: Path, dialect: CsvDialect, delimiter: str
) -> tuple[int, str, int] | None:
    """(1-based data row, column, byte) of the first value that is not valid text in the
    dialect's encoding, found with Python's csv reader (so quoted line breaks count right)."""
    with _open_binary(path) as raw:
        text = io.TextIOWrapper(
            raw, encoding=dialect.encoding, errors="surrogateescape", newline=""
        )
        reader = csv.reader(text, delimiter=delimiter)
        header = next(reader, [])
        for number, row in enumerate(reader, start=1):
            for j, value in enumerate(row):
                bad = next((ch for ch in value if "\udc80" <= ch <= "\udcff"), None)
                if bad is not None:
                    column = header[j] if j < len(header) else f"field {j + 1}"
                    return number, column, ord(bad) - 0xDC00
    return None


def _read_csv(path: Path, role: str, dialect: CsvDialect) -> pa.Table:
    delimiter = _delimiter_of(path, dialect)
    header = _csv_header(path, role, dialect, delimiter)
    if not header:
        raise InputError(f"{role} file {path}: empty CSV file (no header row)")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise InputError(f"{role} file {path}: duplicate column name(s) {duplicated}")
    bad_rows: list[tuple[int | None, int, int]] = []
    transcode = codecs.lookup(dialect.encoding).name != "utf-8"

    def on_invalid_row(row: Any) -> Literal["skip", "error"]:
        # Record where and how, never the row's text (it holds identifiers).
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "error"

    def read(use_threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                use_threads=use_threads, encoding=dialect.encoding if transcode else "utf8"
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid_row
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        return read(use_threads=True)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if not bad_rows:
            undecodable = _first_undecodable(path, dialect, delimiter)
            if undecodable is None:
                if isinstance(exc, UnicodeDecodeError):
                    raise InputError(
                        f"{role} file {path}: not valid {dialect.encoding} text; "
                        f"{_encoding_fix(dialect)}"
                    ) from None
                raise
            number, column, byte = undecodable
            raise InputError(
                f"{role} file {path}: data row {number}, column {column!r}: not valid "
                f"{dialect.encoding} text (byte 0x{byte:02x}); {_encoding_fix(dialect)}"
            ) from None
    # The threaded reader does not know line numbers; find the row single-threaded.
    bad_rows.clear()
    with contextlib.suppress(pa.ArrowInvalid):
        read(use_threads=False)
    line, expected, actual = bad_rows[0] if bad_rows else (None, 0, 0)
    # pyarrow counts physical lines from 1, the header being line 1.
    where = f"data row {line - 1}" if line else "a row"
    if (other := _other_delimiter(header)) is not None:
        raise InputError(
            f"{role} file {path}: {where} has {actual} field(s), expected {expected}: the "
            f"header was read as one column, but it contains {_DELIMITER_NAMES[other]}s "
            f"{other!r}; give the file's delimiter with {dialect.fix('delimiter', other)}"
        )
    name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    how = "as given" if dialect.delimiter else "detected from the file"
    raise InputError(
        f"{role} file {path}: {where} has {actual} field(s), expected {expected} "
        f"(the delimiter is {name} {delimiter!r}, {how}): quote values that contain it, "
        f"or give the file's delimiter with {dialect.setting('delimiter')}"
    )


def _other_delimiter(header: Sequence[str]) -> str | None:
    """The candidate delimiter inside a one-column header: the file was split on the wrong
    character."""
    if len(header) != 1:
        return None
    return next((d for d in DELIMITER_CANDIDATES if d in header[0]), None)


def _check_required(
    table: pa.Table, required: Sequence[str], role: str, name: str, dialect: CsvDialect
) -> None:
    available = list(table.column_names)
    missing = [c for c in required if c not in available]
    if not missing:
        return
    if (other := _other_delimiter(available)) is not None:
        raise InputError(
            f"{role} {name}: missing required column(s) "
            f"{', '.join(repr(c) for c in missing)}: the header was read as one column, "
            f"but it contains {_DELIMITER_NAMES[other]}s {other!r}; give the file's "
            f"delimiter with {dialect.fix('delimiter', other)}"
        )
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


def _column(table: pa.Table, column: str, source_name: str) -> pa.Array[Any]:
    if column not in table.column_names:
        raise InputError(
            f"{source_name}: no column {column!r}; available columns: "
            f"{', '.join(repr(c) for c in table.column_names) or 'none'}"
        )
    chunked = table.column(column)
    combined = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    return cast("pa.Array[Any]", combined)


def string_column(table: pa.Table, column: str, source_name: str = "<table>") -> pa.Array[Any]:
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


def boolean_values(values: pa.Array[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(truth, bad)`` per row: booleans, integers 0/1 (also 0.0/1.0), or the strings
    ``true/false``, ``1/0``, ``yes/no`` in any case, whitespace ignored; anything else,
    or a missing value, is bad."""
    t = values.type
    truth: Any
    bad: Any
    if pa.types.is_boolean(t):
        truth = values
        bad = pc.is_null(values)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        is_one = pc.equal(values, number_scalar(1, t))
        truth = is_one
        bad = pc.invert(pc.or_(is_one, pc.equal(values, number_scalar(0, t))))
    else:
        text = to_string_array(values)
        text = pc.utf8_lower(pc.utf8_trim_whitespace(text))
        truth = pc.is_in(text, value_set=strings(_TRUE))
        bad = pc.invert(pc.or_(truth, pc.is_in(text, value_set=strings(_FALSE))))
    return numpy_mask(truth, missing=False), numpy_mask(bad, missing=True)


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


def segment_labels(values: pa.Array[Any]) -> pa.Array[Any]:
    """Trimmed labels; a missing or empty one means ``"all"``."""
    trimmed: Any = pc.utf8_trim_whitespace(values)
    empty = numpy_mask(
        pc.equal(pc.utf8_length(trimmed), number_scalar(0, pa.int32())), missing=True
    )
    labels: pa.Array[Any] = pc.if_else(booleans(empty), string_scalar(ALL_SEGMENT), trimmed)
    return labels


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
        ok = pc.is_in(labels, value_set=strings(allowed))
        bad = ~numpy_mask(ok, missing=False)
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
    if is_dataframe(table_or_df):
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
