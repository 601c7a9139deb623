"""Report tables (rich) and the lift chart (matplotlib)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.patches import Rectangle
from rich.console import Console

from cleanroom.errors import InputError
from cleanroom.report.document import Report
from cleanroom.report.plot import (
    ABOVE,
    ABOVE_MUTED,
    BELOW,
    BELOW_MUTED,
    DPI,
    MAX_FIGURE_HEIGHT,
    lift_figure,
    lift_panels,
    plot_lift,
    pretty_attribute,
    x_limit,
)
from cleanroom.report.render import print_report, report_tables

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
            "interval_999": {"overlap": 50, "attribute_count": 100, "partner_count": 20},
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


def attribute_line(text: str, segment_start: str, attribute: str) -> str:
    part = text[text.index("Audience attributes") :]
    part = part[part.index(segment_start) :]
    return next(line for line in part.splitlines() if attribute in line)


def test_table_shows_the_noise_interval_and_index_range(report):
    text = render(report)
    line = attribute_line(text, "loyal", "interest_travel")
    assert "240 \u00b1100" in line
    # 99.9% range: count 140..340, overlap 560..660, partner_count 880..920
    low = round(100 * (140 / 660) / (920 / 5000))
    high = round(100 * (340 / 560) / (880 / 5000))
    assert f"{low}\u2013{high}" in line
    assert "4,302" not in text and "930 \u00b150" in text  # overlaps carry theirs too


def test_cells_within_the_noise_are_marked(report):
    text = render(report)
    assert "71\u2020" in attribute_line(text, "loyal", "interest_sports")  # range 0-161
    # count 150 is clear of its noise, but the index's range (37-228) includes 100
    assert "123\u2020" in attribute_line(text, "loyal", "age_25_34")
    assert "219\u2020" not in attribute_line(text, "loyal", "interest_travel")  # 115-345
    assert "\u2020 within the noise: the range includes 100" in " ".join(text.split())
    frame = Report(report).to_pandas()
    noisy = frame[frame["noise_dominated"]]
    assert set(zip(noisy["segment"], noisy["attribute"], strict=True)) == {
        ("loyal", "interest_sports"),
        ("lapsed", "interest_travel"),
        ("lapsed", "age_25_34"),
    }
    within = frame[frame["within_noise"]]
    assert set(zip(within["segment"], within["attribute"], strict=True)) == {
        ("loyal", "interest_sports"),
        ("loyal", "age_25_34"),
        ("lapsed", "interest_travel"),
        ("lapsed", "interest_sports"),
        ("lapsed", "age_25_34"),
    }


def test_shares_above_100_percent_are_capped_and_flagged(report):
    report["attributes"][0]["count"] = 700  # noise pushed it above the overlap 610
    line = attribute_line(render(report), "loyal", "interest_travel")
    assert "100.0%*" in line and "114.8%" not in line


def test_suppressed_cell_shows_a_released_partner_share(report):
    report["attributes"][2]["partner_count"] = 800  # gaming: cell suppressed, base released
    line = attribute_line(render(report), "loyal", "interest_gaming")
    assert "16.0%" in line and "suppressed" in line


def test_to_pandas_noise_columns(report):
    frame = Report(report).to_pandas()
    travel = frame[(frame.segment == "loyal") & (frame.attribute == "interest_travel")].iloc[0]
    assert (travel["count_lo"], travel["count_hi"]) == (140, 340)
    assert travel["index_lo"] == round(100 * (140 / 660) / (920 / 5000), 1)
    assert travel["index_hi"] == round(100 * (340 / 560) / (880 / 5000), 1)
    sports = frame[(frame.segment == "loyal") & (frame.attribute == "interest_sports")].iloc[0]
    assert sports["count_lo"] == 0 and sports["index_lo"] == 0.0  # clamped at 0
    gaming = frame[(frame.segment == "loyal") & (frame.attribute == "interest_gaming")].iloc[0]
    assert pd.isna(gaming["count_lo"]) and pd.isna(gaming["index_hi"])
    del report["privacy"]["interval_999"]
    old = Report(report).to_pandas()  # a report without intervals: unknown, not zero
    assert old["count_lo"].isna().all() and not old["noise_dominated"].any()


def many_attributes(report, count=50):
    rng = np.random.default_rng(0)
    report["attributes"] = [
        cell(f"attr_{a:02d}", segment, int(c), 1500, round(float(c) / 610 / 0.3 * 100, 1))
        for a in range(count)
        for segment, c in (("loyal", rng.integers(50, 400)), ("lapsed", rng.integers(50, 300)))
    ]
    return report


def test_top_keeps_a_fifty_attribute_chart_slide_sized(report, tmp_path: Path):
    many_attributes(report)
    width, height = _png_size(plot_lift(report, tmp_path / "lift.png").read_bytes())
    assert width == 2000 and height <= 1100  # 13.33 x ~7 in at 150 dpi
    fig = lift_figure(report)
    notes = [t.get_text() for ax in fig.axes for t in ax.texts if "not shown" in t.get_text()]
    assert len(notes) == 2 and all("38 more between" in n for n in notes)
    labels = [len([t for t in ax.get_yticklabels() if t.get_text()]) for ax in fig.axes[:2]]
    assert labels == [12, 12]
    _, tall = _png_size(plot_lift(report, tmp_path / "all.png", top=0).read_bytes())
    assert tall <= MAX_FIGURE_HEIGHT * DPI + 1
    with pytest.raises(InputError, match="--top"):
        lift_figure(report, top=-1)


def test_value_labels_stay_off_the_average_line(report):
    report["attributes"][3]["index"] = 97.0  # a bar ending just short of 100
    report["attributes"][4]["index"] = 99.0
    fig = lift_figure(report, top=0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    checked = 0
    for ax in fig.axes[:2]:
        line_x = ax.transData.transform((100, 0))[0]
        for text in ax.texts:
            if text.get_text().isdigit():
                box = text.get_window_extent(renderer)
                assert not (box.x0 < line_x < box.x1), text.get_text()
                checked += 1
    assert checked == 6


def test_pale_bars_are_the_cells_the_table_marks(report):
    fig = lift_figure(report, top=0)
    loyal = fig.axes[0]
    colours = {
        round(bar.get_width()): bar.get_facecolor() for bar in loyal.patches if bar.get_width() > 10
    }
    # travel's range (115-345) is clear of 100; sports (0-161) and age (37-228) are not
    assert colours[219] == to_rgba(ABOVE)
    assert colours[123] == to_rgba(ABOVE_MUTED)
    assert colours[71] == to_rgba(BELOW_MUTED)
    text = render(report)
    marked = {
        (segment, bar.attribute)
        for panel in lift_panels(report, top=0)
        for segment, bar in ((panel.segment, b) for b in panel.bars)
        if "\u2020" in attribute_line(text, segment, bar.attribute)
    }
    pale = {
        (panel.segment, bar.attribute)
        for panel in lift_panels(report, top=0)
        for bar in panel.bars
        if bar.colour in (ABOVE_MUTED, BELOW_MUTED)
    }
    assert marked == pale and len(pale) == 5


def test_each_bar_carries_its_index_range_from_the_report(report):
    frame = Report(report).to_pandas().set_index(["segment", "attribute"])
    panels = lift_panels(report, top=0)
    fig = lift_figure(report, top=0)
    x_max = x_limit(panels)
    for ax, panel in zip(fig.axes, panels, strict=False):
        whiskers = sorted(
            tuple(round(x, 1) for x in (segment[0][0], segment[1][0]))
            for collection in ax.collections
            if collection.get_gid() == "range"
            for segment in collection.get_segments()
        )
        expected = []
        for bar in panel.bars:
            row = frame.loc[(panel.segment, bar.attribute)]
            assert (bar.low, bar.high) == (row["index_lo"], row["index_hi"])
            expected.append((round(bar.low, 1), round(min(bar.high, x_max), 1)))
        assert whiskers == sorted(expected)
    travel = panels[0].bars[0]
    assert travel.attribute == "interest_travel" and travel.low < travel.index < travel.high


def test_a_range_past_the_axis_ends_in_an_arrow(report):
    report["attributes"][1]["partner_count"] = 30  # sports: index ~2,600 with a huge range
    report["attributes"][1]["index"] = None
    panels = lift_panels(report, top=0)
    sports = next(b for b in panels[0].bars if b.attribute == "interest_sports")
    x_max = x_limit(panels)
    assert sports.high is None or sports.high > x_max
    fig = lift_figure(report, top=0)
    arrows = [line for line in fig.axes[0].lines if line.get_marker() == ">"]
    assert len(arrows) == 1 and arrows[0].get_xdata()[0] == x_max


def test_panels_follow_the_contract_not_the_alphabet(report):
    from cleanroom.report.document import dumps

    stored = json.loads(dumps(report))  # a stored report's keys are sorted by name
    assert list(stored["overlap"]["by_segment"]) == ["lapsed", "loyal"]
    assert [p.segment for p in lift_panels(stored)] == ["loyal", "lapsed"]
    titles = [ax.get_title(loc="left") for ax in lift_figure(stored).axes[:2]]
    assert titles == ["loyal · 610 matched users", "lapsed · 320 matched users"]
    text = render(stored)
    part = text[text.index("Audience attributes") :]
    assert part.index("loyal") < part.index("lapsed")


def test_the_legend_shows_what_the_chart_draws(report):
    legend = lift_figure(report).axes[-1].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [
        "above average",
        "below average",
        "pale: within the noise (range includes 100)",
        "99.9% range of the index",
        "suppressed (too few users)",
    ]
    swatches = {
        to_hex(patch.get_facecolor())
        for patch in legend.findobj(Rectangle)
        if patch.get_visible() and patch is not legend.legendPatch
    }
    assert {ABOVE, BELOW, ABOVE_MUTED, BELOW_MUTED} <= swatches  # both pale tints
    for c in report["attributes"]:  # nothing within the noise: no pale entry
        if c["count"] is not None:
            c["count"] *= 20
    clear = [t.get_text() for t in lift_figure(report).axes[-1].get_legend().get_texts()]
    assert not any("pale" in label for label in clear)


def test_suppressed_overlap_panel_title(report):
    report["overlap"]["by_segment"]["lapsed"] = None
    fig = lift_figure(report)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert "lapsed · overlap suppressed" in titles
    assert "loyal · 610 matched users" in titles


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
