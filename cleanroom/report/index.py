"""The index (lift) of a report cell, and the report as tidy rows (or a DataFrame).

index = 100 x (share of the segment's matched users with the attribute)
              / (share of all partner users with the attribute)
      = 100 x (count / overlap) / (partner_count / partner_size)

100 means "as common among matched users as among the partner's users"; 200 means twice
as common. The report layout is DESIGN §7; a suppressed cell has null numbers and
``"suppressed": true``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cleanroom.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMNS = (
    "segment",
    "attribute",
    "count",
    "overlap",
    "partner_count",
    "partner_size",
    "index",
    "suppressed",
    "count_lo",
    "count_hi",
    "index_lo",
    "index_hi",
    "noise_dominated",
    "within_noise",
)

#: The ``privacy.interval_999`` entries: 99.9% noise half-widths per kind of number.
HALFWIDTH_FIELDS = (
    "overlap",
    "overlap_total",
    "attribute_count",
    "partner_count",
    "brand_size",
    "partner_size",
)


def is_missing(value: Any) -> bool:
    """A suppressed or undefined number: None, or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def lift_index(
    count: float | None,
    overlap: float | None,
    partner_count: float | None,
    partner_size: float | None,
) -> float | None:
    """100 x (count / overlap) / (partner_count / partner_size), rounded to 1 decimal.

    None when any input is None (a suppressed number) or NaN, when a denominator
    (``overlap``, ``partner_count``, ``partner_size``) is zero or negative, or when
    ``count`` is negative (a noisy count below zero has no meaningful share).
    """
    values = (count, overlap, partner_count, partner_size)
    if any(is_missing(v) for v in values):
        return None
    if overlap <= 0 or partner_count <= 0 or partner_size <= 0 or count < 0:  # type: ignore[operator]
        return None
    share_matched = count / overlap  # type: ignore[operator]
    share_base = partner_count / partner_size  # type: ignore[operator]
    return round(100.0 * share_matched / share_base, 1)


def _field(report: Mapping[str, Any], name: str) -> Any:
    if not isinstance(report, Mapping):
        raise InputError(f"report must be a JSON object, got {type(report).__name__}")
    if name not in report:
        raise InputError(f"report field {name!r} is missing")
    return report[name]


def attribute_cells(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report's ``attributes`` list, checked for the fields every cell needs."""
    cells = _field(report, "attributes")
    if not isinstance(cells, list):
        raise InputError("report field 'attributes' must be a list")
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise InputError(f"report field 'attributes[{i}]' must be an object")
        for key in ("attribute", "segment"):
            if not isinstance(cell.get(key), str):
                raise InputError(f"report field 'attributes[{i}].{key}' must be a string")
    return cells


def segments(report: Mapping[str, Any]) -> list[str]:
    """The report's segments in contract order: the order of the cells (listed in contract
    order), then any other segment of ``overlap.by_segment`` (whose keys a stored report
    holds sorted by name, so they cannot give the order)."""
    out: list[str] = []
    overlap = _field(report, "overlap")
    by_segment = overlap.get("by_segment") if isinstance(overlap, Mapping) else None
    for cell in attribute_cells(report):
        if cell["segment"] not in out:
            out.append(cell["segment"])
    for name in by_segment or {}:
        if name not in out:
            out.append(name)
    return out


def segment_overlap(report: Mapping[str, Any], segment: str) -> int | None:
    """The (noisy) overlap of ``segment``; None when suppressed.

    A segment missing from ``overlap.by_segment`` falls back to ``overlap.total``
    when it is the report's only segment (a report without segment labels).
    """
    overlap = _field(report, "overlap")
    if not isinstance(overlap, Mapping):
        raise InputError("report field 'overlap' must be an object")
    by_segment = overlap.get("by_segment") or {}
    if segment in by_segment:
        value: int | None = by_segment[segment]
        return value
    if len(segments(report)) <= 1:
        total: int | None = overlap.get("total")
        return total
    raise InputError(f"report field 'overlap.by_segment' has no entry for segment {segment!r}")


def noise_halfwidths(report: Mapping[str, Any]) -> dict[str, int | None]:
    """``privacy.interval_999`` as ``{overlap, overlap_total, attribute_count,
    partner_count, brand_size, partner_size}``.

    A value is None when the report does not give it (an overlap-only report has no
    attribute intervals; a report from before intervals were released has none; before
    protocol version 2 the sizes were exact and had none).
    """
    privacy = report.get("privacy") if isinstance(report, Mapping) else None
    intervals = privacy.get("interval_999") if isinstance(privacy, Mapping) else None
    intervals = intervals if isinstance(intervals, Mapping) else {}
    out: dict[str, int | None] = {}
    for name in HALFWIDTH_FIELDS:
        value = intervals.get(name)
        valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        out[name] = value if valid else None
    return out


def index_range(
    count: int | None,
    overlap: int | None,
    partner_count: int | None,
    partner_size: int | None,
    halfwidths: Mapping[str, int | None],
) -> tuple[float | None, float | None]:
    """The lowest and highest index when each noisy input is within its 99.9% interval.

    Holds with probability at least 99.6% (four intervals, union bound; the partner
    size's counts as 0 where the report gives none, as before protocol version 2, when
    sizes were exact). The high end is None (unbounded) when the overlap's or
    partner_count's interval reaches 0, and both are None when an input or a half-width is
    missing.
    """
    w_c = halfwidths.get("attribute_count")
    w_o = halfwidths.get("overlap")
    w_p = halfwidths.get("partner_count")
    w_s = halfwidths.get("partner_size") or 0
    values = (count, overlap, partner_count, partner_size, w_c, w_o, w_p)
    if any(is_missing(v) for v in values):
        return None, None
    low = lift_index(max(count - w_c, 0), overlap + w_o, partner_count + w_p, partner_size - w_s)  # type: ignore[operator]
    high = lift_index(count + w_c, overlap - w_o, partner_count - w_p, partner_size + w_s)  # type: ignore[operator]
    return low, high


def within_noise(index_lo: float | None, index_hi: float | None) -> bool:
    """Whether a cell's index is within the noise: its 99.9% range includes 100, so the
    attribute may be as common among matched users as on average. The one rule by which
    the terminal table (greyed, ``†``) and the lift chart (pale bar) mark a cell; False
    when the range is unknown (``index_hi`` None means unbounded)."""
    if is_missing(index_lo):
        return False
    return index_lo <= 100.0 and (is_missing(index_hi) or index_hi >= 100.0)  # type: ignore[operator]


def report_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per attribute cell with the columns of :func:`report_to_frame`, suppressed
    numbers ``None``: what the terminal table reads, without importing pandas."""
    partner_size = _field(report, "partner_size")
    halfwidths = noise_halfwidths(report)
    w_c = halfwidths["attribute_count"]
    rows = []
    for cell in attribute_cells(report):
        segment = cell["segment"]
        suppressed = bool(cell.get("suppressed", False))
        overlap = segment_overlap(report, segment)
        count = None if suppressed else cell.get("count")
        partner_count = cell.get("partner_count")
        index = cell.get("index")
        if index is None and not suppressed:
            index = lift_index(count, overlap, partner_count, partner_size)
        known = not suppressed and not is_missing(count) and w_c is not None
        index_lo, index_hi = index_range(
            count if known else None, overlap, partner_count, partner_size, halfwidths
        )
        rows.append(
            {
                "segment": segment,
                "attribute": cell["attribute"],
                "count": count,
                "overlap": overlap,
                "partner_count": partner_count,
                "partner_size": partner_size,
                "index": None if suppressed else index,
                "suppressed": suppressed,
                "count_lo": max(count - w_c, 0) if known else None,  # type: ignore[operator]
                "count_hi": count + w_c if known else None,  # type: ignore[operator]
                "index_lo": index_lo,
                "index_hi": index_hi,
                "noise_dominated": bool(known and count < w_c),  # type: ignore[operator]
                "within_noise": within_noise(index_lo, index_hi),
            }
        )
    return rows


def report_to_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per attribute cell: segment, attribute, count, overlap (the segment's),
    partner_count, partner_size, index, suppressed, and the noise columns.

    Suppressed numbers are missing (``<NA>``): count, overlap, partner_count and
    partner_size are nullable ``Int64``, index is nullable ``Float64``. The index is the
    released one when present, else computed with :func:`lift_index`.

    Noise columns (from ``privacy.interval_999``): ``count_lo`` / ``count_hi`` is the
    count's 99.9% interval (low end clamped at 0); ``index_lo`` / ``index_hi`` come from
    :func:`index_range` (``index_hi`` missing means unbounded); ``noise_dominated`` is
    true when the count is below its half-width, i.e. its interval reaches 0;
    ``within_noise`` is :func:`within_noise` of the index range.
    """
    import pandas as pd

    frame = pd.DataFrame(report_rows(report), columns=list(FRAME_COLUMNS))
    return frame.astype(
        {
            "segment": "string",
            "attribute": "string",
            "count": "Int64",
            "overlap": "Int64",
            "partner_count": "Int64",
            "partner_size": "Int64",
            "index": "Float64",
            "suppressed": "bool",
            "count_lo": "Int64",
            "count_hi": "Int64",
            "index_lo": "Float64",
            "index_hi": "Float64",
            "noise_dominated": "bool",
            "within_noise": "bool",
        }
    )
