"""The protocol's released numbers against a plain computation over the same lists.

With mechanism "none" and thresholds at zero, every count in the report must equal what a
plain pandas merge of the two normalized lists gives. With noise on, over several sessions,
counts may leave the stated 99.9% interval only as often as such an interval allows (a
binomial tolerance, so the test is not flaky), never the bound decryption relies on, and
most of them must differ from the exact value (noise was applied).
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pytest

from cleanroom.brand.demo import ATTRIBUTES, SEGMENTS, synthetic_lists
from cleanroom.identifiers.normalize import digest
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.privacy import accounting
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


def plain_expectation(crm: pd.DataFrame, audience: pd.DataFrame, keys: tuple[str, ...]) -> dict:
    """The overlap and attribute counts by a pandas merge of the normalized lists."""

    def normalized(frame: pd.DataFrame, key: str, hashed: str | None) -> pd.Series:
        raw = frame[key].map(lambda v: digest(key, v, "pair-1", "US"))
        if hashed and hashed in frame:
            raw = raw.where(
                raw.notna(), frame[hashed].map(lambda v: digest(hashed, v, "pair-1", "US"))
            )
        return raw

    brand = pd.DataFrame({"segment": crm["tier"]})
    partner = audience.copy()
    for key in keys:
        brand[key] = normalized(crm, key, f"{key}_sha256")
        partner[f"d_{key}"] = normalized(audience, key, None)
        # each side keeps the first occurrence of an identifier
        brand.loc[brand[key].duplicated() & brand[key].notna(), key] = None
        partner.loc[partner[f"d_{key}"].duplicated() & partner[f"d_{key}"].notna(), f"d_{key}"] = (
            None
        )
    partner = partner[partner[[f"d_{k}" for k in keys]].notna().any(axis=1)].copy()
    brand = brand[brand[list(keys)].notna().any(axis=1)]
    partner["segment"] = None
    partner["matched_by"] = None
    for key in keys:  # priority order: a record keeps its first matching key
        merged = partner[[f"d_{key}"]].merge(
            brand[[key, "segment"]].dropna(subset=[key]),
            how="left",
            left_on=f"d_{key}",
            right_on=key,
        )
        merged.index = partner.index
        new = partner["segment"].isna() & merged["segment"].notna()
        partner.loc[new, "segment"] = merged.loc[new, "segment"]
        partner.loc[new, "matched_by"] = key
    matched = partner[partner["segment"].notna()]
    return {
        "brand_size": Counter(brand["segment"]),
        "partner_size": len(partner),
        "total": len(matched),
        "by_segment": Counter(matched["segment"]),
        "by_key": Counter(matched["matched_by"]),
        "attribute": {
            (a, s): int(matched.loc[matched["segment"] == s, a].sum())
            for a in ATTRIBUTES
            for s in SEGMENTS
        },
        "partner_count": {a: int(partner[a].sum()) for a in ATTRIBUTES},
    }


def run_session(contract, crm, audience, stores):
    brand_store, partner_store = stores
    brand = BrandSession(
        contract, prepare_brand_list(crm, BRAND_COLUMNS, contract), brand_store, peer="newsco"
    )
    partner = PartnerSession(
        contract, prepare_partner_list(audience, None, contract), partner_store
    )
    run_in_process(brand, partner)
    assert brand.report == partner.report
    return brand.report.to_dict()


@pytest.fixture(scope="module")
def lists():
    return synthetic_lists(400, 700, seed=7)


def test_exact_counts_equal_a_plain_merge(make_contract, stores, lists):
    contract = make_contract(mechanism="none", min_set_size=0, min_overlap=0)
    report = run_session(contract, lists.crm, lists.audience, stores)
    expected = plain_expectation(lists.crm, lists.audience, contract.keys)

    assert report["overlap"]["total"] == expected["total"] > 100
    assert report["overlap"]["by_segment"] == {s: expected["by_segment"][s] for s in SEGMENTS}
    assert "by_key" not in report["overlap"]  # released only if asked for: never, today
    assert report["partner_size"] == expected["partner_size"]
    assert report["brand_size"] == {s: expected["brand_size"][s] for s in SEGMENTS}
    assert len(report["attributes"]) == len(ATTRIBUTES) * len(SEGMENTS)
    for cell in report["attributes"]:
        assert cell["count"] == expected["attribute"][(cell["attribute"], cell["segment"])]
        assert cell["partner_count"] == expected["partner_count"][cell["attribute"]]
        assert cell["suppressed"] is False


NOISY_SESSIONS = 8


def binomial_tail_limit(trials: int, p: float, failure: float) -> int:
    """The smallest k with P(Binomial(trials, p) > k) <= failure."""
    tail, k = 1.0, -1
    while tail > failure:
        k += 1
        tail -= math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
    return k


def released_cells(report: dict, expected: dict) -> list[tuple[str, int, int]]:
    """(noise kind, released count, exact count) of every count the report releases."""
    overlap = report["overlap"]
    cells = [("overlap_total", overlap["total"], expected["total"])]
    cells += [("overlap", overlap["by_segment"][s], expected["by_segment"][s]) for s in SEGMENTS]
    cells += [("brand_size", report["brand_size"][s], expected["brand_size"][s]) for s in SEGMENTS]
    cells += [("partner_size", report["partner_size"], expected["partner_size"])]
    for cell in report["attributes"]:
        exact = expected["attribute"][(cell["attribute"], cell["segment"])]
        cells.append(("attribute_count", cell["count"], exact))
    cells += [
        ("partner_count", cell["partner_count"], expected["partner_count"][cell["attribute"]])
        for cell in report["attributes"]
        if cell["segment"] == SEGMENTS[0]
    ]
    return cells


@pytest.mark.parametrize("mechanism", ["discrete_gaussian", "discrete_laplace"])
def test_noisy_counts_stay_within_the_stated_interval(make_contract, tmp_path, lists, mechanism):
    """Every released count, over several sessions: within the stated 99.9% interval (the
    exact interval of the sum of every noise on it: the brand's, the partner's, the dummies'
    deviation from their public mean) at the rate a 99.9% interval allows, always within
    the hard bounds, and noisy."""
    contract = make_contract(
        mechanism=mechanism, epsilon=2.0, epsilon_match=0.6, min_set_size=0, min_overlap=0
    )
    assert len(contract.keys) > 1 and len(SEGMENTS) > 1
    expected = plain_expectation(lists.crm, lists.audience, contract.keys)
    brand, partner = accounting.brand_budget(contract), accounting.partner_budget(contract)
    dummy_deviation = partner.sizes.shift  # at most, per pattern
    patterns = accounting.patterns(contract)
    # What a count may never exceed: the decryption bounds (tails of 2**-40) and the
    # dummies' largest deviation from their mean.
    hard_bound = {
        "overlap": brand.release.bound()
        + accounting.first_segment_cells(contract) * dummy_deviation,
        "overlap_total": len(SEGMENTS) * brand.release.bound() + (patterns - 1) * dummy_deviation,
        "brand_size": brand.release.bound(),
        "partner_size": patterns * dummy_deviation,
        "attribute_count": brand.release.bound() + partner.release.bound(),
        "partner_count": partner.release.bound(),
    }
    cells: list[tuple[str, int, int, int]] = []  # kind, released, exact, stated interval
    for session in range(NOISY_SESSIONS):
        stores = (
            StateStore(tmp_path / f"brand-{session}.db"),
            StateStore(tmp_path / f"partner-{session}.db"),
        )
        report = run_session(contract, lists.crm, lists.audience, stores)
        interval = report["privacy"]["interval_999"]
        assert interval["partner_count"] == partner.release.interval(0.999)
        assert interval["overlap"] > brand.release.interval(0.999)  # the dummies add theirs
        cells += [
            (kind, got, exact, interval[kind])
            for kind, got, exact in released_cells(report, expected)
        ]

    assert len(cells) == NOISY_SESSIONS * (1 + 3 + 3 + 1 + 6 * 3 + 6)
    for kind, got, exact, _ in cells:
        assert abs(got - exact) <= hard_bound[kind], (kind, got, exact)
    # Each count leaves its 99.9% interval with probability at most 0.001, independently.
    outside = sum(abs(got - exact) > stated for _, got, exact, stated in cells)
    assert outside <= binomial_tail_limit(len(cells), 0.001, failure=1e-6)
    # Noise was applied: an exact count survives a draw with probability below 0.1 here.
    noisy = sum(got != exact for _, got, exact, _ in cells)
    assert noisy >= len(cells) // 2, f"only {noisy} of {len(cells)} released counts carry noise"


def test_overlap_only_contract_releases_no_attributes(make_contract, stores, lists):
    contract = make_contract(
        mechanism="none", min_set_size=0, min_overlap=0, attributes=(), segments=SEGMENTS
    )
    report = run_session(contract, lists.crm, lists.audience, stores)
    expected = plain_expectation(lists.crm, lists.audience, contract.keys)
    assert report["attributes"] == []
    assert report["overlap"]["total"] == expected["total"]


def test_min_overlap_suppresses_small_cells(make_contract, stores, lists):
    contract = make_contract(mechanism="none", min_set_size=0, min_overlap=40)
    report = run_session(contract, lists.crm, lists.audience, stores)
    expected = plain_expectation(lists.crm, lists.audience, contract.keys)
    for cell in report["attributes"]:
        true = expected["attribute"][(cell["attribute"], cell["segment"])]
        if true < 40:
            assert cell["suppressed"] and cell["count"] is None and cell["index"] is None
        elif expected["by_segment"][cell["segment"]] >= 40:
            assert cell["count"] == true
