"""Lookalike model derived from a report's released aggregates only.

Both parties hold the same report, so both derive the same model (compare
:meth:`LookalikeModel.to_json` byte for byte). The partner scores its whole audience
with it locally and exports the top users; the audience never leaves the partner.

The model, per segment (naive-Bayes log-lift)
---------------------------------------------
For each approved attribute ``a``, with released numbers

* ``c`` matched records of the segment that have ``a`` (noisy),
* ``o`` the segment's overlap (noisy),
* ``p`` partner records that have ``a`` (noisy base count),
* ``N`` the partner's audience size,

and Laplace smoothing ``alpha`` (default 1)::

    q = (c + alpha) / (o + 2 alpha)      share of matched users with a
    r = (p + alpha) / (N + 2 alpha)      share of all partner users with a
    w_a  = log(q / r)                    weight when the user has a
    w'_a = log((1 - q) / (1 - r))        weight when the user does not

``c`` is clipped to ``[0, o]`` and ``p`` to ``[0, N]`` first: independent noise on
numerator and denominator can push a share past 0 or 1.

An attribute gets weight 0 (both ways) and is listed in ``excluded`` when its cell is
suppressed, a number it needs is null, or ``c < min_count`` (default 10): below that
the relative noise on ``c`` makes the weight mostly noise.

A partner user's score is ``sum_a (w_a if the user has a else w'_a)``, the log of
the product of per-attribute lifts: under the naive-Bayes assumption that attributes
are independent, ``exp(score)`` estimates P(x | matched) / P(x).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cleanroom.errors import InputError
from cleanroom.stats.index import attribute_cells, segment_overlap, segments

#: The ``segment`` of a model pooled over all segments (``from_report(segment=None)``).
POOLED = "*"

MODEL_FORMAT = "cleanroom.lookalike/1"


@dataclass(frozen=True)
class LookalikeModel:
    """Per-attribute log-lift weights for one segment (or all segments pooled)."""

    segment: str
    attributes: tuple[str, ...]
    weights_present: tuple[float, ...]
    weights_absent: tuple[float, ...]
    excluded: tuple[str, ...]
    smoothing: float
    min_count: int
    source_report: str

    @classmethod
    def from_report(
        cls,
        report: Mapping[str, Any],
        segment: str | None = None,
        *,
        smoothing: float = 1.0,
        min_count: int = 10,
    ) -> LookalikeModel:
        """Build the model for ``segment`` from the report's aggregates.

        ``segment=None`` pools all segments (model segment ``"*"``): for each attribute,
        ``c`` and ``o`` are the sums of the count and the segment overlap over the
        segments where that attribute's cell is released and the segment overlap is
        not suppressed; segments with a suppressed cell for that attribute are left
        out of both sums so the share stays consistent. An attribute with no such
        segment is excluded.

        Attributes are in the order of their first cell in the report, so both sides
        get the same columns. Raises :class:`InputError` for an unknown segment
        (listing the report's segments), a suppressed segment overlap, or bad
        ``smoothing`` / ``min_count``.
        """
        if not (isinstance(smoothing, (int, float)) and math.isfinite(smoothing)):
            raise InputError(f"lookalike smoothing must be a finite number, got {smoothing!r}")
        if smoothing <= 0:
            raise InputError(f"lookalike smoothing must be > 0, got {smoothing!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 0:
            raise InputError(f"lookalike min_count must be an integer >= 0, got {min_count!r}")

        partner_size = report.get("partner_size") if isinstance(report, Mapping) else None
        if isinstance(partner_size, bool) or not isinstance(partner_size, int):
            raise InputError("report field 'partner_size' must be an integer")
        if partner_size <= 0:
            raise InputError(f"report field 'partner_size' must be > 0, got {partner_size}")
        source = report.get("transcript_sha256")
        if not isinstance(source, str):
            raise InputError("report field 'transcript_sha256' must be a string")

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

        present: list[float] = []
        absent: list[float] = []
        excluded: list[str] = []
        for attribute in attributes:
            c_sum = 0
            o_sum = 0
            p: float | None = None
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
            if used == 0 or p is None or c_sum < min_count:
                excluded.append(attribute)
                present.append(0.0)
                absent.append(0.0)
                continue
            w, w_not = _weights(c_sum, o_sum, p, partner_size, smoothing)
            present.append(w)
            absent.append(w_not)

        return cls(
            segment=POOLED if segment is None else segment,
            attributes=tuple(attributes),
            weights_present=tuple(present),
            weights_absent=tuple(absent),
            excluded=tuple(excluded),
            smoothing=float(smoothing),
            min_count=int(min_count),
            source_report=source,
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

    def expected_index(self, scores_selected: np.ndarray, overlap: int, partner_size: int) -> float:
        """Expected index of a selected audience, estimated from the aggregates only.

        What it estimates: 100 x (expected share of the selected users that would be
        matched, i.e. look like the segment) / (share of all partner users that are
        matched, ``overlap / partner_size``). 100 means the selection is no better than
        random; 300 means three times the base match rate.

        How: prior odds of being matched ``pi / (1 - pi)`` with ``pi = overlap /
        partner_size``; each selected user's posterior odds = prior odds x
        ``exp(score)``; its match probability p = odds / (1 + odds); the result is
        ``100 x mean(p) / pi``. A user scoring 0 gets p = pi, so a model with all
        weights 0 gives exactly 100.

        Assumptions: naive Bayes, i.e. attributes independent of each other given
        matched / not matched; and the log-lift weights (against the whole partner
        base) stand in for log-likelihood ratios against the non-matched users, which
        is accurate when the overlap is a small part of the partner audience. Noise in
        the released counts is ignored. It is an estimate to size an export, not a
        measured result.
        """
        s = np.asarray(scores_selected, dtype=np.float64)
        if s.ndim != 1 or s.size == 0:
            raise InputError("expected_index needs a non-empty 1-D array of selected scores")
        if _missing(overlap) or _missing(partner_size):
            raise InputError("expected_index needs the released overlap and partner size")
        if not (0 < overlap < partner_size):
            raise InputError(
                f"expected_index needs 0 < overlap < partner_size, got {overlap} and {partner_size}"
            )
        pi = overlap / partner_size
        log_odds = math.log(pi) - math.log1p(-pi) + s
        p = 1.0 / (1.0 + np.exp(-log_odds))  # odds / (1 + odds), overflow-safe
        return float(100.0 * p.mean() / pi)

    # -- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; with :meth:`to_json` the same model gives the same bytes."""
        return {
            "format": MODEL_FORMAT,
            "source_report": self.source_report,
            "segment": self.segment,
            "smoothing": self.smoothing,
            "min_count": self.min_count,
            "attributes": [
                {
                    "attribute": a,
                    "weight_present": wp,
                    "weight_absent": wa,
                    "excluded": a in self.excluded,
                }
                for a, wp, wa in zip(
                    self.attributes, self.weights_present, self.weights_absent, strict=True
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
            smoothing=float(data["smoothing"]),
            min_count=int(data["min_count"]),
            source_report=data["source_report"],
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _weights(c: float, o: float, p: float, n: float, alpha: float) -> tuple[float, float]:
    c = min(max(c, 0), o)
    p = min(max(p, 0), n)
    q = (c + alpha) / (o + 2 * alpha)
    r = (p + alpha) / (n + 2 * alpha)
    return math.log(q / r), math.log((1 - q) / (1 - r))


def select_top(ids: np.ndarray, scores: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` highest-scoring ids and their scores, best first.

    Stable: equal scores keep their original order. NaN scores sort last. A ``size``
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
    order = np.argsort(-s, kind="stable")  # NaN stays NaN under negation and sorts last
    top = order[: int(size)]
    return ids[top], s[top]
