"""cleanroom.arrow_values builds from buffers what pyarrow's conversions build, and a list's
preparation from a file never imports pandas (the 0.25 CPU-s it would add to every
``cleanroom`` and ``cleanroom-client`` process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.arrow_values import (
    booleans,
    number_scalar,
    numpy_mask,
    numpy_view,
    string_scalar,
    strings,
)
from cleanroom.brand.demo import write_demo_files

SETTINGS = settings(max_examples=200, deadline=None)
NUMBER_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint64()]


@SETTINGS
@given(st.lists(st.booleans(), max_size=70))
def test_booleans_equal_pyarrows_conversion(values):
    built = booleans(np.array(values, dtype=bool))
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.bool_()))


@SETTINGS
@given(st.lists(st.text(), max_size=20))
def test_strings_equal_pyarrows_conversion(values):
    built = strings(values)
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.string()))
    if values:
        assert string_scalar(values[0]).equals(pa.scalar(values[0], pa.string()))


@SETTINGS
@given(st.sampled_from(NUMBER_TYPES), st.data())
def test_number_scalars_equal_pyarrows_conversion(arrow_type, data):
    info = np.iinfo(arrow_type.to_pandas_dtype())
    value = data.draw(st.integers(int(info.min), int(info.max)))
    assert number_scalar(value, arrow_type).equals(pa.scalar(value, arrow_type))


@SETTINGS
@given(st.floats(allow_nan=False, width=32), st.sampled_from([pa.float32(), pa.float64()]))
def test_float_scalars_equal_pyarrows_conversion(value, arrow_type):
    assert number_scalar(value, arrow_type).equals(pa.scalar(value, arrow_type))


@SETTINGS
@given(
    st.lists(st.one_of(st.none(), st.booleans()), max_size=70),
    st.integers(0, 9),
    st.booleans(),
)
def test_numpy_mask_fills_nulls_and_honours_slices(values, start, missing):
    """A sliced array (a non-zero offset into its bitmap) reads from the right bit."""
    array = pa.array(values, pa.bool_())[start:]
    expected = [missing if v is None else v for v in values[start:]]
    assert numpy_mask(array, missing=missing).tolist() == expected


@SETTINGS
@given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=40), st.integers(0, 5))
def test_numpy_view_reads_the_values_of_a_slice(values, start):
    array = pa.array(values, pa.int32())[start:]
    assert numpy_view(array).tolist() == values[start:]


def test_numpy_view_refuses_nulls():
    with pytest.raises(ValueError, match="without nulls"):
        numpy_view(pa.array([1, None], pa.int64()))


def test_preparing_both_lists_from_files_does_not_import_pandas(tmp_path):
    """Every key kind, segments and attributes, from the demo's CSV files, in a fresh
    interpreter: what ``cleanroom serve`` and ``cleanroom-client run`` do at start."""
    write_demo_files(tmp_path, brand_records=300, partner_records=400, min_set_size=20)
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
        from cleanroom.privacy.calibration import load_contract

        directory = Path(sys.argv[1])
        contract = load_contract(directory / "contract.toml")
        columns = {"email": "email", "email_sha256": "email_sha256", "phone": "phone",
                   "segment": "tier"}
        brand = prepare_brand_list(str(directory / "crm.csv"), columns, contract)
        partner = prepare_partner_list(str(directory / "audience.csv"), None, contract)
        print(json.dumps([brand.size, partner.size, "pandas" in sys.modules]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    brand_size, partner_size, imported_pandas = json.loads(result.stdout)
    assert brand_size > 250 and partner_size > 350
    assert not imported_pandas
