"""Unit tests for cleanroom.lists.tables: loading, column casting, atomic writes."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cleanroom.errors import InputError
from cleanroom.lists import tables as tables_module
from cleanroom.lists.tables import (
    boolean_column,
    csv_dialect,
    load_table,
    segment_column,
    source_name,
    string_column,
    write_table,
)

CSV_TEXT = (
    "email,phone,interest_travel,tier\n"
    "Jane@Example.com,+12015550123,true,loyal\n"
    "bob@example.com,0044 20 7946 0958,0,\n"
    ",007,yes,lapsed\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------- load_table


def test_load_csv_reads_every_column_as_string(tmp_path: Path) -> None:
    table = load_table(write(tmp_path / "crm.csv", CSV_TEXT), required=["email"], role="brand CRM")
    assert table.column_names == ["email", "phone", "interest_travel", "tier"]
    assert all(pa.types.is_string(f.type) for f in table.schema)
    assert table.column("phone").to_pylist() == ["+12015550123", "0044 20 7946 0958", "007"]
    assert table.column("email").to_pylist() == ["Jane@Example.com", "bob@example.com", None]
    assert table.column("tier").to_pylist() == ["loyal", None, "lapsed"]


def test_load_csv_gz_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "audience.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\ufeff" + CSV_TEXT)
    table = load_table(path, required=["email", "phone"], role="partner audience")
    assert table.column_names[0] == "email"
    assert table.num_rows == 3


def test_load_csv_keeps_na_like_strings(tmp_path: Path) -> None:
    table = load_table(write(tmp_path / "a.csv", "tier\nNA\nnull\n\n"), role="brand CRM")
    assert table.column("tier").to_pylist() == ["NA", "null"]


def test_load_parquet_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "crm.parquet"
    pq.write_table(pa.table({"email": ["a@b.co"], "flag": [True], "phone": [2015550123]}), path)
    table = load_table(path, required=["email", "flag"], role="brand CRM")
    assert table.schema.field("flag").type == pa.bool_()
    assert table.schema.field("phone").type == pa.int64()
    assert load_table(str(path), role="brand CRM").num_rows == 1


def test_load_pq_extension(tmp_path: Path) -> None:
    path = tmp_path / "crm.PQ"
    pq.write_table(pa.table({"email": ["a@b.co"]}), path)
    assert load_table(path, required=["email"], role="brand CRM").num_rows == 1


def test_load_dataframe_and_arrow() -> None:
    df = pd.DataFrame({"email": ["a@b.co", None], "flag": [1, 0]})
    table = load_table(df, required=["email"], role="partner audience")
    assert table.column("email").to_pylist() == ["a@b.co", None]
    arrow = pa.table({"email": ["a@b.co"]})
    assert load_table(arrow, required=["email"], role="partner audience") is arrow
    with pytest.raises(InputError) as err:
        load_table(df, required=["phone"], role="partner audience")
    assert str(err.value).startswith("partner audience <DataFrame>: missing required column")
    with pytest.raises(InputError, match=r"partner audience <Arrow table>: missing required"):
        load_table(arrow, required=["phone"], role="partner audience")
    assert source_name(df) == "<DataFrame>" and source_name(arrow) == "<Arrow table>"


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError) as err:
        load_table(path, required=["email"], role="brand CRM")
    assert str(err.value) == f"brand CRM file not found: {path}"
    assert err.value.exit_code == 3


def test_load_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        load_table(tmp_path / "dir.csv", role="brand CRM")


def test_load_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "crm.xlsx", "whatever")
    with pytest.raises(InputError) as err:
        load_table(path, role="brand CRM")
    msg = str(err.value)
    assert f"brand CRM file {path}: unknown file extension" in msg
    assert ".csv, .csv.gz, .parquet, .pq" in msg


def test_load_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "crm.csv", CSV_TEXT)
    with pytest.raises(InputError) as err:
        load_table(path, required=["Email", "segment", "phone"], role="brand CRM")
    msg = str(err.value)
    assert f"brand CRM {path}: missing required column(s) 'Email', 'segment'" in msg
    assert "did you mean 'email'" in msg
    assert "available columns: 'email', 'phone', 'interest_travel', 'tier'" in msg


def test_load_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "crm.parquet"
    path.write_bytes(b"PAR1 this is not really parquet at all, just bytes")
    with pytest.raises(InputError) as err:
        load_table(path, role="partner audience")
    msg = str(err.value)
    assert msg.startswith(f"partner audience file {path}: unreadable or corrupt Parquet file: ")
    assert len(msg) > len(f"partner audience file {path}: unreadable or corrupt Parquet file: ")


def test_load_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "crm.parquet"
    pq.write_table(pa.table({"email": [f"user{i}@example.com" for i in range(100)]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"unreadable or corrupt Parquet file"):
        load_table(path, role="brand CRM")


def test_load_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv.gz"
    path.write_bytes(b"definitely not gzip")
    with pytest.raises(InputError, match=rf"brand CRM file {path}: unreadable or corrupt CSV"):
        load_table(path, role="brand CRM")


def test_load_csv_bad_row_names_row_not_content(tmp_path: Path) -> None:
    text = "email,phone\njane@example.com,+12015550123\nsecret.person@example.com,+1201,extra\n"
    path = write(tmp_path / "crm.csv", text)
    with pytest.raises(InputError) as err:
        load_table(path, role="brand CRM")
    msg = str(err.value)
    assert "data row 2 has 3 field(s), expected 2" in msg
    assert "secret.person" not in msg and "@" not in msg


def test_load_csv_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_bytes(b"email\njane.doe@example.com\xff\n")
    with pytest.raises(InputError) as err:
        load_table(path, role="brand CRM")
    msg = str(err.value)
    assert f"brand CRM file {path}: data row 1, column 'email': not valid utf-8 text" in msg
    assert "--encoding" not in msg and "encoding='cp1252'" in msg  # the library's keyword
    assert "jane.doe@example.com" not in msg


# ------------------------------------------------------------------ CSV dialects

SEMICOLON_TEXT = (
    "user_id;email;phone;sports_fan\n"
    "1;jane@example.com;+12015550123;true\n"
    '2;"Doe, John <john@example.com>";;false\n'  # a comma inside a value
    "3;mary@example.com;;true\n"
)


def test_semicolon_file_is_read_with_the_detected_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", SEMICOLON_TEXT)
    table = load_table(path, required=["sports_fan"], role="partner audience")
    assert table.column_names == ["user_id", "email", "phone", "sports_fan"]
    assert table.column("email").to_pylist()[1] == "Doe, John <john@example.com>"
    assert table.column("sports_fan").to_pylist() == ["true", "false", "true"]


@pytest.mark.parametrize(("delimiter", "name"), [("\t", "tab"), ("|", "pipe"), (",", "comma")])
def test_other_delimiters_are_detected(tmp_path: Path, delimiter: str, name: str) -> None:
    text = SEMICOLON_TEXT.replace(";", delimiter).replace('"Doe, John <john@example.com>"', "x")
    table = load_table(write(tmp_path / f"{name}.csv", text), role="partner audience")
    assert table.column_names == ["user_id", "email", "phone", "sports_fan"]
    assert table.num_rows == 3


def test_one_column_file_is_read_whole(tmp_path: Path) -> None:
    table = load_table(write(tmp_path / "a.csv", "email\na@example.com\n"), role="brand CRM")
    assert table.column_names == ["email"] and table.num_rows == 1


def test_a_wrong_delimiter_names_the_fix_not_the_whole_header(tmp_path: Path) -> None:
    plain = write(
        tmp_path / "plain.csv", SEMICOLON_TEXT.replace('"Doe, John <john@example.com>"', "x")
    )
    with pytest.raises(InputError) as err:
        load_table(
            plain,
            required=["sports_fan"],
            role="partner audience",
            dialect=csv_dialect(",", style="cli"),
        )
    msg = str(err.value)
    assert msg.startswith(f"partner audience {plain}: missing required column(s) 'sports_fan'")
    assert "read as one column" in msg and "--delimiter ';'" in msg
    assert "user_id;email" not in msg
    quoted = write(tmp_path / "quoted.csv", SEMICOLON_TEXT)  # row 2 splits on its comma
    with pytest.raises(InputError) as err:
        load_table(quoted, role="partner audience", dialect=csv_dialect(",", style="cli"))
    msg = str(err.value)
    assert "data row 2 has 2 field(s), expected 1: the header was read as one column" in msg
    assert "--delimiter ';'" in msg and "john" not in msg


def test_a_given_delimiter_is_used(tmp_path: Path) -> None:
    text = "a;b,c\n1;2,3\n4;5,6\n"  # sniffing prefers the comma here (2 consistent columns)
    path = write(tmp_path / "x.csv", text)
    assert load_table(path, role="brand CRM").column_names == ["a;b", "c"]
    table = load_table(path, role="brand CRM", dialect=csv_dialect("semicolon"))
    assert table.column_names == ["a", "b,c"]
    assert table.column("b,c").to_pylist() == ["2,3", "5,6"]


def test_a_bad_row_names_the_row_and_the_delimiter(tmp_path: Path) -> None:
    text = "email;phone\njane@example.com;+1\nsecret@example.com;+2;extra\n"
    path = write(tmp_path / "crm.csv", text)
    with pytest.raises(InputError) as err:
        load_table(path, role="brand CRM", dialect=csv_dialect(";", style="cli"))
    msg = str(err.value)
    assert "data row 2 has 3 field(s), expected 2" in msg
    assert "the delimiter is semicolon ';', as given" in msg and "--delimiter" in msg
    assert "secret" not in msg


LATIN1_TEXT = "user_id;email;city\n1;jane@example.com;Zürich\n2;jo@example.com;Málaga\n"


def test_latin1_file_names_the_row_column_and_encoding_fix(tmp_path: Path) -> None:
    path = tmp_path / "audience.csv"
    path.write_bytes(LATIN1_TEXT.encode("latin-1"))
    with pytest.raises(InputError) as err:
        load_table(path, role="partner audience", dialect=csv_dialect(style="cli"))
    msg = str(err.value)
    assert f"partner audience file {path}: data row 1, column 'city': not valid utf-8" in msg
    assert "(byte 0xfc)" in msg
    assert "--encoding 'cp1252'" in msg and "--encoding 'latin-1'" in msg
    assert "UTF8 data" not in msg


def test_latin1_file_reads_with_its_encoding(tmp_path: Path) -> None:
    path = tmp_path / "audience.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(LATIN1_TEXT.encode("latin-1"))
    table = load_table(path, role="partner audience", dialect=csv_dialect(None, "latin-1"))
    assert table.column("city").to_pylist() == ["Zürich", "Málaga"]
    assert table.column("email").to_pylist() == ["jane@example.com", "jo@example.com"]


def test_a_row_after_a_quoted_line_break_is_counted_right(tmp_path: Path) -> None:
    text = 'email,note\na@example.com,"two\nlines"\nb@example.com,caf\xe9\n'
    path = tmp_path / "crm.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match=r"data row 2, column 'note': not valid utf-8"):
        load_table(path, role="brand CRM")


def test_non_utf8_header_names_the_header(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_bytes("email;prénom\na@example.com;x\n".encode("cp1252"))
    with pytest.raises(InputError) as err:
        load_table(path, role="brand CRM", dialect=csv_dialect(style="toml"))
    msg = str(err.value)
    assert "the header row is not valid utf-8 (byte 0xe9 at position 9)" in msg
    assert 'encoding = "cp1252" in [crm]' in msg
    table = load_table(path, role="brand CRM", dialect=csv_dialect(encoding="cp1252"))
    assert table.column_names == ["email", "prénom"]


@pytest.mark.parametrize(
    ("delimiter", "encoding", "message"),
    [
        ("ab", None, "--delimiter 'ab': not a delimiter"),
        ('"', None, "not a delimiter"),
        (None, "klingon", "--encoding 'klingon': unknown encoding"),
    ],
)
def test_bad_dialect_options(delimiter: str | None, encoding: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        csv_dialect(delimiter, encoding, style="cli")


def test_dialect_aliases() -> None:
    assert csv_dialect("tab").delimiter == "\t"
    assert csv_dialect("\\t").delimiter == "\t"
    assert csv_dialect("").delimiter is None
    assert csv_dialect(None, " latin-1 ").encoding == "latin-1"


def test_load_csv_empty_and_duplicate_header(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty CSV file"):
        load_table(write(tmp_path / "empty.csv", ""), role="brand CRM")
    with pytest.raises(InputError, match=r"duplicate column name\(s\) \['email'\]"):
        load_table(write(tmp_path / "dup.csv", "email,email\na,b\n"), role="brand CRM")


def test_load_rejects_other_objects() -> None:
    with pytest.raises(InputError, match="cannot read a list"):
        load_table([1, 2], role="brand CRM")  # type: ignore[arg-type]


# --------------------------------------------------------------- string_column


def test_string_column() -> None:
    table = pa.table(
        {
            "s": pa.array(["+1", None]),
            "i": pa.array([2015550123, None], pa.int64()),
            "f": pa.array([2015550123.0, None]),
            "frac": pa.array([1.5, None]),
        }
    )
    assert string_column(table, "s").to_pylist() == ["+1", None]
    assert string_column(table, "i").to_pylist() == ["2015550123", None]
    assert string_column(table, "f").to_pylist() == ["2015550123", None]
    assert string_column(table, "frac").to_pylist() == ["1.5", None]
    with pytest.raises(InputError, match=r"crm.csv: no column 'x'; available columns: 's'"):
        string_column(table, "x", "crm.csv")


# -------------------------------------------------------------- boolean_column


def test_boolean_column_accepts() -> None:
    table = pa.table(
        {
            "s": ["true", "FALSE", " Yes ", "no", "1", "0"],
            "i": pa.array([1, 0, 1, 0, 0, 1], pa.int8()),
            "b": [True, False, True, False, False, True],
            "f": [1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        }
    )
    np.testing.assert_array_equal(
        boolean_column(table, "s", "a.csv"), [True, False, True, False, True, False]
    )
    for col in ("i", "b", "f"):
        out = boolean_column(table, col, "a.csv")
        assert out.dtype == np.bool_
        np.testing.assert_array_equal(out, [True, False, True, False, False, True])


def test_boolean_column_bad_string_names_row() -> None:
    table = pa.table({"interest_travel": ["true", "no", "maybe", "sure"]})
    with pytest.raises(InputError) as err:
        boolean_column(table, "interest_travel", "audience.csv")
    msg = str(err.value)
    assert msg.startswith("audience.csv: column 'interest_travel' data row 3: value 'maybe'")
    assert "true/false, 1/0 or yes/no" in msg and "2 bad row(s)" in msg


def test_boolean_column_null_and_bad_int() -> None:
    with pytest.raises(InputError, match=r"column 'a' data row 2: an empty value"):
        boolean_column(pa.table({"a": ["1", None]}), "a", "x.csv")
    with pytest.raises(InputError, match=r"column 'a' data row 1: an empty value"):
        boolean_column(pa.table({"a": pa.array([None, True])}), "a", "x.parquet")
    with pytest.raises(InputError, match=r"column 'a' data row 2: value 2"):
        boolean_column(pa.table({"a": [0, 2, 1]}), "a", "x.parquet")
    with pytest.raises(InputError, match=r"x.csv: no column 'b'"):
        boolean_column(pa.table({"a": [0]}), "b", "x.csv")


# -------------------------------------------------------------- segment_column


def test_segment_column_labels_and_all() -> None:
    table = pa.table({"tier": ["loyal", None, " lapsed ", "", "loyal"]})
    assert segment_column(table, "tier", ["loyal", "lapsed", "all"], "crm.csv") == [
        "loyal",
        "all",
        "lapsed",
        "all",
        "loyal",
    ]
    # no segments in the contract: any label goes
    assert segment_column(table, "tier", [], "crm.csv")[2] == "lapsed"
    assert segment_column(table, None, [], "crm.csv") == ["all"] * 5
    assert segment_column(table, None, ["all", "loyal"], "crm.csv") == ["all"] * 5


def test_segment_column_unknown_label() -> None:
    table = pa.table({"tier": ["loyal", "lapsed", "vip", "vip"]})
    with pytest.raises(InputError) as err:
        segment_column(table, "tier", ["loyal", "lapsed"], "crm.csv")
    msg = str(err.value)
    assert "crm.csv: column 'tier' data row 3 has label 'vip'" in msg
    assert "['loyal', 'lapsed']" in msg and "2 row(s)" in msg


def test_segment_column_empty_label_needs_all() -> None:
    table = pa.table({"tier": ["loyal", None]})
    with pytest.raises(InputError, match=r"data row 2 has no label \(which means 'all'\)"):
        segment_column(table, "tier", ["loyal", "lapsed"], "crm.csv")
    with pytest.raises(InputError, match="no segment column is configured"):
        segment_column(table, None, ["loyal"], "crm.csv")


def test_segment_column_non_string() -> None:
    table = pa.table({"tier": pa.array([1, 2, None])})
    assert segment_column(table, "tier", [], "crm.parquet") == ["1", "2", "all"]


# ----------------------------------------------------------------- write_table


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz", "out.parquet", "out.pq"])
def test_write_roundtrip(tmp_path: Path, name: str) -> None:
    df = pd.DataFrame({"id": ["+0012", "b", None], "score": [0.5, 1.0, 2.0]})
    path = tmp_path / name
    write_table(df, path)
    back = load_table(path, required=["id", "score"], role="output")
    assert back.column("id").to_pylist() == ["+0012", "b", None]
    assert [float(x) for x in back.column("score").to_pylist()] == [0.5, 1.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_write_replaces_existing(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    write_table(pa.table({"a": [1]}), path)
    write_table(pa.table({"a": [2, 3]}), path)
    assert pq.read_table(path).column("a").to_pylist() == [2, 3]


def test_write_failure_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.parquet"
    write_table(pa.table({"a": [1]}), path)
    original = path.read_bytes()

    def boom(table: pa.Table, sink: object) -> None:
        sink.write(b"PAR1 half a file")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tables_module.pq, "write_table", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_table(pa.table({"a": [2]}), path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]

    fresh = tmp_path / "new.parquet"
    with pytest.raises(RuntimeError):
        write_table(pa.table({"a": [2]}), fresh)
    assert not fresh.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_write_oserror_becomes_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(table: pa.Table, sink: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tables_module.pacsv, "write_csv", full)
    path = tmp_path / "out.csv"
    with pytest.raises(InputError, match=rf"output file {path}: cannot write: No space left"):
        write_table(pa.table({"a": [1]}), path)
    assert list(tmp_path.iterdir()) == []


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown file extension"):
        write_table(pa.table({"a": [1]}), tmp_path / "out.txt")
    with pytest.raises(InputError, match="does not exist"):
        write_table(pa.table({"a": [1]}), tmp_path / "missing" / "out.csv")
    with pytest.raises(InputError, match="cannot write a dict"):
        write_table({"a": [1]}, tmp_path / "out.csv")  # type: ignore[arg-type]


def test_write_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_table(pa.table({"a": [1]}), path)
    if os.name == "posix":
        assert path.stat().st_mode & 0o077 == 0
