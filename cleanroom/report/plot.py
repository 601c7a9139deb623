"""A lift chart of a report: one horizontal bar panel per segment, saved as a landscape PNG.

Each bar carries its index's 99.9% range (from the report's ``privacy.interval_999`` via
:mod:`cleanroom.report.index`; nothing is recomputed here), panels follow the contract's
segment order, and a bar is pale exactly when the terminal table marks its cell as within
the noise (:func:`cleanroom.report.index.within_noise`). :func:`lift_panels` is what the
chart draws, as data.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global
backend switch), so it is safe in servers and tests.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cleanroom.errors import InputError
from cleanroom.report.index import (
    noise_halfwidths,
    report_to_frame,
    segment_overlap,
    segments,
)

ABOVE = "#1f7a6d"  # teal: more common among matched users than on average
BELOW = "#e07a3f"  # orange: less common
ABOVE_MUTED = "#c4e0db"  # the same, for an index within the noise (range includes 100)
BELOW_MUTED = "#f6d5c0"
RANGE_COLOUR = "#3d3d3d"  # the index's 99.9% range
SUPPRESSED_COLOUR = "#b8b8b8"
AVERAGE_LINE = "#333333"
TEXT = "#222222"
MUTED = "#6b6b6b"
EN_DASH = "\u2013"
TIMES = "\u00d7"
PLUS_MINUS = "\u00b1"

#: Default ``top``: per segment, the 6 highest and 6 lowest indices.
DEFAULT_TOP = 6
#: Panels per row; more segments wrap onto further rows.
PANELS_PER_ROW = 3
#: A 16:9 slide is 13.33 x 7.5 in: the figure keeps that width (2,000 px)
#: and at most this height.
FIGURE_WIDTH = 40 / 3
MIN_FIGURE_HEIGHT = 6.0
MAX_FIGURE_HEIGHT = 11.0
DPI = 150
#: The x axis reaches the highest range end, but at most this many times the highest
#: index (or 100); a range beyond it ends in an arrow at the edge.
RANGE_REACH = 3.0


def pretty_attribute(name: str) -> str:
    """``interest_travel`` -> ``Interest travel``; ``age_25_34`` -> ``Age 25-34`` (en dash)."""
    text = re.sub(r"(\d)_(\d)", f"\\1{EN_DASH}\\2", name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _fmt(n: Any) -> str:
    return "suppressed" if n is None or pd.isna(n) else f"{int(n):,}"


def _panel_rows(part: pd.DataFrame, top: int) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The cells one panel draws (indexed, suppressed) and a note on what it leaves out.

    With ``top > 0`` and more than ``2 * top`` indexed cells, only the ``top`` highest
    and ``top`` lowest are drawn; the rest, and any suppressed cells, are counted in the
    note instead.
    """
    indexed = part[~part["suppressed"] & part["index"].notna()].sort_values(
        "index", ascending=False, kind="stable"
    )
    suppressed = part[part["suppressed"] | part["index"].isna()]
    if top <= 0 or len(indexed) <= 2 * top:
        return indexed, suppressed, None
    middle = indexed.iloc[top:-top]
    shown = pd.concat([indexed.iloc[:top], indexed.iloc[-top:]])
    note = (
        f"{len(middle)} more between {middle['index'].min():.0f} and "
        f"{middle['index'].max():.0f} not shown"
    )
    if len(suppressed):
        note += f" · {len(suppressed)} suppressed"
    return shown, suppressed.iloc[0:0], note


def _panel_title(report: Mapping[str, Any], segment: str) -> str:
    overlap = segment_overlap(report, segment)
    if overlap is None:
        return f"{segment} · overlap suppressed"
    return f"{segment} · {overlap:,} matched users"


@dataclass(frozen=True)
class Bar:
    """One drawn cell: its index, the index's 99.9% range (``high`` None: unbounded;
    both None: the report gives no intervals) and whether it is within the noise."""

    attribute: str
    index: float
    low: float | None
    high: float | None
    within_noise: bool

    @property
    def colour(self) -> str:
        if self.index >= 100:
            return ABOVE_MUTED if self.within_noise else ABOVE
        return BELOW_MUTED if self.within_noise else BELOW


@dataclass(frozen=True)
class Panel:
    """One segment's panel: bars highest index first, suppressed attributes, and a note
    on the cells ``top`` leaves out."""

    segment: str
    title: str
    bars: list[Bar]
    suppressed: list[str]
    note: str | None


def lift_panels(report: Mapping[str, Any], *, top: int = DEFAULT_TOP) -> list[Panel]:
    """What the chart draws, one panel per segment in contract order. Raises InputError
    when the report has no attribute cells or ``top`` is negative."""
    if top < 0:
        raise InputError(f"--top must be >= 0 (0 draws every cell), got {top}")
    frame = report_to_frame(report)
    if frame.empty:
        raise InputError("the report has no attribute statistics to plot (overlap-only contract)")
    panels = []
    for segment in segments(report):
        part = frame[frame["segment"] == segment]
        if part.empty:
            continue
        shown, hidden, note = _panel_rows(part, top)
        bars = [
            Bar(
                attribute=str(row["attribute"]),
                index=float(row["index"]),
                low=None if pd.isna(row["index_lo"]) else float(row["index_lo"]),
                high=None if pd.isna(row["index_hi"]) else float(row["index_hi"]),
                within_noise=bool(row["within_noise"]),
            )
            for row in shown.to_dict("records")
        ]
        panels.append(
            Panel(
                segment=segment,
                title=_panel_title(report, segment),
                bars=bars,
                suppressed=[str(a) for a in hidden["attribute"]],
                note=note,
            )
        )
    return panels


def plot_lift(report: Mapping[str, Any], out: Path, *, top: int = DEFAULT_TOP) -> Path:
    """Write :func:`lift_figure` to ``out`` (PNG) atomically; returns ``out``."""
    out = Path(out)
    fig = lift_figure(report, top=top)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", facecolor="white")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return out


def x_limit(panels: list[Panel]) -> float:
    """Where the x axis ends: past every index and range end, within ``RANGE_REACH``."""
    indices = [bar.index for panel in panels for bar in panel.bars]
    highest = max([100.0, *indices])
    ends = [bar.high if bar.high is not None else math.inf for p in panels for bar in p.bars]
    reach = min(max([highest, *ends]), RANGE_REACH * highest)
    return max(reach * 1.08, 150.0)


def lift_figure(report: Mapping[str, Any], *, top: int = DEFAULT_TOP) -> Figure:
    """Draw :func:`lift_panels`.

    One panel per segment (three to a row) in contract order, bars sorted by index
    (highest on top), coloured by whether they are above or below 100, each with its
    index's 99.9% range as a whisker, and a dashed line at 100 ("average partner user").
    A bar within the noise (range includes 100) is pale. Suppressed cells are hatched
    grey stubs. With ``top > 0`` a panel draws at most the ``top`` highest and ``top``
    lowest indices and notes how many it leaves out. The figure is 13.33 in wide (a 16:9
    slide) and at most ``MAX_FIGURE_HEIGHT`` tall.
    """
    panels = lift_panels(report, top=top)
    slots = max(len(p.bars) + len(p.suppressed) + (p.note is not None) for p in panels)
    slots = max(slots, 1)
    x_max = x_limit(panels)

    columns = min(len(panels), PANELS_PER_ROW)
    rows = math.ceil(len(panels) / columns)
    panel_height = 0.34 * slots + 0.9
    height = min(max(1.7 + rows * panel_height, MIN_FIGURE_HEIGHT), MAX_FIGURE_HEIGHT)
    fig = Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.set_facecolor("white")
    # A last, shorter row spanning every column holds the legend and the footnote.
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[panel_height] * rows + [0.8])
    axes: list[Any] = []
    for i in range(len(panels)):
        axes.append(
            fig.add_subplot(grid[i // columns, i % columns], sharex=axes[0] if axes else None)
        )
    footer = fig.add_subplot(grid[rows, :])
    footer.set_axis_off()

    overlap = report.get("overlap") or {}
    total = overlap.get("total")
    fig.suptitle(
        f"Audience lift · {report.get('contract_id', '')} · {_fmt(total)} matched users",
        x=0.01,
        ha="left",
        fontsize=15,
        fontweight="bold",
        color=TEXT,
    )
    for ax, panel in zip(axes, panels, strict=True):
        _draw_panel(ax, panel, slots, x_max)
        ax.set_title(panel.title, loc="left", fontsize=12, fontweight="bold", color=TEXT, pad=14)

    bars = [bar for panel in panels for bar in panel.bars]
    entries: list[tuple[Any, str]] = [
        (Patch(color=ABOVE), "above average"),
        (Patch(color=BELOW), "below average"),
    ]
    if any(bar.within_noise for bar in bars):
        entries.append(
            (
                (Patch(color=ABOVE_MUTED), Patch(color=BELOW_MUTED)),
                "pale: within the noise (range includes 100)",
            )
        )
    if any(bar.low is not None for bar in bars):
        entries.append(
            (
                Line2D([], [], color=RANGE_COLOUR, linewidth=1.2, marker="|", markersize=8),
                "99.9% range of the index",
            )
        )
    if any(panel.suppressed for panel in panels):
        entries.append(
            (
                Patch(facecolor="#ececec", edgecolor=SUPPRESSED_COLOUR, hatch="///"),
                "suppressed (too few users)",
            )
        )
    footer.legend(
        handles=[handle for handle, _ in entries],
        labels=[label for _, label in entries],
        handler_map={tuple: HandlerTuple(ndivide=None, pad=0)},
        loc="upper left",
        ncols=len(entries),
        frameon=False,
        fontsize=9.5,
        borderaxespad=0,
    )
    footer.text(
        0,
        0,
        _footnote(report, [panel.segment for panel in panels], total),
        transform=footer.transAxes,
        va="bottom",
        ha="left",
        fontsize=9,
        color=MUTED,
        linespacing=1.6,
    )
    return fig


def _draw_range(ax: Any, bar: Bar, y: float, x_max: float) -> None:
    """The whisker from the range's low to its high end; an arrow where it runs off the axis."""
    if bar.low is None:
        return
    clipped = bar.high is None or bar.high > x_max
    high = x_max if clipped else bar.high
    ax.hlines(y, bar.low, high, color=RANGE_COLOUR, linewidth=1.2, zorder=4, gid="range")
    ax.plot(
        [bar.low, high],
        [y, y],
        linestyle="none",
        marker="|",
        markersize=8,
        color=RANGE_COLOUR,
        zorder=4,
    )
    if clipped:
        ax.plot([x_max], [y], marker=">", markersize=5, color=RANGE_COLOUR, zorder=4, clip_on=False)


def _draw_panel(ax: Any, panel: Panel, slots: int, x_max: float) -> None:
    """Bars bottom-up: suppressed stubs, then ascending index, the note between the
    lowest and the highest when the panel leaves cells out."""
    pad = x_max * 0.012
    stub = x_max * 0.045
    labels: list[str] = []
    for attribute in panel.suppressed[::-1]:
        y = len(labels)
        ax.barh(
            y,
            stub,
            height=0.62,
            color="#ececec",
            edgecolor=SUPPRESSED_COLOUR,
            hatch="///",
            linewidth=0.8,
        )
        ax.text(stub + pad, y, "suppressed", va="center", fontsize=8.5, color=MUTED, style="italic")
        labels.append(pretty_attribute(attribute))
    ascending = panel.bars[::-1]
    for drawn, bar in enumerate(ascending):
        if panel.note is not None and drawn == len(ascending) // 2:
            ax.text(
                0,
                len(labels),
                f"\u22ee {panel.note}",
                va="center",
                ha="left",
                fontsize=8.5,
                color=MUTED,
                style="italic",
                zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
            )
            labels.append("")
        y = len(labels)
        ax.barh(y, bar.index, height=0.62, color=bar.colour, linewidth=0)
        _draw_range(ax, bar, y, x_max)
        # The value sits just past the bar's end, above its whisker; one that would
        # straddle the dashed 100 line moves just past the line.
        x = bar.index + pad
        if x < 100 < x + x_max * 0.06:
            x = 100 + pad
        ax.text(
            x,
            y + 0.04,
            f"{bar.index:.0f}",
            va="bottom",
            ha="left",
            fontsize=9.5,
            color=MUTED if bar.within_noise else TEXT,
            fontweight="normal" if bar.within_noise else "bold",
            zorder=5,
        )
        labels.append(pretty_attribute(bar.attribute))

    ax.axvline(100, color=AVERAGE_LINE, linestyle=(0, (4, 3)), linewidth=1.1, zorder=3)
    ax.text(
        100,
        1.0,
        " average = 100",
        transform=ax.get_xaxis_transform(),
        ha="left",
        va="bottom",
        fontsize=8,
        color=AVERAGE_LINE,
    )
    ax.set_yticks(range(len(labels)), labels, fontsize=10, color=TEXT)
    # Every panel has room for the fullest one, so bars are equally thick side by side.
    ax.set_ylim(-0.6, slots - 0.4)
    ax.set_xlim(0, x_max)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#cccccc")
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", colors=MUTED, labelsize=9)
    ax.grid(axis="x", color="#eeeeee", linewidth=0.8)
    ax.set_axisbelow(True)


def _footnote(report: Mapping[str, Any], order: list[str], total: Any) -> str:
    privacy = report.get("privacy") or {}
    eps = privacy.get("epsilon_spent")
    w_c = noise_halfwidths(report)["attribute_count"]
    seg_bits = " · ".join(f"{s} {_fmt(segment_overlap(report, s))}" for s in order)
    delta = privacy.get("delta")
    noise = f"privacy noise: {privacy.get('mechanism', '?')}" + (
        f", ε {eps:.3g} spent so far" if isinstance(eps, (int, float)) else ""
    )
    if isinstance(delta, (int, float)) and delta > 0:
        noise += f" (δ = {delta:g})"
    if w_c:
        noise += f", each count {PLUS_MINUS}{w_c:,} (99.9%); whiskers: the index's 99.9% range"
    return (
        f"Index = share among matched users ÷ share among all partner users {TIMES} 100\n"
        f"{_fmt(total)} of {_fmt(report.get('partner_size'))} partner users matched ({seg_bits})"
        f"\n{noise}"
    )
