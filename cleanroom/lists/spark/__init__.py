"""The per-record work of a session as PySpark jobs, for lists that live on a cluster.

With ``--engine spark`` a party's own list never comes to the session's process. Two jobs
run where the list lives (a Parquet file or directory, a CSV file, or a catalog table
``table:NAME``), through ``mapInArrow`` over Arrow record batches:

* **prepare**, once per list (at server start-up; before the client connects): normalize
  and SHA-256 every identifier with the same code as the local engine, count the input
  quality, apply the contract's ``max_invalid_fraction``, check segment labels and
  attribute values, de-duplicate each key (first occurrence in read order wins, as
  locally), drop records without a key and hash every digest to the curve (RFC 9380, key
  independent, so done once). Spark keeps the result (``persist``).
* **encrypt**, once per session: one X25519 multiplication per element with the session's
  fresh key, the elements (brand) or records (partner) sorted by their encrypted value,
  written as Parquet to a scratch directory that the session streams back in order.

Sorting by encrypted value is how this engine hides the list's row order (the local
engine shuffles with a secret random permutation instead, which lets it stream while it
encrypts): the order is a function of values the peer receives anyway, so it tells the
peer nothing, and unlike random sort keys it is the same when Spark recomputes a task.

The session key goes to the executors inside the job, and the scratch directory holds
this party's own elements under that key until the session has streamed them; both stay
on this party's cluster. On a shared cluster turn on Spark's RPC and spill encryption
(``spark.network.crypto.enabled``, ``spark.io.encryption.enabled``): docs/threat-model.md.
The exponentiations of the *peer's* stream (rounds 2 and 3) arrive over gRPC at the
session's process and run there on its native threads (``--workers``), as with the local
engine.

Every kernel hands whole Arrow buffers to the native batch functions
(:func:`~cleanroom.crypto.hash_to_curve.hash_to_curve_batch`,
:meth:`~cleanroom.crypto.commutative.CommutativeCipher.encrypt`): packed 32-byte values in,
packed values out, no Python loop per row, on as many native threads as Spark gave the
task cores.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import secrets
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cleanroom.contract import Contract
from cleanroom.crypto.commutative import ELEMENT_SIZE, CommutativeCipher
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch
from cleanroom.engine import Engine, encrypt
from cleanroom.errors import InputError
from cleanroom.identifiers import MAX_EXAMPLES, KeyQuality, check_invalid_fraction, mask
from cleanroom.identifiers.normalize import digest_array
from cleanroom.lists.local import (
    EncryptedRecords,
    GroupChunk,
    check_mapping,
    key_columns,
)
from cleanroom.lists.tables import (
    TABLE_PREFIX,
    bad_boolean_error,
    bad_segment_error,
    boolean_values,
    check_segment_column_configured,
    segment_labels,
    string_column,
)
from cleanroom.privacy.setdiff import BUCKETS, list_sketch
from cleanroom.protocol.common import (
    ELEMENTS_PER_CHUNK,
    chunk_sizes,
    dummy_message,
    element_message,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW = "_row"


def start_spark(app_name: str = "cleanroom") -> SparkSession:
    """The Spark session: the master and settings come from the usual places
    (``spark-defaults.conf``, ``PYSPARK_SUBMIT_ARGS``); without any, local mode on every core."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine spark needs PySpark: pip install 'cleanroom[spark]' (and Java 17+)"
        ) from None
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise InputError("--engine spark needs Java 17 or later (java on PATH or JAVA_HOME)")
    # Local workers must run this interpreter, which has cleanroom installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # The jobs exchange Arrow batches only; PySpark's pandas-version caution does not apply.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")  # the CLIs show their own progress
        .getOrCreate()
    )


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


@dataclass(frozen=True)
class _Plan:
    """What the prepare job computes per batch (pickled into the job)."""

    source: str
    pairs: tuple[tuple[int, str, str], ...]  # (key index, key kind, column) in coalescing order
    profile: str
    region: str
    segment_column: str | None
    segments: tuple[str, ...]
    attribute_columns: tuple[str, ...]
    role: str  # "brand" or "partner"


def _prepare_batches(plan: _Plan, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Per row: each identifier column's digest, invalid flag and masked value if invalid;
    the segment index (brand) or attribute bits (partner), -1 / a flag where bad."""
    for batch in batches:
        table = pa.Table.from_batches([batch])
        columns: dict[str, pa.Array] = {ROW: batch.column(ROW)}
        for i, (_, kind, column) in enumerate(plan.pairs):
            digests, _, invalid, trimmed = digest_array(
                string_column(table, column, plan.source), kind, plan.profile, plan.region
            )
            columns[f"d{i}"] = pa.array(digests, pa.binary())
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
                found = pc.index_in(labels, value_set=pa.array(plan.segments, pa.string()))
                index = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False))
            columns["segment"] = pa.array(index.astype(np.int8))
        for j, column in enumerate(plan.attribute_columns):
            truth, bad = boolean_values(table.column(column).combine_chunks())
            columns[f"a{j}"] = pa.array(truth)
            columns[f"bad_a{j}"] = pa.array(bad)
        yield pa.RecordBatch.from_pydict(columns)


def _packed(column: pa.Array, size: int) -> bytes:
    """The values of a binary column without nulls, each *size* bytes, back to back: one
    buffer for a native batch function (a value of another length is an error)."""
    fixed = column.cast(pa.binary(size))
    start = fixed.offset * size
    packed: bytes = fixed.buffers()[1][start : start + len(fixed) * size].to_pybytes()
    return packed


def _unpacked(packed: bytes, size: int) -> pa.Array:
    """A binary column of the *size*-byte values packed in *packed*, without a copy per row."""
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(size), len(packed) // size, [None, pa.py_buffer(packed)]
    )
    return fixed.cast(pa.binary())


def _messages(key: str, digests: pa.Array) -> list[bytes]:
    """element_message(key, digest) of every digest, joined by Arrow, not per row in Python."""
    prefix = element_message(key, b"")
    joined = pc.binary_join_element_wise(pa.scalar(prefix), digests, pa.scalar(b""))
    messages: list[bytes] = joined.to_pylist()
    return messages


def _scattered(values: pa.Array, present: np.ndarray) -> pa.Array:
    """*values* at the rows where *present* is true, null elsewhere."""
    index = np.cumsum(present) - 1
    return values.take(pa.array(index, pa.int64(), mask=~present))


@contextlib.contextmanager
def _task_engine() -> Iterator[Engine]:
    """The native threads of one Spark task: as many as Spark gave the task CPUs
    (``spark.task.cpus``, default 1), so that the tasks an executor runs side by side do not
    each take every core of the machine. Outside a task (tests), every core."""
    from pyspark import TaskContext

    context = TaskContext.get()
    engine = Engine(workers=context.cpus() if context is not None else None)
    try:
        yield engine
    finally:
        engine.close()


def _hash_batches(
    keys: tuple[str, ...], dst: bytes, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Add ``p{k}``: H(key:digest) on the curve for every present digest (RFC 9380), one
    native batch per key and record batch."""
    with _task_engine() as engine:
        for batch in batches:
            columns = {name: batch.column(name) for name in batch.schema.names}
            for k, key in enumerate(keys):
                digests = batch.column(f"k{k}")
                present = np.asarray(digests.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                messages = _messages(key, digests.filter(present))
                packed = engine.submit(len(messages), hash_to_curve_batch, messages, dst).result()
                columns[f"p{k}"] = _scattered(_unpacked(packed, ELEMENT_SIZE), present)
            yield pa.RecordBatch.from_pydict(columns)


def _sketch_batches(
    keys: int, key: bytes, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """One row per partition: its set-difference sketch (summed by the driver)."""
    counts = np.zeros(BUCKETS, dtype=np.uint64)
    with _task_engine() as engine:
        for batch in batches:
            digests = [batch.column(f"k{k}").to_pylist() for k in range(keys)]
            # a brand's records carry their segment label in the sketch (privacy/setdiff.py)
            labels = (
                batch.column("segment").to_pylist() if "segment" in batch.schema.names else None
            )
            counts += engine.submit(batch.num_rows, list_sketch, digests, key, labels).result()
    yield pa.RecordBatch.from_pydict({"sketch": pa.array([counts.astype("<u8").tobytes()])})


def _encrypt_brand_batches(
    cipher: CommutativeCipher, keys: int, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """``(group, element)`` for every present key of every record: E_b(H(key:digest)), one
    native batch per record batch."""
    with _task_engine() as engine:
        for batch in batches:
            segments = batch.column("segment").to_numpy(zero_copy_only=False).astype(np.int32)
            groups: list[np.ndarray] = []
            points: list[bytes] = []
            for k in range(keys):
                column = batch.column(f"p{k}")
                present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                groups.append(segments[present] * keys + k)
                points.append(_packed(column.filter(present), ELEMENT_SIZE))
            packed = b"".join(points)
            size = len(packed) // ELEMENT_SIZE
            yield pa.RecordBatch.from_pydict(
                {
                    "group": pa.array(np.concatenate(groups) if groups else [], pa.int32()),
                    "element": _unpacked(
                        engine.submit(size, encrypt, cipher, packed).result(), ELEMENT_SIZE
                    ),
                }
            )


def _encrypt_partner_batches(
    cipher: CommutativeCipher,
    keys: int,
    attributes: int,
    dst: bytes,
    batches: Iterable[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """``(record, a0..)``: a record's E_a(H(...)) slots, a fresh random element where a key
    is missing, and its attribute bits; one native batch per record batch."""
    with _task_engine() as engine:
        for batch in batches:
            slots = np.zeros((batch.num_rows, keys, ELEMENT_SIZE), dtype=np.uint8)
            for k in range(keys):
                column = batch.column(f"p{k}")
                present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                points = _packed(column.filter(present), ELEMENT_SIZE)
                slots[present, k] = np.frombuffer(points, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
                missing = [dummy_message() for _ in range(batch.num_rows - int(present.sum()))]
                if missing:
                    dummies = engine.submit(
                        len(missing), hash_to_curve_batch, missing, dst
                    ).result()
                    slots[~present, k] = np.frombuffer(dummies, dtype=np.uint8).reshape(
                        -1, ELEMENT_SIZE
                    )
            size = batch.num_rows * keys
            packed = engine.submit(size, encrypt, cipher, slots.tobytes()).result()
            columns: dict[str, pa.Array] = {"record": _unpacked(packed, keys * ELEMENT_SIZE)}
            for j in range(attributes):
                columns[f"a{j}"] = batch.column(f"a{j}")
            yield pa.RecordBatch.from_pydict(columns)


class _Scratch:
    """Where a session's encrypted list is written by Spark and read back by the driver:
    a local directory, or any URI both can reach (``hdfs://``, ``s3://``...)."""

    def __init__(self, root: str | None) -> None:
        self._owned = root is None
        self.root = root or tempfile.mkdtemp(prefix="cleanroom-spark-")

    def new_job(self) -> str:
        return f"{self.root.rstrip('/')}/session-{secrets.token_hex(8)}"

    @staticmethod
    def parts(uri: str) -> Iterator[pq.ParquetFile]:
        """The job's Parquet parts in order (Spark numbers them in sorted order)."""
        filesystem, path = pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))
        infos = filesystem.get_file_info(pafs.FileSelector(path))
        for info in sorted(
            (i for i in infos if i.base_name.startswith("part-")), key=lambda i: i.base_name
        ):
            with filesystem.open_input_file(info.path) as handle:
                yield pq.ParquetFile(handle)

    @staticmethod
    def remove(uri: str) -> None:
        filesystem, path = pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))
        with contextlib.suppress(FileNotFoundError, OSError):
            filesystem.delete_dir(path)

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


class SparkList:
    """A list prepared by Spark (see the module docstring); ``frame`` has the digests
    ``k{i}``, the curve points ``p{i}`` and ``segment`` or the attributes ``a{j}``."""

    def __init__(
        self,
        frame: DataFrame,
        contract: Contract,
        quality: dict[str, dict[str, int]],
        source: str,
        size: int,
        scratch: str | None,
    ) -> None:
        self.frame = frame
        self.contract = contract
        self.quality = quality
        self.source = source
        self._size = size
        self._scratch = _Scratch(scratch)

    @property
    def size(self) -> int:
        return self._size

    def sketch(self, key: bytes) -> np.ndarray:
        partial = functools.partial(_sketch_batches, len(self.contract.keys), key)
        rows = self.frame.mapInArrow(partial, "sketch binary").collect()
        counts = np.zeros(BUCKETS, dtype=np.uint64)
        for row in rows:
            counts += np.frombuffer(row["sketch"], dtype="<u8")
        return counts.astype(np.uint32)

    def _write_sorted(self, frame: DataFrame, *order: str) -> str:
        job = self._scratch.new_job()
        frame.orderBy(*order).write.mode("error").parquet(job)
        return job

    def close(self) -> None:
        self.frame.unpersist()
        self._scratch.close()


class SparkBrandList(SparkList):
    def __init__(self, *args: Any, segment_counts: list[list[int]], **kwargs: Any) -> None:
        """``segment_counts[s]`` = [records, elements of key 0, key 1, ...] of segment s."""
        super().__init__(*args, **kwargs)
        self._segment_counts = segment_counts

    def records_per_segment(self, contract: Contract) -> list[int]:
        return [counts[0] for counts in self._segment_counts]

    def group_sizes(self, contract: Contract) -> list[int]:
        return [n for counts in self._segment_counts for n in counts[1:]]

    def encrypt(
        self, cipher: CommutativeCipher, contract: Contract, engine: Engine
    ) -> Iterator[GroupChunk]:
        """Runs the per-session job when first advanced (after the hello reply has gone)."""
        keys = len(contract.keys)
        partial = functools.partial(_encrypt_brand_batches, cipher, keys)
        job = self._write_sorted(
            self.frame.mapInArrow(partial, "group int, element binary"), "group", "element"
        )
        try:
            pending = bytearray()
            current = 0
            groups = len(contract.segments) * keys
            full = ELEMENTS_PER_CHUNK * ELEMENT_SIZE

            def flush(group: int, last: bool) -> GroupChunk:
                segment, key = divmod(group, keys)
                chunk = bytes(pending)
                pending.clear()
                return segment, key, last, chunk

            for part in _Scratch.parts(job):
                for batch in part.iter_batches(columns=["group", "element"]):
                    group_of = batch.column(0).to_numpy(zero_copy_only=False)
                    elements = memoryview(_packed(batch.column(1), ELEMENT_SIZE))
                    bounds = [0, *(np.flatnonzero(np.diff(group_of)) + 1).tolist(), len(group_of)]
                    for start, end in itertools.pairwise(bounds):  # runs of a group
                        if start == end:
                            continue
                        while group_of[start] > current:  # groups in order, empty ones too
                            yield flush(current, last=True)
                            current += 1
                        run = elements[start * ELEMENT_SIZE : end * ELEMENT_SIZE]
                        while run:
                            room = full - len(pending)
                            pending += run[:room]
                            run = run[room:]
                            if len(pending) == full:
                                yield flush(current, last=False)
            while current < groups:
                yield flush(current, last=True)
                current += 1
        finally:
            _Scratch.remove(job)


class SparkPartnerList(SparkList):
    def encrypt(
        self, cipher: CommutativeCipher, contract: Contract, engine: Engine
    ) -> EncryptedRecords:
        """Runs the per-session job now (before the client connects); the records stream
        from the scratch directory as they are sent."""
        keys, attributes = len(contract.keys), len(contract.attributes)
        partial = functools.partial(
            _encrypt_partner_batches, cipher, keys, attributes, contract.hash_to_curve_dst()
        )
        schema = ", ".join(["record binary", *(f"a{j} boolean" for j in range(attributes))])
        job = self._write_sorted(self.frame.mapInArrow(partial, schema), "record")
        try:
            bits = [
                np.concatenate(
                    [
                        part.read(columns=[f"a{j}"]).column(0).to_numpy()
                        for part in _Scratch.parts(job)
                    ]
                    or [np.zeros(0, dtype=bool)]
                ).astype(bool)
                for j in range(attributes)
            ]
        except BaseException:
            _Scratch.remove(job)
            raise
        matrix = np.stack(bits, axis=1) if bits else np.zeros((self.size, 0), dtype=bool)
        chunks = self._record_chunks(job, chunk_sizes(self.size, contract), keys * ELEMENT_SIZE)
        return EncryptedRecords(matrix, chunks)

    @staticmethod
    def _record_chunks(job: str, sizes: Sequence[int], record_size: int) -> Iterator[bytes]:
        """The records of the scratch files, packed into chunks of *sizes* records."""
        try:
            pending = bytearray()
            wanted = iter(sizes)
            size = next(wanted) * record_size
            for part in _Scratch.parts(job):
                for batch in part.iter_batches(columns=["record"]):
                    records = memoryview(_packed(batch.column(0), record_size))
                    while records and size > 0:
                        room = size - len(pending)
                        pending += records[:room]
                        records = records[room:]
                        if len(pending) == size:
                            yield bytes(pending)
                            pending.clear()
                            size = next(wanted, 0) * record_size
            if not sizes[0]:  # an empty list still sends its one empty chunk
                yield b""
        finally:
            _Scratch.remove(job)


# -- prepare ---------------------------------------------------------------------------------


def prepare_brand_list_spark(
    spark: SparkSession,
    source: str | DataFrame,
    columns: Mapping[str, str],
    contract: Contract,
    scratch: str | None = None,
) -> SparkBrandList:
    """The Spark counterpart of :func:`cleanroom.lists.local.prepare_brand_list`."""
    check_mapping(columns, contract, extra=("segment",))
    frame, source = read_source(spark, source)
    segment = columns.get("segment")
    _require(frame, [segment] if segment else [], source, "brand CRM")
    check_segment_column_configured(segment, contract.segments, 1, source)
    plan = _plan(frame, columns, contract, source, "brand", segment, ())
    prepared, quality, kept = _prepare(frame, plan, contract)
    keys = len(contract.keys)
    counts = prepared.groupBy("segment").agg(*_counts(keys)).collect()
    per_segment = [[0] * (keys + 1) for _ in contract.segments]
    for row in counts:
        per_segment[row["segment"]] = [row["records"], *(row[f"n{k}"] for k in range(keys))]
    return SparkBrandList(
        prepared, contract, quality, source, kept, scratch, segment_counts=per_segment
    )


def prepare_partner_list_spark(
    spark: SparkSession,
    source: str | DataFrame,
    columns: Mapping[str, str] | None,
    contract: Contract,
    scratch: str | None = None,
) -> SparkPartnerList:
    """The Spark counterpart of :func:`cleanroom.lists.local.prepare_partner_list`."""
    columns = dict(columns or {})
    check_mapping(columns, contract, extra=())
    frame, source = read_source(spark, source)
    attribute_columns = tuple(columns.get(a, a) for a in contract.attributes)
    _require(frame, attribute_columns, source, "partner audience")
    plan = _plan(frame, columns, contract, source, "partner", None, attribute_columns)
    prepared, quality, kept = _prepare(frame, plan, contract)
    return SparkPartnerList(prepared, contract, quality, source, kept, scratch)


def _counts(keys: int) -> list[Any]:
    from pyspark.sql import functions as F

    return [F.count("*").alias("records"), *(F.count(f"k{k}").alias(f"n{k}") for k in range(keys))]


def _require(frame: DataFrame, required: Sequence[str], source: str, role: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: the {role} has no column {missing[0]!r}; available columns: "
            f"{', '.join(repr(c) for c in frame.columns) or 'none'}"
        )


def _plan(
    frame: DataFrame,
    columns: Mapping[str, str],
    contract: Contract,
    source: str,
    role: str,
    segment: str | None,
    attribute_columns: tuple[str, ...],
) -> _Plan:
    chosen = key_columns(frame.columns, columns, contract, source)
    pairs = tuple(
        (k, kind, column)
        for k, match_key in enumerate(contract.keys)
        for kind, column in chosen[match_key]
    )
    _require(frame, [column for _, _, column in pairs], source, "list")
    return _Plan(
        source=source,
        pairs=pairs,
        profile=contract.normalization,
        region=contract.default_region,
        segment_column=segment,
        segments=tuple(contract.segments),
        attribute_columns=attribute_columns,
        role=role,
    )


def _prepare(
    frame: DataFrame, plan: _Plan, contract: Contract
) -> tuple[DataFrame, dict[str, dict[str, int]], int]:
    """Digest, check, de-duplicate and hash to the curve; returns the persisted frame, the
    input quality and the number of records kept. Bad input raises before anything is kept."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    needed = sorted(
        {column for _, _, column in plan.pairs}
        | set(plan.attribute_columns)
        | ({plan.segment_column} if plan.segment_column else set())
    )
    frame = frame.select(*(F.col(f"`{column}`") for column in needed)).withColumn(
        ROW, F.monotonically_increasing_id()
    )
    schema = [f"{ROW} bigint"]
    for i in range(len(plan.pairs)):
        schema += [f"d{i} binary", f"invalid{i} boolean", f"example{i} string"]
    if plan.role == "brand":
        schema.append("segment tinyint")
    for j in range(len(plan.attribute_columns)):
        schema += [f"a{j} boolean", f"bad_a{j} boolean"]
    digested = frame.mapInArrow(
        functools.partial(_prepare_batches, plan), ", ".join(schema)
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        qualities = _check_quality(digested, plan, contract)
        _check_labels_and_attributes(digested, plan, frame)
        deduplicated, kept = _deduplicate(digested, plan, contract, qualities)
    finally:
        digested.unpersist()
    quality = {kind: q.to_dict() for kind, q in qualities.items()}
    return deduplicated, quality, kept


def _check_quality(digested: DataFrame, plan: _Plan, contract: Contract) -> dict[str, KeyQuality]:
    from pyspark.sql import functions as F

    aggregates = [F.count("*").alias("rows")]
    for i in range(len(plan.pairs)):
        aggregates += [
            F.count(f"d{i}").alias(f"valid{i}"),
            F.sum(F.col(f"invalid{i}").cast("long")).alias(f"invalid{i}"),
        ]
    totals = digested.agg(*aggregates).collect()[0]
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


def _first_bad(digested: DataFrame, condition: Any) -> tuple[int, int, int]:
    """(0-based data row, row id, count) of the first row meeting *condition*, in read order."""
    from pyspark.sql import functions as F

    found = digested.where(condition).agg(F.min(ROW).alias("first"), F.count("*").alias("n"))
    first = found.collect()[0]
    if not first["n"]:
        return -1, -1, 0
    row = digested.where(F.col(ROW) < first["first"]).count()
    return row, first["first"], first["n"]


def _check_labels_and_attributes(digested: DataFrame, plan: _Plan, read: DataFrame) -> None:
    """The local engine's errors, naming the first bad data row in read order."""
    from pyspark.sql import functions as F

    if plan.segment_column is not None:
        row, row_id, bad = _first_bad(digested, F.col("segment") < 0)
        if bad:
            value = _raw_value(read, plan.segment_column, row_id)
            raise bad_segment_error(
                plan.source, plan.segment_column, row, value, plan.segments, bad
            )
    for j, column in enumerate(plan.attribute_columns):
        row, row_id, bad = _first_bad(digested, F.col(f"bad_a{j}"))
        if bad:
            value = _raw_value(read, column, row_id)
            raise bad_boolean_error(plan.source, column, row, value, bad)


def _raw_value(read: DataFrame, column: str, row_id: int) -> object:
    """The value of *column* at row id *row_id* of the source, as read."""
    from pyspark.sql import functions as F

    rows = read.where(F.col(ROW) == row_id).select(F.col(f"`{column}`")).collect()
    return rows[0][0] if rows else None


def _deduplicate(
    digested: DataFrame, plan: _Plan, contract: Contract, qualities: dict[str, KeyQuality]
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
                functools.partial(_hash_batches, contract.keys, contract.hash_to_curve_dst()),
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
