"""Lookalike model from released aggregates, top-N selection, and the lift index."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from cleanroom.errors import InputError
from cleanroom.stats.index import lift_index, report_to_frame
from cleanroom.stats.lookalike import POOLED, LookalikeModel, select_top


def cell(attribute, segment, count, partner_count, suppressed=False):
    if suppressed:
        return {
            "attribute": attribute,
            "segment": segment,
            "count": None,
            "partner_count": partner_count,
            "index": None,
            "suppressed": True,
        }
    return {
        "attribute": attribute,
        "segment": segment,
        "count": count,
        "partner_count": partner_count,
        "index": None,
        "suppressed": False,
    }


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
            cell("sports", "loyal", 5, 300),  # below min_count
            cell("gaming", "loyal", None, None, suppressed=True),
            cell("age", "loyal", 10, 400),
            cell("travel", "lapsed", 20, 200),
            cell("sports", "lapsed", 30, 300),
            cell("gaming", "lapsed", 12, 100),
            cell("age", "lapsed", None, 400, suppressed=True),
        ],
        "privacy": {"mechanism": "none", "epsilon_spent": 1.0, "epsilon_remaining": 9.0},
    }


def expected_weights(c, o, p, n, a=1.0):
    q = (c + a) / (o + 2 * a)
    r = (p + a) / (n + 2 * a)
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
    w, w_not = expected_weights(40, 100, 200, 1000)
    # by hand: q = 41/102, r = 201/1002
    assert w == pytest.approx(math.log((41 / 102) / (201 / 1002)), rel=1e-15)
    assert w_not == pytest.approx(math.log((61 / 102) / (801 / 1002)), rel=1e-15)
    assert model.weights_present[0] == pytest.approx(w, rel=1e-15)
    assert model.weights_absent[0] == pytest.approx(w_not, rel=1e-15)
    w, w_not = expected_weights(10, 100, 400, 1000)
    assert model.weights_present[3] == pytest.approx(w)
    assert model.weights_absent[3] == pytest.approx(w_not)
    assert model.weights_present[3] < 0 < model.weights_absent[3]  # under-represented


def test_excluded_attributes_get_zero_weight(report):
    model = LookalikeModel.from_report(report, "loyal")
    assert model.excluded == ("sports", "gaming")  # below min_count, suppressed
    assert model.weights_present[1:3] == (0.0, 0.0)
    assert model.weights_absent[1:3] == (0.0, 0.0)
    assert LookalikeModel.from_report(report, "loyal", min_count=5).excluded == ("gaming",)
    assert LookalikeModel.from_report(report, "loyal", min_count=11).excluded == (
        "sports",
        "gaming",
        "age",
    )


def test_smoothing_parameter(report):
    model = LookalikeModel.from_report(report, "loyal", smoothing=0.5)
    w, _ = expected_weights(40, 100, 200, 1000, a=0.5)
    assert model.weights_present[0] == pytest.approx(w)
    assert model.smoothing == 0.5
    with pytest.raises(InputError):
        LookalikeModel.from_report(report, "loyal", smoothing=0)


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
    # gaming: loyal suppressed -> lapsed only, 12 >= 10
    w, _ = expected_weights(12, 50, 100, 1000)
    assert model.weights_present[idx("gaming")] == pytest.approx(w)
    assert model.excluded == ()


def test_noisy_count_above_overlap_is_clipped(report):
    report["attributes"][0]["count"] = 130  # > overlap 100 after noise
    model = LookalikeModel.from_report(report, "loyal")
    assert all(math.isfinite(v) for v in model.weights_present + model.weights_absent)
    w, _ = expected_weights(100, 100, 200, 1000)
    assert model.weights_present[0] == pytest.approx(w)


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


def test_expected_index(report):
    model = LookalikeModel.from_report(report, "loyal")
    # all-zero scores: no information, index 100
    assert model.expected_index(np.zeros(10), 100, 1000) == pytest.approx(100.0)
    s = model.score(np.array([[1, 0, 0, 0]] * 5, dtype=bool))
    pi = 100 / 1000
    odds = pi / (1 - pi) * math.exp(s[0])
    assert model.expected_index(s, 100, 1000) == pytest.approx(100 * odds / (1 + odds) / pi)
    assert model.expected_index(s, 100, 1000) > 100
    assert model.expected_index(-s, 100, 1000) < 100
    # never above 100 / pi (everyone matched)
    assert model.expected_index(np.full(3, 1e6), 100, 1000) == pytest.approx(1000.0)
    with pytest.raises(InputError):
        model.expected_index(s, 0, 1000)
    with pytest.raises(InputError):
        model.expected_index(np.array([]), 100, 1000)


# -- select_top -------------------------------------------------------------------------


def test_select_top_order_and_ties():
    ids = np.array(["a", "b", "c", "d", "e"])
    scores = np.array([1.0, 3.0, 1.0, 3.0, 0.5])
    top_ids, top_scores = select_top(ids, scores, 3)
    assert list(top_ids) == ["b", "d", "a"]  # ties keep original order
    assert list(top_scores) == [3.0, 3.0, 1.0]
    all_ids, _ = select_top(ids, scores, 100)  # larger than the audience
    assert list(all_ids) == ["b", "d", "a", "c", "e"]


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
