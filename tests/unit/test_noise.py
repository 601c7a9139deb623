"""Noise: calibration against OpenDP's own privacy maps, 64-bit draws, exact intervals of
sums, and the truncated shifted discrete Laplace used for dummies and padding."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cleanroom.privacy import noise
from cleanroom.privacy.noise import (
    NoiseMechanism,
    TruncatedLaplace,
    epsilon_of_rho,
    interval_of_sum,
    rho_for_epsilon,
    rho_of_pure,
)


@pytest.mark.parametrize("epsilon", [0.1, 0.7, 1.0, 3.3])
@pytest.mark.parametrize("l1", [1, 3, 7])
def test_laplace_scale_meets_epsilon_in_opendp_map(epsilon, l1):
    mech = NoiseMechanism.laplace(epsilon, l1)
    assert mech.scale == pytest.approx(l1 / epsilon, rel=1e-12)
    assert mech.privacy_loss() <= epsilon


@pytest.mark.parametrize("rho", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("l2", [1.0, math.sqrt(12), 6.0])
def test_gaussian_scale_is_the_smallest_meeting_rho_in_opendp_map(rho, l2):
    mech = NoiseMechanism.gaussian(rho, l2)
    assert mech.privacy_loss() <= rho
    assert noise.gaussian_measurement(mech.scale * 0.999).map(l2) > rho
    assert mech.scale == pytest.approx(l2 / math.sqrt(2 * rho), rel=1e-6)


def test_gaussian_scale_decreases_as_rho_grows():
    scales = [NoiseMechanism.gaussian(r, 2.0).scale for r in (0.01, 0.1, 0.5, 2.0)]
    assert all(a > b for a, b in itertools.pairwise(scales))


def test_rho_and_epsilon_convert_through_opendp():
    rho = rho_for_epsilon(10.0, 5e-10)
    assert epsilon_of_rho(rho, 5e-10) <= 10.0 < epsilon_of_rho(rho * 1.001, 5e-10)
    # tighter than the classic rho + 2 sqrt(rho ln(1/delta)) bound, never looser
    assert epsilon_of_rho(rho, 5e-10) <= rho + 2 * math.sqrt(rho * math.log(2e9))
    assert rho_of_pure(0.35) == pytest.approx(0.35**2 / 2)


@pytest.mark.parametrize("mech", [NoiseMechanism.laplace(0.5, 3), NoiseMechanism.gaussian(0.05, 3)])
def test_sample_is_int64_and_within_interval(mech):
    draws = mech.sample(20_000)
    assert draws.dtype == np.int64 and draws.shape == (20_000,)
    w = mech.interval(0.999)
    # ~20 of 20k expected outside; allowing 40 keeps the false-failure probability < 1e-5
    assert np.mean(np.abs(draws) <= w) >= 0.998
    assert len(np.unique(draws)) > 10
    assert abs(draws.mean()) < 10 * mech.scale / math.sqrt(20_000)


def test_draws_are_64_bit_not_clipped_at_2_to_31():
    """A 32-bit sampler saturates at ±2**31, and a saturated draw reveals the true count."""
    draws = NoiseMechanism.laplace(1e-11, 1).sample(200)
    assert np.abs(draws).max() > 2**31
    assert len(np.unique(np.abs(draws))) == 200  # none pinned at a limit


def test_none_gives_zeros():
    mech = NoiseMechanism.none()
    assert mech.scale == 0 and mech.measurement() is None
    assert not mech.sample(7).any()
    assert mech.interval() == 0 and mech.bound() == 0


def test_laplace_interval_is_exact():
    mech = NoiseMechanism.laplace(1.0, 3)
    a = math.exp(-1 / mech.scale)
    w = mech.interval(0.999)

    def tail(k):
        return 2 * a ** (k + 1) / (1 + a)

    assert tail(w) <= 0.001 < tail(w - 1)


def brute_force_interval(pmfs, confidence):
    values = {0: 1.0}
    for pmf in pmfs:
        h = len(pmf) // 2
        nxt: dict[int, float] = {}
        for v, p in values.items():
            for x, q in enumerate(pmf):
                nxt[v + x - h] = nxt.get(v + x - h, 0.0) + p * q
        values = nxt
    w = 0
    while sum(p for v, p in values.items() if abs(v) <= w) < confidence:
        w += 1
    return w


def test_interval_of_a_sum_is_exact_and_narrower_than_a_union_bound():
    gaussian, dummies = NoiseMechanism.gaussian(0.5, 3.0), TruncatedLaplace.for_delta(0.9, 1e-6)
    parts = [gaussian, dummies, dummies]
    w = interval_of_sum(parts, 0.999)
    assert w == brute_force_interval([p.pmf() for p in parts], 0.999)
    union = gaussian.interval(1 - 0.001 / 3) + 2 * interval_of_sum([dummies], 1 - 0.001 / 3)
    assert w < union


def test_gaussian_pmf_interval_matches_the_tail_table():
    mech = NoiseMechanism.gaussian(0.1, 1.0)
    w = mech.interval(0.999)
    assert mech.tail(w) <= 0.001 < mech.tail(w - 1)


@pytest.mark.parametrize("mech", [NoiseMechanism.laplace(1.0, 3), NoiseMechanism.gaussian(0.1, 3)])
def test_bound_is_wider_than_interval(mech):
    assert mech.bound() > mech.interval(0.999999) > mech.interval(0.999)
    assert mech.tail(mech.bound()) <= 2.0**-40 < mech.tail(mech.bound() - 1)


def test_interval_rejects_bad_confidence():
    with pytest.raises(ValueError):
        NoiseMechanism.laplace(1.0, 1).interval(1.0)


@pytest.mark.parametrize(("epsilon", "delta"), [(0.35, 2.5e-11), (1.0, 1e-6), (0.05, 1e-9)])
def test_truncated_laplace_shift_is_the_smallest_meeting_delta(epsilon, delta):
    dist = TruncatedLaplace.for_delta(epsilon, delta)
    assert dist.delta <= delta < TruncatedLaplace(epsilon, dist.shift - 1).delta
    pmf = dist.pmf()
    assert len(pmf) == 2 * dist.shift + 1 and pmf.sum() == pytest.approx(1.0)
    assert pmf[0] == pytest.approx(dist.delta)
    # epsilon-DP between neighbouring counts on the common support
    assert np.max(np.abs(np.diff(np.log(pmf)))) == pytest.approx(epsilon)


def chi_square_upper_quantile(dof: int, z: float) -> float:
    """Wilson-Hilferty: the chi-square quantile at a standard normal quantile z."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def test_dummy_counts_follow_the_stated_distribution():
    """Goodness of fit of the sampler the partner draws its dummy counts with. OpenDP's
    sampler reads the OS CSPRNG and takes no seed, so instead of a fixed seed the test uses
    a fixed threshold at z = 5.5 (false failure < 2e-8)."""
    dist = TruncatedLaplace.for_delta(0.35, 2.5e-11)
    draws = dist.sample(30_000)
    assert draws.min() >= 0 and draws.max() <= dist.maximum
    expected = dist.pmf() * len(draws)
    observed = np.bincount(draws, minlength=dist.maximum + 1).astype(float)
    # merge the sparse tails into two bins so every expected count is at least 5
    keep = expected >= 5
    lo, hi = np.argmax(keep), len(keep) - np.argmax(keep[::-1])
    obs = np.concatenate([[observed[:lo].sum()], observed[lo:hi], [observed[hi:].sum()]])
    exp = np.concatenate([[expected[:lo].sum()], expected[lo:hi], [expected[hi:].sum()]])
    statistic = float(((obs - exp) ** 2 / exp).sum())
    assert statistic < chi_square_upper_quantile(len(obs) - 1, 5.5)
    # and a shifted distribution is rejected by the same test
    shifted = np.roll(expected, 3)[lo:hi]
    assert float(((observed[lo:hi] - shifted) ** 2 / np.maximum(shifted, 1)).sum()) > (
        chi_square_upper_quantile(hi - lo - 1, 5.5)
    )
