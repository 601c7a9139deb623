"""The Spark list classes (the list port's second implementation) and their preparation."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cleanroom.contract import Contract
from cleanroom.crypto.batches import BatchRunner
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import ELEMENT_SIZE
from cleanroom.lists.mapping import check_mapping, key_columns
from cleanroom.lists.spark.checks import check_digested, deduplicate
from cleanroom.lists.spark.kernels import (
    ROW,
    Plan,
    encrypt_brand_batches,
    encrypt_partner_batches,
    packed,
    prepare_batches,
    sketch_batches,
)
from cleanroom.lists.spark.sources import read_source, require_columns
from cleanroom.lists.tables import check_segment_column_configured
from cleanroom.privacy.setdiff import BUCKETS
from cleanroom.protocol.common import ELEMENTS_PER_CHUNK, chunk_sizes
from cleanroom.protocol.list_port import (
    EncryptedRecords,
    GroupChunk,
    OwnBrandList,
    OwnPartnerList,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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
        partial = functools.partial(sketch_batches, len(self.contract.keys), key)
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

    def records_per_segment(self) -> list[int]:
        return [counts[0] for counts in self._segment_counts]

    def group_sizes(self) -> list[int]:
        return [n for counts in self._segment_counts for n in counts[1:]]

    def encrypt(self, cipher: CommutativeCipher, runner: BatchRunner) -> Iterator[GroupChunk]:
        """Runs the per-session job when first advanced (after the hello reply has gone); its
        crypto runs on the executors, not on the session's ``runner``."""
        contract = self.contract
        keys = len(contract.keys)
        partial = functools.partial(encrypt_brand_batches, cipher, keys)
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
                    elements = memoryview(packed(batch.column(1), ELEMENT_SIZE))
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
    def encrypt(self, cipher: CommutativeCipher, runner: BatchRunner) -> EncryptedRecords:
        """Runs the per-session job now (before the client connects) on the executors, not
        on the session's ``runner``; the records stream from the scratch directory as they
        are sent."""
        contract = self.contract
        keys, attributes = len(contract.keys), len(contract.attributes)
        partial = functools.partial(
            encrypt_partner_batches, cipher, keys, attributes, contract.hash_to_curve_dst()
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
                    records = memoryview(packed(batch.column(0), record_size))
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
    require_columns(frame, [segment] if segment else [], source, "brand CRM")
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
    require_columns(frame, attribute_columns, source, "partner audience")
    plan = _plan(frame, columns, contract, source, "partner", None, attribute_columns)
    prepared, quality, kept = _prepare(frame, plan, contract)
    return SparkPartnerList(prepared, contract, quality, source, kept, scratch)


def _counts(keys: int) -> list[Any]:
    from pyspark.sql import functions as F

    return [F.count("*").alias("records"), *(F.count(f"k{k}").alias(f"n{k}") for k in range(keys))]


def _plan(
    frame: DataFrame,
    columns: Mapping[str, str],
    contract: Contract,
    source: str,
    role: str,
    segment: str | None,
    attribute_columns: tuple[str, ...],
) -> Plan:
    chosen = key_columns(frame.columns, columns, contract, source)
    pairs = tuple(
        (k, kind, column)
        for k, match_key in enumerate(contract.keys)
        for kind, column in chosen[match_key]
    )
    require_columns(frame, [column for _, _, column in pairs], source, "list")
    return Plan(
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
    frame: DataFrame, plan: Plan, contract: Contract
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
        functools.partial(prepare_batches, plan), ", ".join(schema)
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        qualities = check_digested(digested, plan, contract, frame)
        deduplicated, kept = deduplicate(digested, plan, contract, qualities)
    finally:
        digested.unpersist()
    quality = {kind: q.to_dict() for kind, q in qualities.items()}
    return deduplicated, quality, kept


# Both satisfy the list port (checked by mypy --strict).
_brand_port: type[OwnBrandList] = SparkBrandList
_partner_port: type[OwnPartnerList] = SparkPartnerList
