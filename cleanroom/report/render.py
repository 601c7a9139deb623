"""The report as rich tables for a terminal: a summary, then attributes by index; and a
party's input-quality summary, which never leaves its machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cleanroom.report.index import (
    is_missing,
    noise_halfwidths,
    report_rows,
    segment_overlap,
    segments,
)

SUPPRESSED = "suppressed"
DASH = "\u2013"  # en dash: no value
TIMES = "\u00d7"
PLUS_MINUS = "\u00b1"
NOISE_MARK = "\u2020"  # dagger: count within the noise
CAPPED_MARK = "*"


def _num(value: Any) -> str:
    if value is None:
        return SUPPRESSED
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _opt(value: Any, kind: type) -> Any:
    return None if is_missing(value) else kind(value)


def _pct(num: Any, den: Any) -> str:
    return _share(num, den)[0]


def _share(num: Any, den: Any) -> tuple[str, bool]:
    """A percentage capped at 100% (noise can push a count past its base), and whether it was."""
    if num is None or den is None or den <= 0:
        return DASH, False
    share = 100.0 * num / den
    return f"{min(share, 100.0):.1f}%", share > 100.0


def _with_noise(value: Any, halfwidth: int | None) -> str:
    """``1,160 ±235``: a released number with its 99.9% noise half-width."""
    if value is None or not halfwidth:
        return _num(value)
    return f"{_num(value)} {PLUS_MINUS}{halfwidth:,}"


def _index_range(low: Any, high: Any) -> str:
    low = _opt(low, float)
    high = _opt(high, float)
    if low is None:
        return DASH
    return f"{low:.0f}{DASH}{'∞' if high is None else f'{high:.0f}'}"


def _eps(value: Any) -> str:
    return DASH if value is None else f"{value:g}"


def _index_text(index: float, *, muted: bool = False) -> Text:
    if muted:
        return Text(f"{index:.0f}", style="dim")
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
            f" · {PLUS_MINUS}: 99.9% noise interval"
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

    halfwidths = noise_halfwidths(report)
    if isinstance(brand_size, Mapping):
        total_brand = sum(v for v in brand_size.values() if v is not None)
        table.add_row("Brand customers", _num(total_brand), f"{len(brand_size)} segment(s)")
        for name, size in brand_size.items():
            table.add_row(f"  {name}", _with_noise(size, halfwidths["brand_size"]), "")
    else:
        table.add_row("Brand customers", _with_noise(brand_size, halfwidths["brand_size"]), "")
    table.add_row(
        "Partner audience", _with_noise(partner_size, halfwidths["partner_size"]), "users"
    )
    table.add_section()
    total = overlap.get("total")
    noise = halfwidths["overlap"]
    table.add_row(
        "Matched users",
        _with_noise(total, halfwidths["overlap_total"] or noise),
        f"{_pct(total, partner_size)} of the partner audience",
    )
    for name, count in by_segment.items():
        seg_size = brand_size.get(name) if isinstance(brand_size, Mapping) else None
        table.add_row(
            f"  {name}",
            _with_noise(count, noise),
            f"{_pct(count, seg_size)} of the segment matched",
        )
    if by_key:
        table.add_section()
        for key, count in by_key.items():
            table.add_row(
                f"Matched on {key}", _with_noise(count, noise), _pct(count, total) + " of matches"
            )
    privacy = report.get("privacy") or {}
    table.add_section()
    table.add_row("Privacy noise", str(privacy.get("mechanism", "?")), "")
    if privacy.get("rho_spent") is not None:  # zCDP ledger: rho adds up, epsilon does not
        table.add_row(
            "Privacy budget (ρ)",  # noqa: RUF001  (rho, not p)
            f"{_eps(privacy.get('rho_spent'))} spent",
            f"{_eps(privacy.get('rho_remaining'))} remaining",
        )
        table.add_row(
            "  as (ε, δ)",
            f"ε {_eps(privacy.get('epsilon_spent'))} so far",
            f"δ = {_eps(privacy.get('delta'))}; ε at δ does not add across sessions",
        )
    else:
        table.add_row(
            "Privacy budget (ε)",
            f"{_eps(privacy.get('epsilon_spent'))} spent",
            f"{_eps(privacy.get('epsilon_remaining'))} remaining",
        )
    return table


def attribute_table(report: Mapping[str, Any]) -> Table:
    """Attributes per segment, highest index first; suppressed cells last in a segment.

    Each count carries its 99.9% noise interval and each index the range it spans when
    all three of its inputs are within theirs; a cell within the noise (its range
    includes 100: :func:`~cleanroom.report.index.within_noise`, as on the lift chart) is
    greyed and marked, and shares pushed past 100% by noise are capped and marked.
    """
    rows = report_rows(report)
    w_c = noise_halfwidths(report)["attribute_count"]
    table = Table(
        title="Audience attributes · index 100 = average partner user",
        caption=(
            f"Index = share among matched users ÷ share among all partner users {TIMES} 100. "
            f"{PLUS_MINUS} and range: 99.9% noise intervals. {NOISE_MARK} within the noise: "
            "the range includes 100, so the attribute may be no more or less common than "
            f"average (the lift chart draws it pale). {CAPPED_MARK} noise put the count above "
            "the overlap; share capped at 100%."
        ),
        box=box.SIMPLE_HEAVY,
        collapse_padding=True,
        pad_edge=False,
        title_justify="left",
    )
    table.add_column(
        "Segment",
        style="bold",
        no_wrap=True,
        min_width=max((len(row["segment"]) for row in rows), default=7),
    )
    table.add_column(
        "Attribute",
        no_wrap=True,
        min_width=max((len(row["attribute"]) for row in rows), default=9),
    )
    table.add_column("Matched with\nattribute", justify="right", no_wrap=True)
    table.add_column("Share of\nmatched", justify="right", no_wrap=True)
    table.add_column("Share of\npartner", justify="right", no_wrap=True)
    table.add_column("Index", justify="right", no_wrap=True)
    table.add_column("99.9%\nrange", justify="right", no_wrap=True)

    partner_size = report.get("partner_size")
    order = [s for s in segments(report) if s in {row["segment"] for row in rows}]
    for i, segment in enumerate(order):
        if i:
            table.add_section()
        part = [row for row in rows if row["segment"] == segment]
        # highest index first, ties in report order, cells without an index last
        shown = sorted(
            (row for row in part if not row["suppressed"]),
            key=lambda row: (is_missing(row["index"]), -(_opt(row["index"], float) or 0.0)),
        )
        hidden = [row for row in part if row["suppressed"]]
        overlap = segment_overlap(report, segment)
        for j, row in enumerate(shown):
            count = _opt(row["count"], int)
            idx = _opt(row["index"], float)
            share, capped = _share(count, overlap)
            noisy = bool(row["within_noise"])
            index_text = Text(DASH) if idx is None else _index_text(idx, muted=noisy)
            table.add_row(
                segment if j == 0 else "",
                str(row["attribute"]),
                _with_noise(count, w_c),
                share + (CAPPED_MARK if capped else ""),
                _pct(_opt(row["partner_count"], int), partner_size),
                index_text + (NOISE_MARK if noisy else ""),
                _index_range(row["index_lo"], row["index_hi"]),
                style="dim" if noisy else None,
            )
        for j, row in enumerate(hidden):
            dim = "dim italic"
            table.add_row(
                segment if j == 0 and not shown else "",
                Text(str(row["attribute"]), style="dim"),
                Text(SUPPRESSED, style=dim),
                Text(SUPPRESSED, style=dim),
                Text(_pct(_opt(row["partner_count"], int), partner_size), style=dim),
                Text(SUPPRESSED, style=dim),
                Text(DASH, style=dim),
            )
    return table


def quality_table(
    quality: Mapping[str, Mapping[str, int]], *, title: str, records: int | None = None
) -> Group:
    """One row per key kind: rows read, valid, invalid (and its share of non-empty values,
    the figure ``max_invalid_fraction`` limits), empty, repeats dropped, and kept; under a
    title line that is never wrapped to the table's width."""
    table = Table(
        caption=None
        if records is None
        else f"{records:,} records kept with at least one valid key",
        box=box.SIMPLE_HEAVY,
        caption_justify="left",
    )
    table.add_column("Key", style="bold", no_wrap=True)
    for name in ("Rows", "Valid", "Invalid", "Empty", "Duplicates", "Kept"):
        table.add_column(name, justify="right", no_wrap=True)
    for kind, counts in quality.items():
        rows, valid, invalid = counts["rows"], counts["valid"], counts["invalid"]
        present = valid + invalid
        share = f" ({100.0 * invalid / present:.1f}%)" if present and invalid else ""
        table.add_row(
            kind,
            f"{rows:,}",
            f"{valid:,}",
            Text(f"{invalid:,}{share}", style="yellow" if invalid else ""),
            f"{rows - present:,}",
            f"{counts['duplicates']:,}",
            f"{valid - counts['duplicates']:,}",
        )
    return Group(Text(title, style="italic"), table)


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
