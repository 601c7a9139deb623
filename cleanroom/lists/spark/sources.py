"""Reading a list's source into a Spark frame: Parquet, CSV or a catalog table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cleanroom.errors import InputError
from cleanroom.lists.tables import TABLE_PREFIX

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def read_source(spark: SparkSession, source: str | DataFrame) -> tuple[DataFrame, str]:
    """The frame and its name: a Parquet file or directory, a CSV file (header row, every
    column text), ``table:NAME`` from the catalog, or a Spark DataFrame as it is."""

    if not isinstance(source, str):
        return source, "<Spark DataFrame>"
    return _read(spark, source), source


def _read(spark: SparkSession, source: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    try:
        if source.startswith(TABLE_PREFIX):
            return spark.table(source[len(TABLE_PREFIX) :])
        if "://" not in source and not os.path.exists(source):
            raise InputError(f"{source}: no such file or directory")
        if source.lower().endswith((".csv", ".csv.gz")):
            return spark.read.csv(source, header=True, inferSchema=False)
        return spark.read.parquet(source)
    except AnalysisException as exc:
        raise InputError(f"{source}: Spark cannot read it: {str(exc).splitlines()[0]}") from None


def require_columns(frame: DataFrame, required: Sequence[str], source: str, role: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: the {role} has no column {missing[0]!r}; available columns: "
            f"{', '.join(repr(c) for c in frame.columns) or 'none'}"
        )
