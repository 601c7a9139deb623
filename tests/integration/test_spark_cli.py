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
from support import partner_args, start_server, stop_server

from cleanroom.brand.demo import write_demo_files

pytestmark = [
    pytest.mark.slow,
    pytest.mark.spark,
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
        reason="the Spark engine needs Java 17+ and none is installed (no java on PATH, no JAVA_HOME)",
    ),
]

# Local mode on loopback only, no web UI, few shuffle partitions for small data; a
# short-lived JVM: quick compilation only, one garbage collector thread.
SPARK_ENV = {
    "SPARK_LOCAL_IP": "127.0.0.1",
    "PYSPARK_PYTHON": sys.executable,
    "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1"
    " --conf spark.driver.bindAddress=127.0.0.1 --conf spark.sql.shuffle.partitions=4"
    " --driver-java-options '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC' pyspark-shell",
}


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

    def session(engine: str, out: str) -> dict:
        # a Spark server starts a JVM and prepares its CRM before it listens
        server, port = start_server(tmp_path, SPARK_ENV, ("--engine", engine), start_seconds=600)
        try:
            args = partner_args(port, "--out", out, "--engine", engine, "--quiet")
            args[args.index("audience.csv")] = "audience.parquet"
            result = subprocess.run(
                args,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
                env={**os.environ, **SPARK_ENV},
            )
        finally:
            stop_server(server)
        assert result.returncode == 0, result.stderr
        return json.loads((tmp_path / out).read_text())

    local = session("local", "local.json")
    remote = session("spark", "spark.json")
    assert remote["overlap"] == local["overlap"]
    assert remote["overlap"]["total"] > 200
    assert remote["attributes"] == local["attributes"]
    assert remote["partner_size"] == local["partner_size"]
