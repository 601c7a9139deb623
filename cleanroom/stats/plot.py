"""A lift chart of a report: one horizontal bar panel per segment, saved as PNG.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global
backend switch), so it is safe in servers and tests.
"""

from __future__ import annotations

import contextlib
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
from cleanroom.stats.index import report_to_frame, segment_overlap, segments

ABOVE = "#1f7a6d"  # teal: more common among matched users than on average
BELOW = "#e07a3f"  # orange: less common
SUPPRESSED_COLOUR = "#b8b8b8"
AVERAGE_LINE = "#333333"
TEXT = "#222222"
MUTED = "#6b6b6b"
EN_DASH = "\u2013"
TIMES = "\u00d7"


def pretty_attribute(name: str) -> str:
    """``interest_travel`` -> ``Interest travel``; ``age_25_34`` -> ``Age 25-34`` (en dash)."""
    text = re.sub(r"(\d)_(\d)", f"\\1{EN_DASH}\\2", name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _fmt(n: Any) -> str:
    return "suppressed" if n is None or pd.isna(n) else f"{int(n):,}"


def plot_lift(report: Mapping[str, Any], out: Path) -> Path:
    """Draw the report's index per attribute and segment; write ``out`` (PNG) atomically.

    Bars are sorted by index (highest on top), coloured by whether they are above or
    below 100, with a dashed line at 100 ("average partner user"). Suppressed cells are
    hatched grey stubs labelled "suppressed". Returns ``out``. Raises InputError when
    the report has no attribute cells.
    """
    out = Path(out)
    frame = report_to_frame(report)
    if frame.empty:
        raise InputError("the report has no attribute statistics to plot (overlap-only contract)")
    order = [s for s in segments(report) if s in set(frame["segment"])]
    parts = [frame[frame["segment"] == s] for s in order]
    heights = [max(len(p), 1) for p in parts]

    finite = frame["index"].dropna()
    top = float(finite.max()) if len(finite) else 100.0
    x_max = max(top * 1.18, 140.0)
    stub = x_max * 0.045

    width = 10.0
    height = 1.55 + sum(0.42 * h + 0.75 for h in heights)
    fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    fig.set_facecolor("white")
    axes = fig.subplots(
        len(parts), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights}
    )[:, 0]

    overlap = report.get("overlap") or {}
    total = overlap.get("total")
    seg_bits = " · ".join(f"{s} {_fmt(segment_overlap(report, s))}" for s in order)
    fig.suptitle(
        f"Audience lift · {report.get('contract_id', '')} · {_fmt(total)} matched users",
        x=0.01,
        ha="left",
        fontsize=15,
        fontweight="bold",
        color=TEXT,
    )

    for ax, segment, part in zip(axes, order, parts, strict=True):
        shown = part[~part["suppressed"]].sort_values(
            "index", ascending=True, kind="stable", na_position="first"
        )
        hidden = part[part["suppressed"]]
        # bottom-up: suppressed stubs at the bottom, then ascending index
        labels = [pretty_attribute(a) for a in hidden["attribute"]][::-1] + [
            pretty_attribute(a) for a in shown["attribute"]
        ]
        n_hidden = len(hidden)
        ys = list(range(len(labels)))

        for y in ys[:n_hidden]:
            ax.barh(
                y,
                stub,
                height=0.62,
                color="#ececec",
                edgecolor=SUPPRESSED_COLOUR,
                hatch="///",
                linewidth=0.8,
            )
            ax.text(
                stub + x_max * 0.012,
                y,
                "suppressed",
                va="center",
                ha="left",
                fontsize=9,
                color=MUTED,
                style="italic",
            )
        values = [None if pd.isna(v) else float(v) for v in shown["index"]]
        for y, v in zip(ys[n_hidden:], values, strict=True):
            if v is None:
                ax.text(x_max * 0.012, y, "n/a", va="center", fontsize=9, color=MUTED)
                continue
            ax.barh(y, v, height=0.62, color=ABOVE if v >= 100 else BELOW, linewidth=0)
            ax.text(
                v + x_max * 0.012,
                y,
                f"{v:.0f}",
                va="center",
                ha="left",
                fontsize=10,
                color=TEXT,
                fontweight="bold",
            )

        ax.axvline(100, color=AVERAGE_LINE, linestyle=(0, (4, 3)), linewidth=1.2, zorder=3)
        ax.set_yticks(ys, labels, fontsize=10.5, color=TEXT)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.set_xlim(0, x_max)
        ax.set_title(
            f"{segment}  ·  {_fmt(segment_overlap(report, segment))} matched users",
            loc="left",
            fontsize=12,
            fontweight="bold",
            color=TEXT,
            pad=16,
        )
        ax.text(
            100,
            1.0,
            " average partner user (100)",
            transform=ax.get_xaxis_transform(),
            ha="left",
            va="bottom",
            fontsize=8.5,
            color=AVERAGE_LINE,
        )
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.spines["bottom"].set_color("#cccccc")
        ax.tick_params(axis="y", length=0)
        ax.tick_params(axis="x", colors=MUTED, labelsize=9)
        ax.grid(axis="x", color="#eeeeee", linewidth=0.8)
        ax.set_axisbelow(True)

    privacy = report.get("privacy") or {}
    handles = [
        Patch(color=ABOVE, label="above average"),
        Patch(color=BELOW, label="below average"),
    ]
    if frame["suppressed"].any():
        handles.append(
            Patch(
                facecolor="#ececec",
                edgecolor=SUPPRESSED_COLOUR,
                hatch="///",
                label="suppressed (too few users)",
            )
        )
    fig.legend(
        handles=handles, loc="outside lower left", ncols=len(handles), frameon=False, fontsize=9.5
    )
    eps = privacy.get("epsilon_spent")
    axes[-1].set_xlabel(
        f"Index = share among matched users ÷ share among all partner users {TIMES} 100\n"
        f"{_fmt(total)} of {_fmt(report.get('partner_size'))} partner users matched ({seg_bits})"
        f" · privacy noise: {privacy.get('mechanism', '?')}"
        + (f", ε = {eps:g}" if isinstance(eps, (int, float)) else ""),
        fontsize=9,
        color=MUTED,
        linespacing=1.6,
        labelpad=8,
    )

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
