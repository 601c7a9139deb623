"""The Spark engine prepares the same lists and releases the same report as the
single-machine engine, with the same errors on bad input.

These tests run on a standalone Spark cluster that the module starts on loopback (a master
and a worker with one core, each a separate JVM, the executor a third);
test_spark_cli.py runs both CLIs in local mode, Spark's default.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import BRAND_COLUMNS, SPARK_DRIVER_ARGS, SPARK_JVM_OPTIONS

from cleanroom.brand.demo import synthetic_lists
from cleanroom.errors import InputError
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore
from cleanroom.transport.inprocess import run_in_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.spark,
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
        reason="the Spark engine needs Java 17+ and none is installed (no java on PATH, no JAVA_HOME)",
    ),
]

# The suite's Spark settings (tests/support.py), one small executor.
DRIVER_ARGS = (
    f"{SPARK_DRIVER_ARGS} --conf spark.executor.memory=512m --conf spark.cores.max=1"
    f" --conf 'spark.executor.extraJavaOptions={SPARK_JVM_OPTIONS}'"
)
CLUSTER_START_SECONDS = 180
PR_SET_PDEATHSIG = 1  # prctl(2)


def wait_for_log(process: subprocess.Popen, log: Path, pattern: str) -> re.Match[str]:
    """The first match of *pattern* in the daemon's log; fails if it exits or takes too long."""
    deadline = time.monotonic() + CLUSTER_START_SECONDS
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return match
        if process.poll() is not None:
            raise AssertionError(
                f"{log.name}: exited with {process.returncode}:\n{log.read_text()}"
            )
        time.sleep(0.2)
    raise AssertionError(f"{log.name}: no {pattern!r} within {CLUSTER_START_SECONDS} s")


def stop_daemon(process: subprocess.Popen) -> None:
    """SIGTERM to the daemon's process group (its executors included), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # an executor that outlived its worker
        os.killpg(process.pid, signal.SIGKILL)


def detach_and_die_with_parent() -> None:
    """In the daemon before exec: its own process group (so teardown reaches its executors)
    and, on Linux, SIGTERM when the test process dies, even by SIGKILL."""
    os.setsid()
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def standalone_cluster(directory: Path) -> Iterator[str]:
    """A Spark standalone master and one worker (1 core, 1 GiB) on loopback, ports chosen by
    the OS and read from the logs; yields the master URL and stops both whatever happens."""
    import pyspark

    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",  # no REST server on 6066
        "SPARK_DAEMON_JAVA_OPTS": SPARK_JVM_OPTIONS,
    }
    daemons: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = directory / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [spark_class, *args],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=detach_and_die_with_parent,
            )
        daemons.append(process)
        return process, log

    loopback = ("--host", "127.0.0.1", "--port", "0", "--webui-port", "0")
    try:
        master, log = launch("master", "org.apache.spark.deploy.master.Master", *loopback)
        url = wait_for_log(master, log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)")[1]
        worker, log = launch(
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            *loopback,
            *("--cores", "1", "--memory", "1g", "--work-dir", str(directory / "work"), url),
        )
        wait_for_log(worker, log, r"Successfully registered with master")
        yield url
    finally:
        for process in reversed(daemons):
            stop_daemon(process)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The standalone cluster's master URL and its directory (logs, the worker's work dir)."""
    directory = tmp_path_factory.mktemp("spark-cluster")
    with standalone_cluster(directory) as url:
        yield url, directory


def start_spark_with_one_retry(start_spark: Callable[[str], Any]) -> Any:
    """PySpark's Java gateway has, once in several loaded full runs, exited before sending
    its port (JAVA_GATEWAY_EXITED; its stderr is lost to the xdist worker and the cause is
    not yet known), while the same module passed alone and beside the Spark CLI test every
    time: so it is launched once more. PySpark leaves the dead gateway's pipe open, which
    would fail a later test on this worker through a ResourceWarning: collected here."""
    from pyspark.errors import PySparkRuntimeError

    try:
        return start_spark("cleanroom-tests")
    except PySparkRuntimeError as error:
        if error.getErrorClass() != "JAVA_GATEWAY_EXITED":
            raise
        print("the Java gateway exited at start; launching it once more", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        return start_spark("cleanroom-tests")


@pytest.fixture(scope="module")
def spark(cluster):
    """One Spark session for the module, its executors on the standalone cluster; the
    master comes from PYSPARK_SUBMIT_ARGS as a user would set it (docs/howto/spark.md)."""
    from cleanroom.lists.spark import start_spark

    url, _ = cluster
    env = {
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_SUBMIT_ARGS": f"--master {url} {DRIVER_ARGS} pyspark-shell",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        session = start_spark_with_one_retry(start_spark)
        try:
            yield session
        finally:
            session.stop()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A CRM with repeated people (some in another segment) and an audience, as Parquet."""
    directory = tmp_path_factory.mktemp("spark-lists")
    lists = synthetic_lists(1500, 2500, seed=77)
    crm = lists.crm
    repeated = crm.sample(150, random_state=3).assign(tier="lapsed")
    # Pre-hashed cells naming someone else than the raw email beside them: a repeated raw
    # email keeps its row from falling back to the hash, and a hash left unused by one row
    # still counts for a later row that holds only that hash.
    hashes = [hashlib.sha256(f"extra{i}@example.com".encode()).hexdigest() for i in range(80)]
    mixed = crm.iloc[:80].assign(email_sha256=hashes)
    only_hash = mixed.assign(email="", tier="lapsed")
    crm = pd.concat([crm, repeated, crm.head(40), mixed, only_hash], ignore_index=True)
    audience = pd.concat([lists.audience, lists.audience.head(60)], ignore_index=True)
    crm.to_parquet(directory / "crm.parquet")
    audience.to_parquet(directory / "audience.parquet")
    return directory


@pytest.fixture(scope="module")
def contract():
    from cleanroom.brand.demo import contract_text
    from cleanroom.privacy.calibration import parse_contract

    text = contract_text("a" * 64, "b" * 64, mechanism="none", min_set_size=10, min_overlap=0)
    return parse_contract(text.encode())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("spark-scratch")


@pytest.fixture(scope="module")
def spark_lists(spark, files, contract, scratch):
    """Both lists prepared once by Spark, shared by the tests that only read them."""
    from cleanroom.lists.spark import prepare_brand_list_spark, prepare_partner_list_spark

    brand = prepare_brand_list_spark(
        spark, str(files / "crm.parquet"), BRAND_COLUMNS, contract, str(scratch)
    )
    partner = prepare_partner_list_spark(
        spark, str(files / "audience.parquet"), None, contract, str(scratch)
    )
    yield brand, partner
    brand.close()
    partner.close()


@pytest.fixture(scope="module")
def local_lists(files, contract):
    """The same files prepared by the single-machine engine: what Spark must reproduce."""
    crm, audience = str(files / "crm.parquet"), str(files / "audience.parquet")
    return prepare_brand_list(crm, BRAND_COLUMNS, contract), prepare_partner_list(
        audience, None, contract
    )


def without_session_fields(report: dict) -> dict:
    return {
        key: value
        for key, value in report.items()
        if key not in ("session_id", "transcript_sha256", "released_at")
    }


def released(contract, brand_list, partner_list, directory, tag) -> dict:
    brand = BrandSession(contract, brand_list, StateStore(directory / f"b-{tag}.db"), peer="p")
    partner = PartnerSession(contract, partner_list, StateStore(directory / f"p-{tag}.db"))
    run_in_process(brand, partner)
    assert brand.report == partner.report
    return without_session_fields(brand.report.to_dict())


def test_spark_prepares_the_same_lists_as_the_local_engine(contract, spark_lists, local_lists):
    spark_brand, spark_partner = spark_lists
    local_brand, local_partner = local_lists
    assert local_brand.quality["email"]["duplicates"] > 100  # de-duplication is exercised
    assert spark_brand.quality == local_brand.quality
    assert spark_brand.size == local_brand.size
    assert spark_brand.records_per_segment() == local_brand.records_per_segment()
    assert spark_brand.group_sizes() == local_brand.group_sizes()
    assert spark_partner.quality == local_partner.quality
    assert spark_partner.size == local_partner.size
    key = b"sketch key of this party's state"
    assert (spark_brand.sketch(key) == local_brand.sketch(key)).all()
    assert (spark_partner.sketch(key) == local_partner.sketch(key)).all()


def test_the_jobs_run_on_the_standalone_cluster(spark, cluster, spark_lists):
    """The module's jobs ran in the worker's one executor, not in the driver."""
    url, directory = cluster
    assert spark.sparkContext.master == url
    executor_logs = list((directory / "work").glob("app-*/*/stderr"))
    assert len(executor_logs) == 1
    assert re.search(r"Executor: Finished task", executor_logs[0].read_text(errors="replace"))


def test_spark_sessions_release_the_single_machine_report(
    contract, spark_lists, local_lists, scratch, tmp_path
):
    spark_brand, spark_partner = spark_lists
    local_brand, local_partner = local_lists
    expected = released(contract, local_brand, local_partner, tmp_path, "local")
    assert expected["overlap"]["total"] > 300
    assert released(contract, spark_brand, spark_partner, tmp_path, "spark") == expected
    # either side may use either engine
    assert released(contract, spark_brand, local_partner, tmp_path, "mixed") == expected
    # each session's encrypted elements are removed once streamed
    assert list(scratch.iterdir()) == []


def test_spark_stream_order_is_the_order_of_the_encrypted_values(contract, spark_lists):
    """The brand's groups and the partner's records go out sorted by encrypted value, an order
    the peer could compute from what it receives, so the file's row order stays hidden."""
    from cleanroom.crypto.batches import INLINE
    from cleanroom.crypto.commutative import CommutativeCipher

    brand, partner = spark_lists
    cipher = CommutativeCipher.generate()
    groups: dict[tuple[int, int], list[bytes]] = {}
    for segment, key, _, elements in brand.encrypt(cipher, INLINE):
        groups.setdefault((segment, key), []).extend(
            elements[i : i + 32] for i in range(0, len(elements), 32)
        )
    assert [len(groups[divmod(g, 2)]) for g in range(6)] == brand.group_sizes()
    assert all(values == sorted(values) for values in groups.values())
    records = partner.encrypt(cipher, INLINE)
    sent = b"".join(records.chunks)
    rows = [sent[i : i + 64] for i in range(0, len(sent), 64)]
    assert len(rows) == partner.size == len(records.attributes)
    assert rows == sorted(rows)


@pytest.mark.parametrize(
    "damage",
    ["segment label", "attribute value", "invalid emails", "missing column"],
)
def test_spark_bad_input_fails_like_the_local_engine(spark, files, contract, tmp_path, damage):
    from cleanroom.lists.spark import prepare_brand_list_spark, prepare_partner_list_spark

    crm = pd.read_parquet(files / "crm.parquet")
    audience = pd.read_parquet(files / "audience.parquet")
    if damage == "segment label":
        crm.loc[[700, 900], "tier"] = "gold"
    elif damage == "attribute value":
        audience[contract.attributes[0]] = audience[contract.attributes[0]].astype(str)
        audience.loc[1234, contract.attributes[0]] = "maybe"
    elif damage == "invalid emails":
        audience.loc[:1500, "email"] = "not-an-email"
    else:
        audience = audience.drop(columns=[contract.attributes[1]])
    crm.to_parquet(tmp_path / "crm.parquet")
    audience.to_parquet(tmp_path / "audience.parquet")
    crm_path, audience_path = str(tmp_path / "crm.parquet"), str(tmp_path / "audience.parquet")

    if damage == "segment label":
        with pytest.raises(InputError) as local:
            prepare_brand_list(crm_path, BRAND_COLUMNS, contract)
        with pytest.raises(InputError) as remote:
            prepare_brand_list_spark(spark, crm_path, BRAND_COLUMNS, contract)
        assert "data row 701" in str(remote.value)
    else:
        with pytest.raises(InputError) as local:
            prepare_partner_list(audience_path, None, contract)
        with pytest.raises(InputError) as remote:
            prepare_partner_list_spark(spark, audience_path, None, contract)
    if damage == "missing column":
        assert contract.attributes[1] in str(remote.value)
        assert audience_path in str(remote.value)
    else:
        assert str(remote.value) == str(local.value)
