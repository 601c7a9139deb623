"""Readers and writers for the parties' tables (CSV, Parquet, pandas, Arrow)."""

from __future__ import annotations

from cleanroom.io.tables import (
    ALL_SEGMENT,
    CSV_EXTENSIONS,
    PARQUET_EXTENSIONS,
    CsvDialect,
    boolean_column,
    csv_dialect,
    load_table,
    segment_column,
    source_name,
    string_column,
    write_table,
)

__all__ = [
    "ALL_SEGMENT",
    "CSV_EXTENSIONS",
    "PARQUET_EXTENSIONS",
    "CsvDialect",
    "boolean_column",
    "csv_dialect",
    "load_table",
    "segment_column",
    "source_name",
    "string_column",
    "write_table",
]
