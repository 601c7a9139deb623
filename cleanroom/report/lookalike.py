"""Lookalike model derived from a report's released aggregates only.

Both parties hold the same report, so both derive the same model (compare
:meth:`LookalikeModel.to_json` byte for byte, and ``report_sha256``, the SHA-256 of the
report's canonical bytes). The partner scores its whole audience with it locally and
exports the top users; the audience never leaves the partner.

The model, per segment (naive-Bayes log-lift)
---------------------------------------------
For each approved attribute ``a``, with released numbers

* ``c`` matched records of the segment that have ``a`` (noisy),
* ``o`` the segment's overlap (noisy),
* ``p`` partner records that have ``a`` (noisy base count),
* ``N`` the partner's audience size,

an attribute is **used** only when its numbers stand clear of the noise: its cell is
released, ``c >= k * w_c`` and ``p >= k * w_p``, where ``w_c`` and ``w_p`` are the
report's 99.9% noise half-widths (``privacy.interval_999.attribute_count`` and
``.partner_count``) and ``k`` is ``noise_multiple`` (default 1). Otherwise it gets
weight 0 both ways and is listed in ``excluded`` with the reason. Pooled over segments,
``c`` is a sum of counts and its half-width the sum of theirs.

A used attribute's shares are shrunk towards the base rate with a prior of ``m``
pseudo-users (``smoothing``; by default ``max(1, w_c)``, so a count just above the noise
moves the share about half way)::

    r = p / N                          share of all partner users with a
    q = (c + m * r) / (o + m)          share of matched users with a, shrunk towards r
    w_a  = log(q / r)                  weight when the user has a
    w'_a = log((1 - q) / (1 - r))      weight when the user does not

with ``c`` clipped to ``[0, o]`` and ``p`` to ``[0, N]`` first (independent noise can
push a share past 0 or 1), and each weight capped at ``±log(MAX_LIFT)``. A count noised
above its overlap therefore gives a bounded weight, not ``log(0)``.

A partner user's score is ``sum_a (w_a if the user has a else w'_a)``: under the
naive-Bayes assumption, ``exp(score)`` estimates P(x | matched) / P(x).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom.errors import InputError
from cleanroom.report.document import dumps
from cleanroom.report.index import attribute_cells, segment_overlap, segments

#: The ``segment`` of a model pooled over all segments (``from_report(segment=None)``).
POOLED = "*"

MODEL_FORMAT = "cleanroom.lookalike/2"

#: Default ``k``: a count must be at least k times its 99.9% noise half-width.
DEFAULT_NOISE_MULTIPLE = 1.0

#: No single attribute may multiply a user's odds by more than this (or divide them).
MAX_LIFT = 10.0

_MAX_WEIGHT = math.log(MAX_LIFT)


@dataclass(frozen=True)
class LookalikeModel:
    """Per-attribute log-lift weights for one segment (or all segments pooled)."""

    segment: str
    attributes: tuple[str, ...]
    weights_present: tuple[float, ...]
    weights_absent: tuple[float, ...]
    excluded: tuple[str, ...]
    reasons: tuple[str | None, ...]  # why each attribute is excluded, None when used
    smoothing: float
    noise_multiple: float
    count_halfwidth: int
    partner_count_halfwidth: int
    source_report: str  # the transcript hash
    report_sha256: str  # SHA-256 of the report's canonical bytes

    @classmethod
    def from_report(
        cls,
        report: Mapping[str, Any],
        segment: str | None = None,
        *,
        smoothing: float | None = None,
        noise_multiple: float = DEFAULT_NOISE_MULTIPLE,
    ) -> LookalikeModel:
        """Build the model for ``segment`` from the report's aggregates.

        ``segment=None`` pools all segments (model segment ``"*"``): for each attribute,
        ``c`` and ``o`` are sums over the segments where that attribute's cell is
        released and the segment overlap is not suppressed.

        ``smoothing`` is the prior strength ``m`` in pseudo-users (None: ``max(1, w_c)``).
        Attributes are in the order of their first cell in the report, so both sides get
        the same columns. Raises :class:`InputError` for an unknown segment (listing the
        report's segments), a suppressed segment overlap, or bad parameters.
        """
        if smoothing is not None and not (_finite(smoothing) and smoothing > 0):
            raise InputError(f"lookalike smoothing must be a number > 0, got {smoothing!r}")
        if not (_finite(noise_multiple) and noise_multiple >= 0):
            raise InputError(
                f"lookalike noise multiple must be a number >= 0, got {noise_multiple!r}"
            )

        partner_size = report.get("partner_size") if isinstance(report, Mapping) else None
        if isinstance(partner_size, bool) or not isinstance(partner_size, int):
            raise InputError("report field 'partner_size' must be an integer")
        if partner_size <= 0:
            raise InputError(f"report field 'partner_size' must be > 0, got {partner_size}")
        source = report.get("transcript_sha256")
        if not isinstance(source, str):
            raise InputError("report field 'transcript_sha256' must be a string")
        w_c, w_p = _halfwidths(report)

        cells = attribute_cells(report)
        known = segments(report)
        if segment is not None and segment not in known:
            listed = ", ".join(repr(s) for s in known) or "(none)"
            raise InputError(f"segment {segment!r} is not in the report; its segments are {listed}")
        wanted = known if segment is None else [segment]

        overlaps: dict[str, int | None] = {s: segment_overlap(report, s) for s in wanted}
        if segment is not None and _missing(overlaps[segment]):
            raise InputError(
                f"segment {segment!r} has a suppressed overlap in the report; "
                "no lookalike model can be built for it"
            )
        usable = [s for s in wanted if not _missing(overlaps[s]) and overlaps[s] > 0]  # type: ignore[operator]
        if not usable:
            raise InputError(
                "every segment's overlap is suppressed or zero in the report; "
                "no lookalike model can be built"
            )

        attributes: list[str] = []
        for cell in cells:
            if cell["attribute"] not in attributes:
                attributes.append(cell["attribute"])

        prior = float(smoothing) if smoothing is not None else float(max(1, w_c))
        present: list[float] = []
        absent: list[float] = []
        reasons: list[str | None] = []
        for attribute in attributes:
            c_sum = 0
            o_sum = 0
            p: int | None = None
            used = 0
            for cell in cells:
                if cell["attribute"] != attribute or cell["segment"] not in usable:
                    continue
                if p is None and not _missing(cell.get("partner_count")):
                    p = cell["partner_count"]
                if cell.get("suppressed") or _missing(cell.get("count")):
                    continue
                c_sum += cell["count"]
                o_sum += overlaps[cell["segment"]]  # type: ignore[operator]
                used += 1
            if used == 0 or p is None:
                reason: str | None = "suppressed"
            elif c_sum < noise_multiple * w_c * used:
                reason = f"count {c_sum} within the noise (< {noise_multiple:g} x {w_c * used})"
            elif p < noise_multiple * w_p:
                reason = f"partner_count {p} within the noise (< {noise_multiple:g} x {w_p})"
            else:
                reason = None
            reasons.append(reason)
            if reason is None:
                w, w_not = _weights(c_sum, o_sum, p, partner_size, prior)  # type: ignore[arg-type]
            else:
                w, w_not = 0.0, 0.0
            present.append(w)
            absent.append(w_not)

        return cls(
            segment=POOLED if segment is None else segment,
            attributes=tuple(attributes),
            weights_present=tuple(present),
            weights_absent=tuple(absent),
            excluded=tuple(a for a, r in zip(attributes, reasons, strict=True) if r),
            reasons=tuple(reasons),
            smoothing=prior,
            noise_multiple=float(noise_multiple),
            count_halfwidth=w_c,
            partner_count_halfwidth=w_p,
            source_report=source,
            report_sha256=report_sha256(report),
        )

    # -- scoring ----------------------------------------------------------------------

    def score(self, attributes: np.ndarray) -> np.ndarray:
        """Scores (float64, one per row) of an ``(n_users, n_attributes)`` 0/1 matrix.

        Columns must be in ``self.attributes`` order. score = sum over attributes of
        ``w_a`` where the user has the attribute and ``w'_a`` where not.
        """
        x = np.asarray(attributes)
        k = len(self.attributes)
        if x.ndim != 2 or x.shape[1] != k:
            raise InputError(
                f"lookalike scoring needs a (users, {k}) attribute matrix with columns "
                f"{', '.join(self.attributes)}; got shape {x.shape}"
            )
        if x.dtype != np.bool_:
            if not np.isin(x, (0, 1)).all():
                raise InputError(
                    "lookalike attribute columns must be booleans or 0/1 "
                    f"({', '.join(self.attributes)})"
                )
            x = x.astype(np.bool_)
        w = np.asarray(self.weights_present, dtype=np.float64)
        w_not = np.asarray(self.weights_absent, dtype=np.float64)
        return np.where(x, w, w_not).sum(axis=1) if k else np.zeros(x.shape[0])

    @staticmethod
    def expected_index(
        selected_scores: np.ndarray, audience_scores: np.ndarray, match_rate: float
    ) -> float:
        """Expected index of a selection, calibrated on the partner's whole audience.

        100 x (mean match probability of the selected users) / (mean over the whole
        audience): exporting everyone gives 100, a random selection about 100.

        A user's match probability is ``sigmoid(b + score)``, with the intercept ``b``
        chosen so that the audience's mean probability equals ``match_rate`` (the
        released overlap / partner_size, clipped into (0, 1)). Calibrating on the local
        audience keeps the estimate honest whatever the weights' bias. Assumes naive
        Bayes (attributes independent given matched or not); an estimate to size an
        export, not a measured result.
        """
        selected = np.asarray(selected_scores, dtype=np.float64)
        everyone = np.asarray(audience_scores, dtype=np.float64)
        if selected.ndim != 1 or selected.size == 0 or everyone.ndim != 1 or everyone.size == 0:
            raise InputError("expected_index needs non-empty 1-D arrays of scores")
        if not (_finite(match_rate) and match_rate > 0):
            raise InputError(f"expected_index needs a match rate > 0, got {match_rate!r}")
        rate = min(float(match_rate), 1.0 - 1e-9)
        intercept = _calibrate(everyone, rate)
        return float(
            100.0 * _sigmoid(intercept + selected).mean() / _sigmoid(intercept + everyone).mean()
        )

    # -- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; with :meth:`to_json` the same model gives the same bytes."""
        return {
            "format": MODEL_FORMAT,
            "source_report": self.source_report,
            "report_sha256": self.report_sha256,
            "segment": self.segment,
            "smoothing": self.smoothing,
            "noise_multiple": self.noise_multiple,
            "count_halfwidth": self.count_halfwidth,
            "partner_count_halfwidth": self.partner_count_halfwidth,
            "max_lift": MAX_LIFT,
            "attributes": [
                {
                    "attribute": a,
                    "weight_present": wp,
                    "weight_absent": wa,
                    "excluded": reason is not None,
                    "excluded_because": reason,
                }
                for a, wp, wa, reason in zip(
                    self.attributes,
                    self.weights_present,
                    self.weights_absent,
                    self.reasons,
                    strict=True,
                )
            ],
            "excluded": list(self.excluded),
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces, floats as shortest round-trip repr)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LookalikeModel:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != MODEL_FORMAT:
            raise InputError(f"lookalike model format must be {MODEL_FORMAT!r}")
        rows = data["attributes"]
        return cls(
            segment=data["segment"],
            attributes=tuple(r["attribute"] for r in rows),
            weights_present=tuple(float(r["weight_present"]) for r in rows),
            weights_absent=tuple(float(r["weight_absent"]) for r in rows),
            excluded=tuple(data["excluded"]),
            reasons=tuple(r["excluded_because"] for r in rows),
            smoothing=float(data["smoothing"]),
            noise_multiple=float(data["noise_multiple"]),
            count_halfwidth=int(data["count_halfwidth"]),
            partner_count_halfwidth=int(data["partner_count_halfwidth"]),
            source_report=data["source_report"],
            report_sha256=data["report_sha256"],
        )


def report_sha256(report: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the report's canonical bytes, the bytes both parties signed."""
    data = {k: v for k, v in report.items() if k != "signatures"}
    return hashlib.sha256(dumps(data)).hexdigest()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _halfwidths(report: Mapping[str, Any]) -> tuple[int, int]:
    """The 99.9% noise half-widths of a ``count`` and of a ``partner_count``."""
    privacy = report.get("privacy")
    intervals = privacy.get("interval_999") if isinstance(privacy, Mapping) else None
    if not isinstance(intervals, Mapping):
        raise InputError("report field 'privacy.interval_999' is missing")
    out = []
    for name in ("attribute_count", "partner_count"):
        value = intervals.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"report field 'privacy.interval_999.{name}' must be an integer >= 0")
        out.append(value)
    return out[0], out[1]


def _weights(c: float, o: float, p: float, n: float, prior: float) -> tuple[float, float]:
    """Shrunk, capped log-lift weights; ``prior > 0`` keeps q strictly inside (0, 1)."""
    c = min(max(c, 0), o)
    p = min(max(p, 0), n)
    # An attribute every (or no) partner user has carries no information.
    if p in (0, n):
        return 0.0, 0.0
    r = p / n
    q = (c + prior * r) / (o + prior)
    return _cap(math.log(q / r)), _cap(math.log((1 - q) / (1 - r)))


def _cap(weight: float) -> float:
    return min(max(weight, -_MAX_WEIGHT), _MAX_WEIGHT)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return result


def _calibrate(scores: np.ndarray, rate: float) -> float:
    """The intercept ``b`` with mean(sigmoid(b + scores)) == rate (bisection)."""
    values, counts = np.unique(scores, return_counts=True)  # few distinct scores
    weights = counts / counts.sum()
    centre = math.log(rate) - math.log1p(-rate)
    low, high = centre - values.max() - 1.0, centre - values.min() + 1.0
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if float(weights @ _sigmoid(mid + values)) < rate:
            low = mid
        else:
            high = mid
    return float((low + high) / 2)


def audience_ids(table: pa.Table, column: str, source_name: str) -> np.ndarray:
    """The id column as a NumPy array, refusing empty and duplicate ids.

    Raises :class:`InputError` naming the column and the first bad 1-based data row
    (never the id itself).
    """
    values = table.column(column).combine_chunks()
    empty = values.is_null()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        text = cast(pa.StringArray, values)
        length = pc.utf8_length(pc.utf8_trim_whitespace(text))
        blank = cast(
            pa.BooleanArray,
            pc.fill_null(pc.equal(length, pa.scalar(0, pa.int32())), pa.scalar(True)),
        )
        empty = pc.or_(empty, blank)
    empty_rows = np.flatnonzero(empty.to_numpy(zero_copy_only=False))
    if empty_rows.size:
        raise InputError(
            f"{source_name}: column {column!r} data row {empty_rows[0] + 1}: empty id; "
            f"{empty_rows.size} row(s) without an id in total"
        )
    ids = values.to_numpy(zero_copy_only=False)
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        seen = np.zeros(len(ids), dtype=bool)
        seen[first] = True
        row = int(np.flatnonzero(~seen)[0])
        original = int(np.flatnonzero(ids[: row + 1] == ids[row])[0])
        raise InputError(
            f"{source_name}: column {column!r} data row {row + 1}: duplicate id (first in "
            f"data row {original + 1}); {len(ids) - len(first)} duplicate row(s) in total"
        )
    return ids


def select_top(
    ids: np.ndarray, scores: np.ndarray, size: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` highest-scoring ids and their scores, best first.

    Equal scores are ordered at random (``rng``, by default seeded from ``secrets``),
    so file order never decides who makes the cut. NaN scores sort last. A ``size``
    larger than the audience returns everyone; ``size <= 0`` raises InputError naming
    ``--size``.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InputError(f"--size must be a positive integer, got {size!r}")
    if size <= 0:
        raise InputError(f"--size must be a positive integer, got {size}")
    ids = np.asarray(ids)
    s = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or s.ndim != 1 or len(ids) != len(s):
        raise InputError(
            f"select_top needs one score per id, got {len(ids)} ids and {len(s)} scores"
        )
    rng = rng or np.random.default_rng(secrets.randbits(128))
    tie_break = rng.permutation(len(s))
    order = np.lexsort((tie_break, -s))  # NaN stays NaN under negation and sorts last
    top = order[: int(size)]
    return ids[top], s[top]
