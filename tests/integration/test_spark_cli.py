"""``cleanroom serve --engine spark`` and ``cleanroom-client run --engine spark`` as real
processes, each running its Spark jobs in local mode (Spark's default), release the local
engine's figures. test_spark_engine.py covers a standalone cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from support import BRAND_COLUMNS, SPARK_DRIVER_ARGS, partner_args, start_server, stop_server

from cleanroom.brand.demo import write_demo_files
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.privacy.calibration import load_contract
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

# Local mode on loopback, with the suite's Spark settings (tests/support.py).
SPARK_ENV = {
    "SPARK_LOCAL_IP": "127.0.0.1",
    "PYSPARK_PYTHON": sys.executable,
    "PYSPARK_SUBMIT_ARGS": f"{SPARK_DRIVER_ARGS} pyspark-shell",
}


def local_engine_report(directory) -> dict:
    """The same session on the single-machine engine, in this process."""
    contract = load_contract(directory / "contract.toml")
    brand = BrandSession(
        contract,
        prepare_brand_list(str(directory / "crm.parquet"), BRAND_COLUMNS, contract),
        StateStore(directory / "local-brand.db"),
        peer="newsco",
    )
    partner = PartnerSession(
        contract,
        prepare_partner_list(str(directory / "audience.parquet"), None, contract),
        StateStore(directory / "local-partner.db"),
    )
    run_in_process(brand, partner)
    return brand.report.to_dict()


def test_cli_engine_spark_on_both_sides_matches_the_local_engine(tmp_path):
    """``cleanroom serve --engine spark`` and ``cleanroom-client run --engine spark`` as real
    processes over mutual TLS, on Parquet files, release the local engine's figures."""
    write_demo_files(tmp_path, brand_records=1200, partner_records=2000, min_set_size=20)
    contract = tmp_path / "contract.toml"
    contract.write_text(contract.read_text().replace('"discrete_gaussian"', '"none"'))
    pd.read_csv(tmp_path / "crm.csv", dtype=str).to_parquet(tmp_path / "crm.parquet")
    pd.read_csv(tmp_path / "audience.csv").to_parquet(tmp_path / "audience.parquet")
    config = tmp_path / "brand.toml"
    config.write_text(config.read_text().replace("crm.csv", "crm.parquet"))

    # each process's default scratch directory goes under temporary, and must be gone at exit
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**SPARK_ENV, "TMPDIR": str(temporary)}
    # a Spark server starts a JVM and prepares its CRM before it listens
    server, port = start_server(tmp_path, env, ("--engine", "spark"), start_seconds=600)
    try:
        args = partner_args(port, "--out", "spark.json", "--engine", "spark", "--quiet")
        args[args.index("audience.csv")] = "audience.parquet"
        result = subprocess.run(
            args,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **env},
        )
    finally:
        stop_server(server)
    assert result.returncode == 0, result.stderr
    assert list(temporary.glob("cleanroom-spark-*")) == []
    remote = json.loads((tmp_path / "spark.json").read_text())
    local = local_engine_report(tmp_path)
    assert remote["overlap"] == local["overlap"]
    assert remote["overlap"]["total"] > 200
    assert remote["attributes"] == local["attributes"]
    assert remote["partner_size"] == local["partner_size"]
