"""The ``mapInArrow`` kernels: what Spark runs on each Arrow record batch of a list.

Each kernel hands whole Arrow buffers to the native batch functions (packed 32-byte values
in, packed values out, no Python object per row) on as many native threads as Spark gave
the task cores. The hash-to-curve inputs are the packed digests and the key's prefix
(:mod:`cleanroom.lists.elements`), as in the local implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom.crypto.batches import BatchRunner, encrypt_own
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import ELEMENT_SIZE
from cleanroom.identifiers.digests import DIGEST_SIZE, KeyDigests
from cleanroom.identifiers.masking import mask
from cleanroom.identifiers.normalize import digest_array
from cleanroom.lists.elements import dummy_points, hash_points, sketch
from cleanroom.lists.tables import boolean_values, segment_labels, string_column
from cleanroom.privacy.setdiff import BUCKETS

ROW = "_row"


@dataclass(frozen=True)
class Plan:
    """What the prepare job computes per batch (pickled into the job)."""

    source: str
    pairs: tuple[tuple[int, str, str], ...]  # (key index, key kind, column) in coalescing order
    profile: str
    region: str
    segment_column: str | None
    segments: tuple[str, ...]
    attribute_columns: tuple[str, ...]
    role: str  # "brand" or "partner"


def prepare_batches(plan: Plan, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Per row: each identifier column's digest, invalid flag and masked value if invalid;
    the segment index (brand) or attribute bits (partner), -1 / a flag where bad."""
    for batch in batches:
        table = pa.Table.from_batches([batch])
        columns: dict[str, pa.Array[Any]] = {ROW: batch.column(ROW)}
        for i, (_, kind, column) in enumerate(plan.pairs):
            digests, _, invalid, trimmed = digest_array(
                string_column(table, column, plan.source), kind, plan.profile, plan.region
            )
            values = unpacked(digests.matrix[digests.present].tobytes(), DIGEST_SIZE)
            columns[f"d{i}"] = _scattered(values, digests.present)
            columns[f"invalid{i}"] = pa.array(invalid)
            examples: list[str | None] = [None] * len(digests)
            for row in np.flatnonzero(invalid).tolist():
                examples[row] = mask(trimmed[row].as_py())
            columns[f"example{i}"] = pa.array(examples, pa.string())
        if plan.role == "brand":
            if plan.segment_column is None:
                index = np.zeros(batch.num_rows, dtype=np.int8)
            else:
                labels = segment_labels(string_column(table, plan.segment_column, plan.source))
                found: Any = pc.index_in(labels, value_set=pa.array(plan.segments, pa.string()))
                filled = pc.fill_null(found, -1)
                index = np.asarray(filled.to_numpy(zero_copy_only=False))
            columns["segment"] = pa.array(index.astype(np.int8))
        for j, column in enumerate(plan.attribute_columns):
            truth, bad = boolean_values(table.column(column).combine_chunks())
            columns[f"a{j}"] = pa.array(truth)
            columns[f"bad_a{j}"] = pa.array(bad)
        yield pa.RecordBatch.from_pydict(columns)


def packed(column: pa.Array[Any], size: int) -> bytes:
    """The values of a binary column without nulls, each *size* bytes, back to back: one
    buffer for a native batch function (a value of another length is an error)."""
    fixed = column.cast(pa.binary(size))
    start = fixed.offset * size
    data = fixed.buffers()[1]
    assert data is not None  # a fixed-size binary array always has its data buffer
    values: bytes = data[start : start + len(fixed) * size].to_pybytes()
    return values


def unpacked(values: bytes, size: int) -> pa.Array[Any]:
    """A binary column of the *size*-byte values packed in *values*, without a copy per row."""
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(size), len(values) // size, [None, pa.py_buffer(values)]
    )
    return fixed.cast(pa.binary())


def _present(column: pa.Array[Any]) -> np.ndarray:
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def key_digests(column: pa.Array[Any]) -> KeyDigests:
    """A digest column (null where a record has no such key) as packed digests."""
    present = _present(column)
    matrix = np.zeros((len(column), DIGEST_SIZE), dtype=np.uint8)
    values = packed(column.filter(present), DIGEST_SIZE)
    matrix[present] = np.frombuffer(values, dtype=np.uint8).reshape(-1, DIGEST_SIZE)
    return KeyDigests(matrix, present)


def _scattered(values: pa.Array[Any], present: np.ndarray) -> pa.Array[Any]:
    """*values* at the rows where *present* is true, null elsewhere."""
    index = np.cumsum(present) - 1
    return values.take(pa.array(index, pa.int64(), mask=~present))


@contextlib.contextmanager
def _task_runner() -> Iterator[BatchRunner]:
    """The native threads of one Spark task: as many as Spark gave the task CPUs
    (``spark.task.cpus``, default 1), so that the tasks an executor runs side by side do not
    each take every core of the machine. Outside a task (tests), every core."""
    from pyspark import TaskContext

    context = TaskContext.get()
    runner = BatchRunner(workers=context.cpus() if context is not None else None)
    try:
        yield runner
    finally:
        runner.close()


def hash_batches(
    keys: tuple[str, ...], dst: bytes, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Add ``p{k}``: H(key:digest) on the curve for every present digest (RFC 9380), one
    native batch per key and record batch."""
    with _task_runner() as runner:
        for batch in batches:
            columns = {name: batch.column(name) for name in batch.schema.names}
            for k, key in enumerate(keys):
                digests = key_digests(batch.column(f"k{k}"))
                present = digests.matrix[digests.present]
                points = runner.submit(len(present), hash_points, key, present, dst).result()
                columns[f"p{k}"] = _scattered(unpacked(points, ELEMENT_SIZE), digests.present)
            yield pa.RecordBatch.from_pydict(columns)


def sketch_batches(
    keys: int, key: bytes, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """One row per partition: its set-difference sketch (summed by the driver)."""
    counts = np.zeros(BUCKETS, dtype=np.uint64)
    with _task_runner() as runner:
        for batch in batches:
            digests = [key_digests(batch.column(f"k{k}")) for k in range(keys)]
            # a brand's records carry their segment label in the sketch (privacy/setdiff.py)
            labels = (
                batch.column("segment").to_numpy(zero_copy_only=False)
                if "segment" in batch.schema.names
                else None
            )
            counts += runner.submit(batch.num_rows, sketch, digests, key, labels).result()
    yield pa.RecordBatch.from_pydict({"sketch": pa.array([counts.astype("<u8").tobytes()])})


def encrypt_brand_batches(
    cipher: CommutativeCipher, keys: int, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """``(group, element)`` for every present key of every record: E_b(H(key:digest)), one
    native batch per record batch."""
    with _task_runner() as runner:
        for batch in batches:
            segments = batch.column("segment").to_numpy(zero_copy_only=False).astype(np.int32)
            groups: list[np.ndarray] = []
            points: list[bytes] = []
            for k in range(keys):
                column = batch.column(f"p{k}")
                present = _present(column)
                groups.append(segments[present] * keys + k)
                points.append(packed(column.filter(present), ELEMENT_SIZE))
            joined = b"".join(points)
            size = len(joined) // ELEMENT_SIZE
            yield pa.RecordBatch.from_pydict(
                {
                    "group": pa.array(np.concatenate(groups) if groups else [], pa.int32()),
                    "element": unpacked(
                        runner.submit(size, encrypt_own, cipher, joined).result(), ELEMENT_SIZE
                    ),
                }
            )


def encrypt_partner_batches(
    cipher: CommutativeCipher,
    keys: int,
    attributes: int,
    dst: bytes,
    batches: Iterable[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """``(record, a0..)``: a record's E_a(H(...)) slots, a fresh random element where a key
    is missing, and its attribute bits; one native batch per record batch."""
    with _task_runner() as runner:
        for batch in batches:
            slots = np.zeros((batch.num_rows, keys, ELEMENT_SIZE), dtype=np.uint8)
            for k in range(keys):
                column = batch.column(f"p{k}")
                present = _present(column)
                points = packed(column.filter(present), ELEMENT_SIZE)
                slots[present, k] = np.frombuffer(points, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
                missing = batch.num_rows - int(present.sum())
                if missing:
                    dummies = runner.submit(missing, dummy_points, missing, dst).result()
                    slots[~present, k] = np.frombuffer(dummies, dtype=np.uint8).reshape(
                        -1, ELEMENT_SIZE
                    )
            size = batch.num_rows * keys
            encrypted = runner.submit(size, encrypt_own, cipher, slots.tobytes()).result()
            columns: dict[str, pa.Array[Any]] = {"record": unpacked(encrypted, keys * ELEMENT_SIZE)}
            for j in range(attributes):
                columns[f"a{j}"] = batch.column(f"a{j}")
            yield pa.RecordBatch.from_pydict(columns)
