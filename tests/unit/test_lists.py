"""Preparing a party's list: every bad input is refused before anything leaves the machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from cleanroom.errors import InputError
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list

ATTRIBUTES = ("interest_travel", "parent")


@pytest.fixture
def contract(make_contract):
    return make_contract(attributes=ATTRIBUTES, segments=("loyal", "lapsed"), min_set_size=1)


def audience(**columns):
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "email": ["a@example.com", "b@example.com"],
            "phone": ["", ""],
            "interest_travel": [True, False],
            "parent": [0, 1],
        }
    )
    for name, values in columns.items():
        if values is None:
            frame = frame.drop(columns=name)
        else:
            frame[name] = values
    return frame


def test_a_good_audience_is_prepared(contract):
    prepared = prepare_partner_list(audience(), None, contract)
    assert prepared.size == 2 and prepared.attributes.tolist() == [[True, False], [False, True]]


def test_an_attribute_missing_from_the_file_is_named(contract):
    with pytest.raises(InputError, match="parent"):
        prepare_partner_list(audience(parent=None), None, contract)


def test_non_boolean_attribute_values_name_the_column_and_row(contract):
    with pytest.raises(InputError, match=r"'interest_travel' data row 2"):
        prepare_partner_list(audience(interest_travel=["yes", "maybe"]), None, contract)


def test_a_mapping_to_an_unknown_attribute_is_refused(contract):
    with pytest.raises(InputError, match="unknown column mapping 'interest_golf'"):
        prepare_partner_list(audience(), {"interest_golf": "parent"}, contract)


def test_attribute_columns_can_be_mapped(contract):
    frame = audience().rename(columns={"parent": "HAS_KIDS"})
    prepared = prepare_partner_list(frame, {"parent": "HAS_KIDS"}, contract)
    assert prepared.attributes[:, 1].tolist() == [False, True]


def test_segment_labels_the_contract_does_not_list_are_refused(contract):
    crm = pd.DataFrame({"email": ["a@example.com", "b@example.com"], "tier": ["loyal", "vip"]})
    with pytest.raises(InputError, match=r"'tier' data row 2 has label 'vip'"):
        prepare_brand_list(crm, {"email": "email", "segment": "tier"}, contract)


def test_a_missing_key_column_says_how_to_map_one(contract):
    with pytest.raises(InputError, match="--column email=COLUMN"):
        prepare_partner_list(audience(email=None, phone=None), None, contract)


def test_the_protocol_imports_the_list_port_and_no_list_implementation():
    """In a fresh interpreter (this one has imported the implementations long ago)."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        "import cleanroom.protocol\n"
        "for info in pkgutil.iter_modules(cleanroom.protocol.__path__):\n"
        "    importlib.import_module(f'cleanroom.protocol.{info.name}')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('cleanroom.'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(done.stdout)
    assert "cleanroom.protocol.list_port" in loaded
    assert [m for m in loaded if m.startswith("cleanroom.lists")] == []


def test_a_prepared_list_knows_its_contract(make_contract):
    contract = make_contract(segments=("loyal", "lapsed"), keys=("email", "phone"))
    crm = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com", "c@example.com", "", "a@example.com"],
            "phone": ["", "+12015550123", "", "+12015550124", ""],
            "segment": ["loyal", "lapsed", "lapsed", "lapsed", "loyal"],
        }
    )
    brand = prepare_brand_list(crm, {"segment": "segment"}, contract)
    assert brand.contract is contract
    assert brand.records_per_segment() == [1, 3]  # the repeated email left no key: dropped
    # (segment, key) groups: loyal email, loyal phone, lapsed email, lapsed phone
    assert brand.group_sizes() == [1, 0, 2, 2]
