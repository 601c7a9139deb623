"""Report tables (rich) and the lift chart (matplotlib)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from rich.console import Console

from cleanroom.errors import InputError
from cleanroom.stats.plot import plot_lift, pretty_attribute
from cleanroom.stats.render import print_report, report_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cell(attribute, segment, count, partner_count, index, suppressed=False):
    return {
        "attribute": attribute,
        "segment": segment,
        "count": count,
        "partner_count": partner_count,
        "index": index,
        "suppressed": suppressed,
    }


@pytest.fixture
def report():
    return {
        "contract_id": "acme-x-newsco-2026q4",
        "contract_sha256": "ab" * 32,
        "session_id": "s-0001",
        "transcript_sha256": "cd" * 32,
        "released_at": "2026-11-22T12:00:00Z",
        "brand_size": {"loyal": 1200, "lapsed": 800},
        "partner_size": 5000,
        "input_quality": {"email": {"rows": 5000, "valid": 4950, "invalid": 40, "duplicates": 10}},
        "overlap": {
            "total": 930,
            "by_segment": {"loyal": 610, "lapsed": 320},
            "by_key": {"email": 800, "phone": 130},
        },
        "attributes": [
            cell("interest_travel", "loyal", 240, 900, 219.0),
            cell("interest_sports", "loyal", 95, 1100, 70.8),
            cell("interest_gaming", "loyal", None, None, None, suppressed=True),
            cell("age_25_34", "loyal", 150, 1000, 123.0),
            cell("interest_travel", "lapsed", 60, 900, 104.2),
            cell("interest_sports", "lapsed", 110, 1100, 156.3),
            cell("age_25_34", "lapsed", 40, 1000, 62.5),
            cell("interest_gaming", "lapsed", None, None, None, suppressed=True),
        ],
        "privacy": {
            "mechanism": "discrete_laplace",
            "epsilon_spent": 1.0,
            "epsilon_remaining": 9.0,
        },
    }


def render(report) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    print_report(report, console)
    return console.file.getvalue()


def test_summary_has_sizes_overlap_and_privacy(report):
    text = render(report)
    for needle in (
        "acme-x-newsco-2026q4",
        "5,000",
        "930",
        "610",
        "320",
        "email",
        "phone",
        "discrete_laplace",
        "1 spent",
        "9 remaining",
        "1,200",
    ):
        assert needle in text


def test_attributes_in_index_order_with_suppressed_last(report):
    text = render(report)
    attr_part = text[text.index("Audience attributes") :]
    loyal = attr_part[: attr_part.index("lapsed")]
    lapsed = attr_part[attr_part.index("lapsed") :]
    order = ["interest_travel", "age_25_34", "interest_sports", "interest_gaming"]
    positions = [loyal.index(a) for a in order]
    assert positions == sorted(positions)
    order = ["interest_sports", "interest_travel", "age_25_34", "interest_gaming"]
    positions = [lapsed.index(a) for a in order]
    assert positions == sorted(positions)
    gaming_line = next(line for line in loyal.splitlines() if "interest_gaming" in line)
    assert "suppressed" in gaming_line
    assert "219" in loyal and "39.3%" in loyal  # index and share of matched (240/610)


def test_report_tables_overlap_only(report):
    report["attributes"] = []
    tables = report_tables(report)
    assert len(tables) == 1
    assert "930" in render(report)


def test_suppressed_overlap_cell_renders(report):
    report["overlap"]["by_segment"]["lapsed"] = None
    text = render(report)
    assert "suppressed" in text


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    ihdr = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(kind + ihdr) == crc
    width, height = struct.unpack(">II", ihdr[:8])
    return width, height


def test_plot_writes_a_png(report, tmp_path: Path):
    # pytest runs with filterwarnings=error, so any matplotlib warning fails this test
    out = plot_lift(report, tmp_path / "charts" / "lift.png")
    assert out == tmp_path / "charts" / "lift.png"
    data = out.read_bytes()
    width, height = _png_size(data)
    assert width > 800 and height > 400
    assert data.endswith(b"IEND\xaeB`\x82")
    assert [p.name for p in out.parent.iterdir()] == ["lift.png"]  # no temp file left


def test_plot_replaces_existing_file(report, tmp_path: Path):
    out = tmp_path / "lift.png"
    out.write_bytes(b"old")
    plot_lift(report, out)
    assert out.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_single_segment_and_all_suppressed(report, tmp_path: Path):
    report["overlap"]["by_segment"] = {"all": 930}
    report["attributes"] = [
        cell("interest_travel", "all", None, None, None, suppressed=True),
        cell("interest_sports", "all", None, None, None, suppressed=True),
    ]
    out = plot_lift(report, tmp_path / "lift.png")
    _png_size(out.read_bytes())


def test_plot_refuses_overlap_only(report, tmp_path: Path):
    report["attributes"] = []
    with pytest.raises(InputError, match="no attribute"):
        plot_lift(report, tmp_path / "lift.png")
    assert not (tmp_path / "lift.png").exists()


def test_pretty_attribute():
    assert pretty_attribute("interest_travel") == "Interest travel"
    assert pretty_attribute("age_25_34") == "Age 25\u201334"
