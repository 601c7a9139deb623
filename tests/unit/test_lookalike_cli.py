"""``cleanroom-client lookalike`` and ``cleanroom report model`` in process: ids, --size, hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cleanroom_client.cli import app as partner_app
from support import report_cell as cell

from cleanroom.brand.cli import app as brand_app
from cleanroom.cli_support import run_app
from cleanroom.report.lookalike import report_sha256


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    report = {
        "contract_id": "c",
        "session_id": "s",
        "transcript_sha256": "ab" * 32,
        "partner_size": 1000,
        "overlap": {"total": 200, "by_segment": {"loyal": 200}, "by_key": {"email": 200}},
        "attributes": [cell("travel", "loyal", 120, 300), cell("sports", "loyal", 10, 300)],
        "privacy": {
            "mechanism": "discrete_laplace",
            "interval_999": {"overlap": 20, "attribute_count": 30, "partner_count": 10},
        },
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps({**report, "signatures": {}}))
    return path


def audience(tmp_path: Path, ids: list[str | None]) -> Path:
    frame = pd.DataFrame(
        {
            "user_id": ids,
            "travel": [i % 2 == 0 for i in range(len(ids))],
            "sports": [i % 3 == 0 for i in range(len(ids))],
        }
    )
    path = tmp_path / "audience.csv"
    frame.to_csv(path, index=False)
    return path


def run(app, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        run_app(app, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, " ".join(err.split())


def lookalike(report_file: Path, audience_file: Path, size: int, *extra: str) -> list[str]:
    out = audience_file.parent / "lookalike.csv"
    return [
        "lookalike",
        "--report",
        str(report_file),
        "--audience",
        str(audience_file),
        "--size",
        str(size),
        "--out",
        str(out),
        *extra,
    ]


def test_size_above_the_audience_warns_and_exports_everyone(tmp_path, report_file, capsys):
    file = audience(tmp_path, [f"u{i}" for i in range(40)])
    code, out, err = run(partner_app, lookalike(report_file, file, 100, "--format", "json"), capsys)
    assert code == 0
    assert "--size 100 exceeds the audience (40 users" in err and "exported all 40" in err
    summary = json.loads(out)
    assert summary["exported"] == 40 and summary["requested"] == 100
    assert summary["expected_index"] == pytest.approx(100, abs=1e-9)
    assert summary["report_sha256"] == report_sha256(json.loads(report_file.read_text()))
    assert summary["model"]["excluded"] == ["sports"]  # 10 < 30
    exported = pd.read_csv(tmp_path / "lookalike.csv")
    assert sorted(exported["user_id"]) == sorted(f"u{i}" for i in range(40))


def test_no_warning_when_size_fits(tmp_path, report_file, capsys):
    file = audience(tmp_path, [f"u{i}" for i in range(40)])
    code, out, err = run(partner_app, lookalike(report_file, file, 5), capsys)
    assert code == 0 and "warning" not in err
    assert "exported 5 partner ids" in " ".join(out.split())
    assert report_sha256(json.loads(report_file.read_text())) in out


def test_duplicate_id_is_refused_with_its_row(tmp_path, report_file, capsys):
    file = audience(tmp_path, ["a", "b", "c", "b"])
    code, _, err = run(partner_app, lookalike(report_file, file, 2), capsys)
    assert code == 3
    assert "column 'user_id' data row 4: duplicate id (first in data row 2)" in err
    assert not (tmp_path / "lookalike.csv").exists()


def test_empty_id_is_refused_with_its_row(tmp_path, report_file, capsys):
    file = audience(tmp_path, ["a", None, "c"])
    code, _, err = run(partner_app, lookalike(report_file, file, 2), capsys)
    assert code == 3
    assert "column 'user_id' data row 2: empty id" in err
    assert not (tmp_path / "lookalike.csv").exists()


def test_options_reach_the_model_and_both_sides_agree(tmp_path, report_file, capsys):
    file = audience(tmp_path, [f"u{i}" for i in range(10)])
    options = ["--segment", "loyal", "--noise-multiple", "0.2", "--smoothing", "5"]
    code, out, _ = run(
        partner_app, lookalike(report_file, file, 3, *options, "--format", "json"), capsys
    )
    assert code == 0
    partner_model = json.loads(out)["model"]
    assert partner_model["noise_multiple"] == 0.2 and partner_model["smoothing"] == 5.0
    assert partner_model["excluded"] == []  # 10 >= 0.2 x 30
    code, out, _ = run(brand_app, ["report", "model", report_file, *options], capsys)
    assert code == 0 and json.loads(out) == partner_model
    code, out, _ = run(brand_app, ["report", "model", report_file, "--format", "table"], capsys)
    assert code == 0
    assert partner_model["report_sha256"] in out
    assert "sports" in out and "excluded: count 10 within the noise" in " ".join(out.split())
