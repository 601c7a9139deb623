"""Choosing where a party's own list is prepared: bad choices fail before anything runs."""

from __future__ import annotations

import pytest

from cleanroom.cli_support import check_engine
from cleanroom.errors import InputError


def test_engines_are_local_and_spark():
    assert check_engine("local", None) == "local"
    assert check_engine("spark", "s3://bucket/scratch") == "spark"


def test_an_unknown_engine_is_named():
    with pytest.raises(InputError, match="--engine must be one of local, spark, not 'dask'"):
        check_engine("dask", None)


def test_a_scratch_directory_needs_the_spark_engine():
    with pytest.raises(InputError, match="--spark-scratch only applies with --engine spark"):
        check_engine("local", "scratch-dir")


def test_a_catalog_table_needs_the_spark_engine(tmp_path):
    from cleanroom.brand.config import load_server_config
    from cleanroom.brand.demo import write_demo_files
    from cleanroom.brand.servicer import prepare_offers

    write_demo_files(tmp_path, brand_records=50, partner_records=50)
    config = tmp_path / "brand.toml"
    config.write_text(config.read_text().replace('"crm.csv"', '"table:crm.customers"'))
    settings = load_server_config(config)
    assert settings.crm == "table:crm.customers"
    with pytest.raises(
        InputError, match=r"'table:crm\.customers': a catalog table needs --engine spark"
    ):
        prepare_offers(settings)
