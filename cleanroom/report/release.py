"""How the brand assembles the report (docs/reference/report.md) from numbers that already
carry noise from the side whose rows they describe, with ``min_overlap`` suppression."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cleanroom.contract import DISCRETE_GAUSSIAN, NO_NOISE, PROTOCOL_VERSION, Contract
from cleanroom.privacy import accounting
from cleanroom.privacy.accounting import SideBudget
from cleanroom.privacy.noise import epsilon_of_rho, interval_of_sum
from cleanroom.report.document import Report
from cleanroom.report.index import lift_index


@dataclass(frozen=True)
class ReleasedCounts:
    """Noisy counts before clamping and suppression, in contract order."""

    by_segment: Sequence[int]  # dummies' public expected offset already subtracted
    attribute_counts: np.ndarray | None  # (attributes, segments)
    partner_counts: Sequence[int] | None  # per attribute


def _released(value: int, threshold: int) -> int | None:
    """Clamp negative noise away (post-processing) and suppress small cells."""
    value = max(0, int(value))
    return None if value < threshold else value


def build_report(
    *,
    contract: Contract,
    session_id: str,
    transcript_sha256: str,
    brand_records: Sequence[int],
    partner_size: int,
    counts: ReleasedCounts,
    brand: SideBudget,
    partner: SideBudget,
    ledger_remaining: float,
) -> Report:
    """The released report, unsigned."""
    threshold = contract.min_overlap
    by_segment = {
        segment: _released(value, threshold)
        for segment, value in zip(contract.segments, counts.by_segment, strict=True)
    }
    # The total is the segments' sum (no draw of its own: docs/privacy.md), and only when
    # no segment is suppressed, so that no suppressed value can be recovered by subtraction.
    suppressed_segment = any(value is None for value in by_segment.values())
    total = None if suppressed_segment else _released(sum(counts.by_segment), threshold)
    attributes: list[dict[str, Any]] = []
    if counts.attribute_counts is not None and counts.partner_counts is not None:
        for a, attribute in enumerate(contract.attributes):
            partner_count = _released(counts.partner_counts[a], threshold)
            for s, segment in enumerate(contract.segments):
                count = _released(counts.attribute_counts[a, s], threshold)
                overlap = by_segment[segment]
                suppressed = count is None or overlap is None or partner_count is None
                attributes.append(
                    {
                        "attribute": attribute,
                        "segment": segment,
                        "count": None if suppressed else count,
                        "partner_count": partner_count,
                        "index": None
                        if suppressed
                        else lift_index(count, overlap, partner_count, partner_size),
                        "suppressed": suppressed,
                    }
                )
    document = {
        "protocol_version": PROTOCOL_VERSION,
        "contract_id": contract.id,
        "contract_sha256": contract.sha256,
        "session_id": session_id,
        "transcript_sha256": transcript_sha256,
        "released_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "brand_size": dict(zip(contract.segments, map(int, brand_records), strict=True)),
        "partner_size": int(partner_size),
        "overlap": {"total": total, "by_segment": by_segment},
        "attributes": attributes,
        "min_overlap": threshold,
        "privacy": privacy_block(contract, brand, partner, ledger_remaining),
    }
    return Report(document)


def privacy_block(
    contract: Contract, brand: SideBudget, partner: SideBudget, ledger_remaining: float
) -> dict[str, Any]:
    """What was spent, in the ledger's unit and as (epsilon, delta), and the exact 99.9%
    half-width of the noise on each kind of released number (docs/privacy.md)."""
    gaussian = contract.mechanism == DISCRETE_GAUSSIAN
    dummy = partner.sizes
    cells = accounting.first_segment_cells(contract)
    patterns = accounting.patterns(contract)
    segments = len(contract.segments)

    def as_epsilon(amount: float) -> float:
        return round(epsilon_of_rho(amount, contract.delta / 2) if gaussian else amount, 9)

    return {
        "mechanism": contract.mechanism,
        "delta": contract.delta,
        "rho_spent": round(contract.ledger_per_session, 12) if gaussian else None,
        "rho_remaining": round(ledger_remaining, 12) if gaussian else None,
        # This session alone is (epsilon_spent, delta)-DP; whatever the contract's later
        # sessions do together is (epsilon_remaining, delta)-DP.
        "epsilon_spent": as_epsilon(contract.ledger_per_session),
        "epsilon_remaining": as_epsilon(ledger_remaining),
        "epsilon_match": None
        if contract.mechanism == NO_NOISE
        else accounting.epsilon_match(contract),
        "dummies_per_pattern_mean": dummy.shift,
        "noise_scale": {
            "brand": brand.release.scale,
            # An overlap-only session releases nothing the partner noises.
            "partner": None if contract.overlap_only else partner.release.scale,
        },
        "interval_999": {
            "overlap": interval_of_sum([brand.release] + [dummy] * cells),
            "overlap_total": interval_of_sum([brand.release] * segments + [dummy] * (patterns - 1)),
            "attribute_count": None
            if contract.overlap_only
            else interval_of_sum([brand.release, partner.release]),
            "partner_count": None if contract.overlap_only else partner.release.interval(),
            "brand_size": brand.release.interval(),
            "partner_size": interval_of_sum([dummy] * patterns),
        },
    }
