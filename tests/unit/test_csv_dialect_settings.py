"""CSV dialects where a user names a list: brand.toml's [crm], the library Client."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cleanroom.brand.config import load_server_config
from cleanroom.brand.demo import write_demo_files
from cleanroom.brand.servicer import prepare_offers
from cleanroom.errors import InputError
from cleanroom.lists.tables import csv_dialect


def rewrite(source: Path, target: Path, *, sep: str, encoding: str) -> Path:
    """The same table as another tool would save it: another delimiter and encoding, and a
    non-ASCII value in a column no key reads (so the bytes really differ from UTF-8)."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame["city"] = "Zürich"
    frame.to_csv(target, sep=sep, encoding=encoding, index=False)
    return target


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dialects")
    write_demo_files(directory, brand_records=200, partner_records=200, min_set_size=10)
    return directory


def with_crm_settings(site: Path, name: str, settings: str) -> Path:
    text = (site / "brand.toml").read_text()
    text = text.replace('path = "crm.csv"', f'path = "crm-latin1.csv"\n{settings}')
    config = site / name
    config.write_text(text)
    return config


def test_brand_toml_delimiter_and_encoding_read_the_same_crm(site: Path) -> None:
    rewrite(site / "crm.csv", site / "crm-latin1.csv", sep=";", encoding="latin-1")
    expected = prepare_offers(load_server_config(site / "brand.toml"))
    config = with_crm_settings(site, "latin1.toml", 'delimiter = ";"\nencoding = "latin-1"')
    got = prepare_offers(load_server_config(config))
    for contract_id, offer in expected.items():
        assert got[contract_id].brand_list.keys == offer.brand_list.keys
        assert (got[contract_id].brand_list.segments == offer.brand_list.segments).all()


def test_brand_toml_without_encoding_names_the_setting_to_add(site: Path) -> None:
    rewrite(site / "crm.csv", site / "crm-latin1.csv", sep=";", encoding="latin-1")
    config = with_crm_settings(site, "detected.toml", "")
    with pytest.raises(InputError) as err:
        prepare_offers(load_server_config(config))
    msg = str(err.value)
    assert "crm-latin1.csv: data row 1, column 'city': not valid utf-8 text (byte 0xfc)" in msg
    assert 'encoding = "latin-1" in [crm]' in msg


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('encoding = "klingon"', "[crm] encoding 'klingon': unknown encoding"),
        ('delimiter = ";;"', "[crm] delimiter ';;': not a delimiter"),
        ("delimiter = 59", "[crm] delimiter: must be a str"),
    ],
)
def test_brand_toml_bad_dialect_settings(site: Path, settings: str, message: str) -> None:
    config = with_crm_settings(site, "bad.toml", settings)
    with pytest.raises(InputError) as err:
        load_server_config(config)
    assert str(err.value).startswith(str(config)) and message in str(err.value)


def test_client_prepare_takes_a_dialect(site: Path) -> None:
    from cleanroom_client import Client

    client = Client("127.0.0.1:1", contract=site / "contract.toml", insecure=True)
    expected = client.prepare(site / "audience.csv")
    moved = rewrite(site / "audience.csv", site / "audience-tab.csv", sep="\t", encoding="cp1252")
    with pytest.raises(InputError, match=r"encoding='cp1252' for Excel on Windows"):
        client.prepare(moved)
    got = client.prepare(moved, dialect=csv_dialect("tab", "cp1252"))
    assert got.keys == expected.keys
    assert (got.attributes == expected.attributes).all()


def test_the_spark_engine_refuses_a_dialect_it_would_ignore(site: Path) -> None:
    from cleanroom_client import Client

    client = Client("127.0.0.1:1", contract=site / "contract.toml", insecure=True, engine="spark")
    with pytest.raises(InputError, match=r"delimiter= and encoding= are for the local engine"):
        client.prepare(site / "audience.csv", dialect=csv_dialect(";"))
