"""The report as rich tables for a terminal: a summary, then attributes by index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cleanroom.stats.index import report_to_frame, segment_overlap, segments

SUPPRESSED = "suppressed"
DASH = "\u2013"  # en dash: no value
TIMES = "\u00d7"


def _num(value: Any) -> str:
    if value is None:
        return SUPPRESSED
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _opt(value: Any, kind: type) -> Any:
    return None if value is None or pd.isna(value) else kind(value)


def _pct(num: Any, den: Any) -> str:
    if num is None or den is None or den <= 0:
        return DASH
    return f"{100.0 * num / den:.1f}%"


def _eps(value: Any) -> str:
    return DASH if value is None else f"{value:g}"


def _index_text(index: float) -> Text:
    style = (
        "bold green"
        if index >= 120
        else "green"
        if index > 100
        else ("bold red" if index <= 80 else "red" if index < 100 else "")
    )
    return Text(f"{index:.0f}", style=style)


def summary_table(report: Mapping[str, Any]) -> Table:
    """Sizes, overlap (total, per segment with match rate, per key) and privacy."""
    table = Table(
        title=f"Clean room report · {report.get('contract_id', '?')}",
        caption=(
            f"session {report.get('session_id', '?')} · released {report.get('released_at', '?')}"
        ),
        box=box.SIMPLE_HEAVY,
        show_header=True,
        title_justify="left",
    )
    table.add_column("", style="bold")
    table.add_column("Value", justify="right")
    table.add_column("Note", style="dim")

    brand_size = report.get("brand_size") or {}
    partner_size = report.get("partner_size")
    overlap = report.get("overlap") or {}
    by_segment = overlap.get("by_segment") or {}
    by_key = overlap.get("by_key") or {}

    if isinstance(brand_size, Mapping):
        total_brand = sum(v for v in brand_size.values() if v is not None)
        table.add_row("Brand customers", _num(total_brand), f"{len(brand_size)} segment(s)")
        for name, size in brand_size.items():
            table.add_row(f"  {name}", _num(size), "")
    else:
        table.add_row("Brand customers", _num(brand_size), "")
    table.add_row("Partner audience", _num(partner_size), "users")
    table.add_section()
    total = overlap.get("total")
    table.add_row(
        "Matched users", _num(total), f"{_pct(total, partner_size)} of the partner audience"
    )
    for name, count in by_segment.items():
        seg_size = brand_size.get(name) if isinstance(brand_size, Mapping) else None
        table.add_row(f"  {name}", _num(count), f"{_pct(count, seg_size)} of the segment matched")
    if by_key:
        table.add_section()
        for key, count in by_key.items():
            table.add_row(f"Matched on {key}", _num(count), _pct(count, total) + " of matches")
    privacy = report.get("privacy") or {}
    table.add_section()
    table.add_row("Privacy noise", str(privacy.get("mechanism", "?")), "")
    table.add_row(
        "Privacy budget (ε)",
        f"{_eps(privacy.get('epsilon_spent'))} spent",
        f"{_eps(privacy.get('epsilon_remaining'))} remaining",
    )
    return table


def attribute_table(report: Mapping[str, Any]) -> Table:
    """Attributes per segment, highest index first; suppressed cells last in a segment."""
    frame = report_to_frame(report)
    table = Table(
        title="Audience attributes · index 100 = average partner user",
        caption=f"Index = share among matched users ÷ share among all partner users {TIMES} 100",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    table.add_column(
        "Segment",
        style="bold",
        no_wrap=True,
        min_width=max((len(s) for s in frame["segment"]), default=7),
    )
    table.add_column(
        "Attribute", no_wrap=True, min_width=max((len(a) for a in frame["attribute"]), default=9)
    )
    table.add_column("Matched with attribute", justify="right", min_width=10)
    table.add_column("Share of matched", justify="right", min_width=10)
    table.add_column("Share of partner", justify="right", min_width=10)
    table.add_column("Index", justify="right", min_width=10)

    order = [s for s in segments(report) if s in set(frame["segment"])]
    for i, segment in enumerate(order):
        if i:
            table.add_section()
        part = frame[frame["segment"] == segment]
        shown = part[~part["suppressed"]].sort_values(
            "index", ascending=False, kind="stable", na_position="last"
        )
        hidden = part[part["suppressed"]]
        overlap = segment_overlap(report, segment)
        for j, row in enumerate(shown.to_dict("records")):
            count = _opt(row["count"], int)
            pcount = _opt(row["partner_count"], int)
            idx = _opt(row["index"], float)
            table.add_row(
                segment if j == 0 else "",
                str(row["attribute"]),
                _num(count),
                _pct(count, overlap),
                _pct(pcount, report.get("partner_size")),
                _index_text(idx) if idx is not None else Text(DASH),
            )
        for j, row in enumerate(hidden.to_dict("records")):
            dim = "dim italic"
            table.add_row(
                segment if j == 0 and shown.empty else "",
                Text(str(row["attribute"]), style="dim"),
                Text(SUPPRESSED, style=dim),
                Text(SUPPRESSED, style=dim),
                Text(DASH, style=dim),
                Text(SUPPRESSED, style=dim),
            )
    return table


def report_tables(report: Mapping[str, Any]) -> list[Table]:
    """The summary table, then the attribute table (when the report has attributes)."""
    tables = [summary_table(report)]
    if report.get("attributes"):
        tables.append(attribute_table(report))
    return tables


def print_report(report: Mapping[str, Any], console: Console | None = None) -> None:
    """Print :func:`report_tables` to ``console`` (a new stdout Console by default)."""
    console = console or Console()
    for table in report_tables(report):
        console.print(table)
