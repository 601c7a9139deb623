"""A lift chart of a report: one horizontal bar panel per segment, saved as a landscape PNG.

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
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cleanroom.errors import InputError
from cleanroom.stats.index import (
    noise_halfwidths,
    report_to_frame,
    segment_overlap,
    segments,
)

ABOVE = "#1f7a6d"  # teal: more common among matched users than on average
BELOW = "#e07a3f"  # orange: less common
ABOVE_MUTED = "#c4e0db"  # the same, for a count within the noise
BELOW_MUTED = "#f6d5c0"
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


def lift_figure(report: Mapping[str, Any], *, top: int = DEFAULT_TOP) -> Figure:
    """Draw the report's index per attribute and segment.

    One panel per segment (three to a row), bars sorted by index (highest on top),
    coloured by whether they are above or below 100, with a dashed line at 100
    ("average partner user"). A bar whose count is within its 99.9% noise interval of 0
    is drawn in a muted tint. Suppressed cells are hatched grey stubs. With ``top > 0``
    a panel draws at most the ``top`` highest and ``top`` lowest indices and notes how
    many it leaves out. The figure is 13.33 in wide (a 16:9 slide) and at most
    ``MAX_FIGURE_HEIGHT`` tall. Raises InputError when the report has no attribute cells
    or ``top`` is negative.
    """
    if top < 0:
        raise InputError(f"--top must be >= 0 (0 draws every cell), got {top}")
    frame = report_to_frame(report)
    if frame.empty:
        raise InputError("the report has no attribute statistics to plot (overlap-only contract)")
    order = [s for s in segments(report) if s in set(frame["segment"])]
    panels = [_panel_rows(frame[frame["segment"] == s], top) for s in order]
    bars = max(len(shown) + len(hidden) + (note is not None) for shown, hidden, note in panels)
    bars = max(bars, 1)

    drawn = pd.concat([shown for shown, _, _ in panels])
    finite = drawn["index"].dropna()
    highest = float(finite.max()) if len(finite) else 100.0
    x_max = max(highest * 1.2, 150.0)

    columns = min(len(order), PANELS_PER_ROW)
    rows = math.ceil(len(order) / columns)
    panel_height = 0.34 * bars + 0.9
    height = min(max(1.7 + rows * panel_height, MIN_FIGURE_HEIGHT), MAX_FIGURE_HEIGHT)
    fig = Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.set_facecolor("white")
    # A last, shorter row spanning every column holds the legend and the footnote.
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[panel_height] * rows + [0.6])
    axes: list[Any] = []
    for i in range(len(order)):
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

    any_noisy = False
    for ax, segment, (shown, hidden, note) in zip(axes, order, panels, strict=False):
        any_noisy |= bool(shown["noise_dominated"].any())
        _draw_panel(ax, shown, hidden, note, bars, x_max)
        ax.set_title(
            _panel_title(report, segment),
            loc="left",
            fontsize=12,
            fontweight="bold",
            color=TEXT,
            pad=14,
        )

    handles = [
        Patch(color=ABOVE, label="above average"),
        Patch(color=BELOW, label="below average"),
    ]
    if any_noisy:
        handles.append(
            Patch(
                facecolor=ABOVE_MUTED,
                edgecolor=BELOW_MUTED,
                label="pale: count within the noise, read as unknown",
            )
        )
    if frame["suppressed"].any():
        handles.append(
            Patch(
                facecolor="#ececec",
                edgecolor=SUPPRESSED_COLOUR,
                hatch="///",
                label="suppressed (too few users)",
            )
        )
    footer.legend(
        handles=handles,
        loc="upper left",
        ncols=len(handles),
        frameon=False,
        fontsize=9.5,
        borderaxespad=0,
    )
    footer.text(
        0,
        0,
        _footnote(report, order, total),
        transform=footer.transAxes,
        va="bottom",
        ha="left",
        fontsize=9,
        color=MUTED,
        linespacing=1.6,
    )
    return fig


def _draw_panel(
    ax: Any, shown: pd.DataFrame, hidden: pd.DataFrame, note: str | None, slots: int, x_max: float
) -> None:
    """Bars bottom-up: suppressed stubs, then ascending index, the note between the
    lowest and the highest when the panel leaves cells out."""
    pad = x_max * 0.012
    stub = x_max * 0.045
    labels: list[str] = []
    for attribute in hidden["attribute"][::-1]:
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
    for drawn, row in enumerate(shown.iloc[::-1].to_dict("records")):
        if note is not None and drawn == len(shown) // 2:
            ax.text(
                0,
                len(labels),
                f"\u22ee {note}",
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
        value = float(row["index"])
        noisy = bool(row["noise_dominated"])
        colour = (
            (ABOVE_MUTED if noisy else ABOVE) if value >= 100 else (BELOW_MUTED if noisy else BELOW)
        )
        ax.barh(y, value, height=0.62, color=colour, linewidth=0)
        # A label right of a bar just short of 100 would sit on the dashed line: put it
        # inside the bar's end instead.
        inside = value < 100 and value + pad + x_max * 0.06 > 100
        ax.text(
            value - pad if inside else value + pad,
            y,
            f"{value:.0f}",
            va="center",
            ha="right" if inside else "left",
            fontsize=9.5,
            color=("white" if not noisy else TEXT) if inside else (MUTED if noisy else TEXT),
            fontweight="normal" if noisy else "bold",
            zorder=4,
        )
        labels.append(pretty_attribute(row["attribute"]))

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
    noise = f"privacy noise: {privacy.get('mechanism', '?')}" + (
        f", ε = {eps:g}" if isinstance(eps, (int, float)) else ""
    )
    if w_c:
        noise += f", each count {PLUS_MINUS}{w_c:,} (99.9%)"
    return (
        f"Index = share among matched users ÷ share among all partner users {TIMES} 100\n"
        f"{_fmt(total)} of {_fmt(report.get('partner_size'))} partner users matched ({seg_bits})"
        f" · {noise}"
    )
