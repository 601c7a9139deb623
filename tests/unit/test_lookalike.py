"""Lookalike model from released aggregates, top-N selection, and the lift index."""

from __future__ import annotations

import copy
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from support import report_cell as cell

from cleanroom.errors import InputError
from cleanroom.report.document import dumps
from cleanroom.report.index import lift_index, report_to_frame
from cleanroom.report.lookalike import (
    MAX_LIFT,
    POOLED,
    LookalikeModel,
    audience_ids,
    report_sha256,
    select_top,
)


@pytest.fixture
def report():
    return {
        "contract_id": "c",
        "contract_sha256": "0" * 64,
        "session_id": "s",
        "transcript_sha256": "ab" * 32,
        "released_at": "2026-11-22T12:00:00Z",
        "brand_size": {"loyal": 500, "lapsed": 400},
        "partner_size": 1000,
        "overlap": {
            "total": 150,
            "by_segment": {"loyal": 100, "lapsed": 50},
            "by_key": {"email": 150},
        },
        "attributes": [
            cell("travel", "loyal", 40, 200),
            cell("sports", "loyal", 5, 300),  # within the noise (half-width 8)
            cell("gaming", "loyal", None, None, suppressed=True),
            cell("age", "loyal", 10, 400),
            cell("travel", "lapsed", 20, 200),
            cell("sports", "lapsed", 30, 300),
            cell("gaming", "lapsed", 12, 100),
            cell("age", "lapsed", None, 400, suppressed=True),
        ],
        "privacy": {
            "mechanism": "discrete_laplace",
            "epsilon_spent": 1.0,
            "epsilon_remaining": 9.0,
            "interval_999": {"overlap": 4, "attribute_count": 8, "partner_count": 3},
        },
    }


def expected_weights(c, o, p, n, m=8.0):
    """Shares shrunk towards the base rate with m pseudo-users (default: the half-width 8)."""
    r = p / n
    q = (c + m * r) / (o + m)
    return math.log(q / r), math.log((1 - q) / (1 - r))


# -- lift_index ---------------------------------------------------------------------------


def test_lift_index_maths():
    assert lift_index(240, 610, 900, 5000) == round(100 * (240 / 610) / (900 / 5000), 1)
    assert lift_index(240, 610, 900, 5000) == 218.6
    assert lift_index(10, 100, 100, 1000) == 100.0
    assert lift_index(0, 100, 100, 1000) == 0.0
    assert lift_index(50, 100, 100, 1000) == 500.0


@pytest.mark.parametrize(
    "args",
    [
        (None, 100, 10, 1000),
        (5, None, 10, 1000),
        (5, 100, None, 1000),
        (5, 100, 10, None),
        (5, 0, 10, 1000),
        (5, 100, 0, 1000),
        (5, 100, 10, 0),
        (-1, 100, 10, 1000),
        (float("nan"), 100, 10, 1000),
    ],
)
def test_lift_index_none_cases(args):
    assert lift_index(*args) is None


def test_report_to_frame(report):
    frame = report_to_frame(report)
    assert list(frame.columns) == [
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
    ]
    assert len(frame) == 8
    travel = frame[(frame.segment == "loyal") & (frame.attribute == "travel")].iloc[0]
    assert travel["overlap"] == 100 and travel["count"] == 40 and travel["partner_size"] == 1000
    assert travel["index"] == lift_index(40, 100, 200, 1000) == 200.0
    gaming = frame[(frame.segment == "loyal") & (frame.attribute == "gaming")].iloc[0]
    assert bool(gaming["suppressed"])
    assert pd.isna(gaming["count"]) and pd.isna(gaming["index"])
    assert frame["suppressed"].dtype == bool


def test_report_to_frame_keeps_released_index(report):
    report["attributes"][0]["index"] = 199.9
    assert report_to_frame(report)["index"].iloc[0] == 199.9


# -- model ----------------------------------------------------------------------------


def test_weights_match_hand_computation(report):
    model = LookalikeModel.from_report(report, "loyal")
    assert model.segment == "loyal"
    assert model.attributes == ("travel", "sports", "gaming", "age")
    assert model.source_report == "ab" * 32
    assert model.smoothing == 8.0  # defaults to the count's half-width
    # by hand: r = 200/1000 = 0.2, q = (40 + 8 * 0.2) / (100 + 8) = 41.6/108
    assert model.weights_present[0] == pytest.approx(math.log((41.6 / 108) / 0.2), rel=1e-12)
    assert model.weights_absent[0] == pytest.approx(math.log((66.4 / 108) / 0.8), rel=1e-12)
    w, w_not = expected_weights(10, 100, 400, 1000)
    assert model.weights_present[3] == pytest.approx(w)
    assert model.weights_absent[3] == pytest.approx(w_not)
    assert model.weights_present[3] < 0 < model.weights_absent[3]  # under-represented


def test_model_records_the_report_bytes_hash(report):
    model = LookalikeModel.from_report(report, "loyal")
    assert model.report_sha256 == hashlib.sha256(dumps(report)).hexdigest()
    assert model.to_dict()["report_sha256"] == model.report_sha256
    signed = {**report, "signatures": {"brand": {}}}  # signatures are not part of the bytes
    assert report_sha256(signed) == model.report_sha256
    report["partner_size"] = 1001
    assert report_sha256(report) != model.report_sha256


def test_attributes_within_the_noise_are_excluded(report):
    model = LookalikeModel.from_report(report, "loyal")
    assert model.excluded == ("sports", "gaming")  # count 5 < 8, suppressed
    assert model.reasons[1].startswith("count 5 within the noise")
    assert model.reasons[2] == "suppressed"
    assert model.weights_present[1:3] == (0.0, 0.0)
    assert model.weights_absent[1:3] == (0.0, 0.0)
    assert model.to_dict()["noise_multiple"] == 1.0
    lenient = LookalikeModel.from_report(report, "loyal", noise_multiple=0.5)  # threshold 4
    assert lenient.excluded == ("gaming",)
    strict = LookalikeModel.from_report(report, "loyal", noise_multiple=1.3)  # threshold 10.4
    assert strict.excluded == ("sports", "gaming", "age")
    report["attributes"][0]["partner_count"] = 2  # below the partner half-width 3
    assert "travel" in LookalikeModel.from_report(report, "loyal").excluded


def test_report_without_intervals_is_refused(report):
    del report["privacy"]["interval_999"]
    with pytest.raises(InputError, match="interval_999"):
        LookalikeModel.from_report(report, "loyal")


def test_smoothing_parameter(report):
    model = LookalikeModel.from_report(report, "loyal", smoothing=0.5)
    w, _ = expected_weights(40, 100, 200, 1000, m=0.5)
    assert model.weights_present[0] == pytest.approx(w)
    assert model.smoothing == 0.5
    heavy = LookalikeModel.from_report(report, "loyal", smoothing=1e6)
    assert abs(heavy.weights_present[0]) < 1e-3  # a strong prior pulls towards index 100
    for bad in (0, -1, float("nan")):
        with pytest.raises(InputError, match="smoothing"):
            LookalikeModel.from_report(report, "loyal", smoothing=bad)
    with pytest.raises(InputError, match="noise multiple"):
        LookalikeModel.from_report(report, "loyal", noise_multiple=-1)


def test_pooled_model_sums_unsuppressed_segments(report):
    model = LookalikeModel.from_report(report)
    assert model.segment == POOLED
    idx = model.attributes.index
    # travel: both segments
    w, _ = expected_weights(60, 150, 200, 1000)
    assert model.weights_present[idx("travel")] == pytest.approx(w)
    # age: lapsed suppressed, so loyal only (count 10 of overlap 100)
    w, _ = expected_weights(10, 100, 400, 1000)
    assert model.weights_present[idx("age")] == pytest.approx(w)
    # gaming: loyal suppressed -> lapsed only, 12 >= 8
    w, _ = expected_weights(12, 50, 100, 1000)
    assert model.weights_present[idx("gaming")] == pytest.approx(w)
    # sports: 5 + 30 = 35 against two half-widths, 16
    assert model.excluded == ()


def test_noisy_count_above_overlap_gives_bounded_weights(report):
    report["attributes"][0]["count"] = 130  # > overlap 100 after noise
    model = LookalikeModel.from_report(report, "loyal")
    w, w_not = expected_weights(100, 100, 200, 1000)  # clipped to the overlap
    bound = math.log(MAX_LIFT)
    assert model.weights_present[0] == pytest.approx(w)
    assert w_not < -bound  # log(8 / 108): every matched user has it, bar the prior
    assert model.weights_absent[0] == -bound
    assert all(abs(v) <= bound for v in model.weights_present + model.weights_absent)
    report["privacy"]["interval_999"]["attribute_count"] = 0
    sharp = LookalikeModel.from_report(report, "loyal", smoothing=1e-9)
    assert sharp.weights_absent[0] == -bound  # log(~0) capped, not -20


def test_unknown_segment_lists_segments(report):
    with pytest.raises(InputError, match=r"'vip'.*'loyal', 'lapsed'"):
        LookalikeModel.from_report(report, "vip")


def test_suppressed_segment_overlap(report):
    report["overlap"]["by_segment"]["lapsed"] = None
    with pytest.raises(InputError, match="suppressed"):
        LookalikeModel.from_report(report, "lapsed")
    # pooled just leaves it out
    pooled = LookalikeModel.from_report(report)
    assert pooled.weights_present[0] == pytest.approx(expected_weights(40, 100, 200, 1000)[0])


def test_score_and_ordering(report):
    model = LookalikeModel.from_report(report, "loyal")
    #            travel sports gaming age
    x = np.array(
        [
            [1, 0, 0, 0],  # travel only: best
            [0, 0, 0, 1],  # age only: worst
            [0, 0, 0, 0],  # neither
            [1, 1, 1, 1],  # both (age pulls it below neither)
        ],
        dtype=bool,
    )
    s = model.score(x)
    wp, wa = model.weights_present, model.weights_absent
    assert s[0] == pytest.approx(wp[0] + wa[3])
    assert s[1] == pytest.approx(wa[0] + wp[3])
    assert s[3] == pytest.approx(wp[0] + wp[3])
    assert s[0] > s[2] > s[3] > s[1]  # travel only > neither > both > age only
    # excluded columns do not matter
    x2 = x.copy()
    x2[:, 1:3] = ~x2[:, 1:3]
    np.testing.assert_array_equal(model.score(x2), s)
    # 0/1 ints accepted
    np.testing.assert_array_equal(model.score(x.astype(int)), s)


def test_score_rejects_bad_matrix(report):
    model = LookalikeModel.from_report(report, "loyal")
    with pytest.raises(InputError, match="travel, sports, gaming, age"):
        model.score(np.zeros((3, 2), dtype=bool))
    with pytest.raises(InputError, match="0/1"):
        model.score(np.full((3, 4), 2))


def test_to_dict_is_stable_and_round_trips(report):
    a = LookalikeModel.from_report(report, "loyal")
    b = LookalikeModel.from_report(copy.deepcopy(report), "loyal")
    assert a.to_json() == b.to_json()
    assert json.loads(a.to_json()) == a.to_dict()
    assert LookalikeModel.from_dict(json.loads(a.to_json())) == a


def random_audience(model, size, seed, shares):
    """A partner audience with the model's attributes at the given base rates."""
    rng = np.random.default_rng(seed)
    return rng.random((size, len(model.attributes))) < np.asarray(shares)


def test_exporting_the_whole_audience_gives_index_100(report):
    for segment in ("loyal", "lapsed", None):
        model = LookalikeModel.from_report(report, segment)
        scores = model.score(random_audience(model, 5000, 1, [0.2, 0.3, 0.1, 0.4]))
        everyone, everyone_scores = select_top(np.arange(5000), scores, 5000)
        assert len(everyone) == 5000
        assert model.expected_index(everyone_scores, scores, 0.15) == pytest.approx(100, abs=1e-9)
        best = select_top(np.arange(5000), scores, 500)[1]
        worst = -select_top(np.arange(5000), -scores, 500)[1]
        assert model.expected_index(best, scores, 0.15) > 100
        assert model.expected_index(worst, scores, 0.15) < 100


def test_expected_index_is_calibrated_and_bounded(report):
    model = LookalikeModel.from_report(report, "loyal")
    scores = model.score(random_audience(model, 2000, 2, [0.2, 0.3, 0.1, 0.4]))
    # all-zero scores: no information, any selection is 100
    assert model.expected_index(np.zeros(10), np.zeros(2000), 0.1) == pytest.approx(100.0)
    # never above 100 / match rate (every selected user matched)
    top = select_top(np.arange(2000), scores, 1)[1]
    assert model.expected_index(top, scores, 0.1) <= 1000.0 + 1e-9
    with pytest.raises(InputError, match="match rate"):
        model.expected_index(top, scores, 0)
    with pytest.raises(InputError):
        model.expected_index(np.array([]), scores, 0.1)


def fifty_attribute_report(rng, *, signal: bool):
    """A 50 x 3 report at noise half-width 700, like a 6,000-user session at epsilon 1.

    Without ``signal`` every attribute has index ~100 and noisy counts; with it,
    ``attr_00`` is three times as common among matched users, well clear of the noise.
    """
    halfwidth = 700
    partner_size = 100_000
    overlap = (
        {"loyal": 600, "lapsed": 900, "prospect": 5000}
        if not signal
        else {
            "loyal": 5000,
            "lapsed": 5000,
            "prospect": 5000,
        }
    )
    cells = []
    for a in range(50):
        base = 0.1 if signal and a == 0 else 0.3
        lift = 3.0 if signal and a == 0 else 1.0
        partner_count = int(base * partner_size + rng.laplace(0, 100))
        for segment, o in overlap.items():
            noise = rng.laplace(0, 100) if signal else rng.uniform(-halfwidth, halfwidth)
            count = max(0, int(base * lift * o + noise))
            cells.append(cell(f"attr_{a:02d}", segment, count, partner_count))
    return {
        "transcript_sha256": "cd" * 32,
        "partner_size": partner_size,
        "overlap": {"total": sum(overlap.values()), "by_segment": overlap},
        "attributes": cells,
        "privacy": {
            "mechanism": "discrete_laplace",
            "interval_999": {"overlap": 500, "attribute_count": halfwidth, "partner_count": 690},
        },
    }


def test_no_attribute_within_the_noise_gets_a_weight():
    report = fifty_attribute_report(np.random.default_rng(3), signal=False)
    counts = {(c["attribute"], c["segment"]): c["count"] for c in report["attributes"]}
    excluded = used = 0
    for segment in ("loyal", "lapsed", "prospect"):
        model = LookalikeModel.from_report(report, segment)
        for attribute, wp, wa in zip(
            model.attributes, model.weights_present, model.weights_absent, strict=True
        ):
            within = counts[(attribute, segment)] < 700
            assert (attribute in model.excluded) == within
            assert (wp == wa == 0.0) == within
            assert abs(wp) <= math.log(MAX_LIFT) and abs(wa) <= math.log(MAX_LIFT)
        excluded += len(model.excluded)
        used += len(model.attributes) - len(model.excluded)
        scores = model.score(random_audience(model, 6000, 4, [0.3] * 50))
        everyone = select_top(np.arange(6000), scores, 6000)[1]
        assert model.expected_index(everyone, scores, 0.1) == pytest.approx(100, abs=1e-9)
        best = select_top(np.arange(6000), scores, 500)[1]
        assert model.expected_index(best, scores, 0.1) >= 100 - 1e-9
    assert excluded > 50 and used > 20  # both rules were exercised


def test_top_n_ranks_the_signal_carriers_first():
    report = fifty_attribute_report(np.random.default_rng(7), signal=True)
    model = LookalikeModel.from_report(report, "loyal")
    assert model.excluded == ()
    weights = np.asarray(model.weights_present) - np.asarray(model.weights_absent)
    assert weights.argmax() == 0
    audience = random_audience(model, 10_000, 8, [0.1] + [0.3] * 49)
    scores = model.score(audience)
    top, top_scores = select_top(np.arange(10_000), scores, 500)
    assert audience[top, 0].mean() >= 0.95  # ~10% of the audience carries attr_00
    assert model.expected_index(top_scores, scores, 0.05) > 150


# -- audience ids -------------------------------------------------------------------------


def test_audience_ids_accepts_unique_ids():
    table = pa.table({"user_id": ["a", "b", "c"]})
    assert list(audience_ids(table, "user_id", "aud.csv")) == ["a", "b", "c"]
    assert list(audience_ids(pa.table({"id": [3, 1, 2]}), "id", "aud.parquet")) == [3, 1, 2]


@pytest.mark.parametrize("missing", [None, "", "   "])
def test_audience_ids_refuse_an_empty_id(missing):
    table = pa.table({"user_id": ["a", "b", missing, None]})
    with pytest.raises(InputError, match=r"aud.csv: column 'user_id' data row 3: empty id; 2 row"):
        audience_ids(table, "user_id", "aud.csv")


def test_audience_ids_refuse_a_duplicate_without_showing_it():
    table = pa.table({"user_id": ["u-secret-1", "b", "c", "b", "u-secret-1", "b"]})
    with pytest.raises(InputError) as caught:
        audience_ids(table, "user_id", "aud.csv")
    message = str(caught.value)
    assert "column 'user_id' data row 4: duplicate id (first in data row 2)" in message
    assert "3 duplicate row(s)" in message
    assert "secret" not in message and "'b'" not in message


# -- select_top -------------------------------------------------------------------------


def test_select_top_order():
    ids = np.array(["a", "b", "c", "d", "e"])
    scores = np.array([1.0, 3.0, 1.0, 3.0, 0.5])
    top_ids, top_scores = select_top(ids, scores, 3)
    assert set(top_ids[:2]) == {"b", "d"} and top_ids[2] in {"a", "c"}
    assert list(top_scores) == [3.0, 3.0, 1.0]
    all_ids, all_scores = select_top(ids, scores, 100)  # larger than the audience
    assert sorted(all_ids) == list(ids) and list(all_scores) == [3.0, 3.0, 1.0, 1.0, 0.5]


def test_select_top_breaks_ties_at_random_not_by_file_order():
    ids = np.arange(1000)
    scores = np.zeros(1000)
    picks = [tuple(select_top(ids, scores, 10)[0]) for _ in range(3)]
    assert len(set(picks)) == 3  # the same 10 of 1000 twice has odds ~1e-23
    assert picks[0] != tuple(range(10))
    # an explicit generator makes it reproducible
    a = select_top(ids, scores, 10, rng=np.random.default_rng(1))[0]
    b = select_top(ids, scores, 10, rng=np.random.default_rng(1))[0]
    np.testing.assert_array_equal(a, b)


def test_select_top_nan_last():
    ids, _ = select_top(np.arange(3), np.array([np.nan, 1.0, 2.0]), 3)
    assert list(ids) == [2, 1, 0]


@pytest.mark.parametrize("size", [0, -5])
def test_select_top_bad_size(size):
    with pytest.raises(InputError, match="--size"):
        select_top(np.arange(3), np.zeros(3), size)


def test_select_top_length_mismatch():
    with pytest.raises(InputError):
        select_top(np.arange(3), np.zeros(2), 1)
