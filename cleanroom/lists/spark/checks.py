"""The prepare job's checks on the digested frame: input quality, segment labels and
attribute values, and the de-duplication (first occurrence in read order wins, a dropped
repeat counted against the column that supplied it), as the local implementation does."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from cleanroom.contract import Contract
from cleanroom.identifiers.quality import MAX_EXAMPLES, KeyQuality, check_invalid_fraction
from cleanroom.lists.spark.kernels import ROW, Plan, hash_batches
from cleanroom.lists.tables import bad_boolean_error, bad_segment_error

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def check_digested(
    digested: DataFrame, plan: Plan, contract: Contract, read: DataFrame
) -> dict[str, KeyQuality]:
    """The input quality, then the local engine's errors for segment labels and attribute
    values, naming the first bad data row in read order. One pass over the digested frame
    counts everything; a bad row costs further jobs only when there is one."""
    from pyspark.sql import functions as F

    # name -> (the condition of a bad row, the source column it names)
    conditions = {f"a{j}": (F.col(f"bad_a{j}"), c) for j, c in enumerate(plan.attribute_columns)}
    if plan.segment_column is not None:
        conditions = {"segment": (F.col("segment") < 0, plan.segment_column), **conditions}
    aggregates = [F.count("*").alias("rows")]
    for i in range(len(plan.pairs)):
        aggregates += [
            F.count(f"d{i}").alias(f"valid{i}"),
            F.sum(F.col(f"invalid{i}").cast("long")).alias(f"invalid{i}"),
        ]
    for name, (condition, _) in conditions.items():
        aggregates += [
            F.min(F.when(condition, F.col(ROW))).alias(f"first_{name}"),
            F.sum(condition.cast("long")).alias(f"bad_{name}"),
        ]
    totals = digested.agg(*aggregates).collect()[0]
    qualities = _qualities(digested, plan, contract, totals)
    for name, (_, column) in conditions.items():
        bad = totals[f"bad_{name}"] or 0
        if not bad:
            continue
        row_id = totals[f"first_{name}"]
        row = digested.where(F.col(ROW) < row_id).count()
        value = _raw_value(read, column, row_id)
        if name == "segment":
            raise bad_segment_error(plan.source, column, row, value, plan.segments, bad)
        raise bad_boolean_error(plan.source, column, row, value, bad)
    return qualities


def _qualities(
    digested: DataFrame, plan: Plan, contract: Contract, totals: Any
) -> dict[str, KeyQuality]:
    """Each key column's quality from the pass's counts; too many invalid values raise,
    with masked examples (the first ones in read order)."""
    from pyspark.sql import functions as F

    qualities: dict[str, KeyQuality] = {}
    for i, (_, kind, _) in enumerate(plan.pairs):
        qualities[kind] = KeyQuality(
            rows=totals["rows"], valid=totals[f"valid{i}"], invalid=totals[f"invalid{i}"] or 0
        )
        if qualities[kind].invalid_fraction > contract.max_invalid_fraction:
            examples = (
                digested.where(F.col(f"invalid{i}"))
                .orderBy(ROW)
                .select(f"example{i}")
                .limit(MAX_EXAMPLES)
                .collect()
            )
            qualities[kind].rejected_examples = [row[0] for row in examples]
    check_invalid_fraction(
        qualities,
        contract.max_invalid_fraction,
        plan.source,
        {kind: column for _, kind, column in plan.pairs},
    )
    return qualities


def _raw_value(read: DataFrame, column: str, row_id: int) -> object:
    """The value of *column* at row id *row_id* of the source, as read."""
    from pyspark.sql import functions as F

    rows = read.where(F.col(ROW) == row_id).select(F.col(f"`{column}`")).collect()
    return rows[0][0] if rows else None


def deduplicate(
    digested: DataFrame, plan: Plan, contract: Contract, qualities: dict[str, KeyQuality]
) -> tuple[DataFrame, int]:
    """Coalesce a key's columns per row (a column fills only rows the earlier ones left
    empty or invalid), keep the first occurrence of each coalesced digest and count a
    dropped repeat against the column that supplied it (as the local engine does), drop
    records without a key, hash to the curve, persist."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    frame = digested
    keys = len(contract.keys)
    for k in range(keys):
        sources = [i for i, (key, _, _) in enumerate(plan.pairs) if key == k]
        if not sources:
            frame = frame.withColumn(f"k{k}", F.lit(None).cast("binary"))
            continue
        frame = frame.withColumn(f"k{k}", F.coalesce(*(F.col(f"d{i}") for i in sources)))
        supplier = F.lit(None).cast("int")
        for i in reversed(sources):  # the first non-empty column in mapping order
            supplier = F.when(F.col(f"d{i}").isNotNull(), F.lit(i)).otherwise(supplier)
        frame = frame.withColumn(f"supplier{k}", supplier)
        frame = _first_occurrence(frame, f"k{k}")
    kept_columns = [f"k{k}" for k in range(keys)]
    kept_columns += ["segment"] if plan.role == "brand" else []
    kept_columns += [f"a{j}" for j in range(len(plan.attribute_columns))]
    counted = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = counted.agg(
            *(
                F.sum(
                    ((F.col(f"supplier{key}") == i) & F.col(f"k{key}").isNull()).cast("long")
                ).alias(f"dropped{i}")
                for i, (key, _, _) in enumerate(plan.pairs)
            )
        ).collect()[0]
        for i, (_, kind, _) in enumerate(plan.pairs):
            qualities[kind].duplicates = totals[f"dropped{i}"] or 0
        any_key = functools.reduce(
            lambda a, b: a | b, [F.col(f"k{k}").isNotNull() for k in range(keys)]
        )
        schema = ", ".join(
            [
                *(f"k{k} binary" for k in range(keys)),
                *(["segment tinyint"] if plan.role == "brand" else []),
                *(f"a{j} boolean" for j in range(len(plan.attribute_columns))),
                *(f"p{k} binary" for k in range(keys)),
            ]
        )
        hashed = (
            counted.where(any_key)
            .select(*kept_columns)
            .mapInArrow(
                functools.partial(hash_batches, contract.keys, contract.hash_to_curve_dst()),
                schema,
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        kept = hashed.count()
    finally:
        counted.unpersist()
    return hashed, kept


def _first_occurrence(frame: DataFrame, column: str) -> DataFrame:
    """Blank *column* where an earlier row (in read order) holds the same value."""
    from pyspark.sql import functions as F

    firsts = (
        frame.where(F.col(column).isNotNull())
        .groupBy(column)
        .agg(F.min(ROW).alias("_first"))
        .withColumnRenamed(column, "_value")
    )
    joined = frame.join(firsts, frame[column] == firsts["_value"], "left")
    return joined.withColumn(column, F.when(F.col(ROW) == F.col("_first"), F.col(column))).drop(
        "_value", "_first"
    )
