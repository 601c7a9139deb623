"""Noise mechanisms: calibration against OpenDP's own privacy maps, tails, validation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cleanroom.errors import ContractError
from cleanroom.privacy import noise
from cleanroom.privacy.noise import MECHANISMS, NoiseMechanism, split_epsilon


def make(name: str, epsilon: float = 1.0, *, l1: int = 3, l2: float = math.sqrt(3), delta=1e-9):
    return NoiseMechanism.from_contract(
        name, epsilon, l1_sensitivity=l1, l2_sensitivity=l2, delta=delta
    )


@pytest.mark.parametrize("epsilon", [0.1, 0.7, 1.0, 3.3])
@pytest.mark.parametrize("l1", [1, 3, 7])
def test_laplace_scale_meets_epsilon_in_opendp_map(epsilon, l1):
    mech = make("discrete_laplace", epsilon, l1=l1)
    assert mech.scale == pytest.approx(l1 / epsilon, rel=1e-12)
    assert mech.measurement().map(l1) <= epsilon


@pytest.mark.parametrize("epsilon", [0.25, 1.0, 4.0])
def test_gaussian_scale_meets_epsilon_delta_in_opendp_map(epsilon):
    mech = make("discrete_gaussian", epsilon, l2=2.0, delta=1e-9)
    eps, delta = mech.measurement().map(2.0)
    assert eps <= epsilon
    assert delta <= 1e-9
    # and it is (nearly) the smallest such scale: 0.1% less noise breaks epsilon
    assert noise._gaussian_measurement(mech.scale * 0.999, 1e-9).map(2.0)[0] > epsilon


def test_gaussian_scale_decreases_as_epsilon_grows():
    scales = [make("discrete_gaussian", e).scale for e in (0.1, 0.5, 1.0, 2.0, 8.0)]
    assert all(a > b for a, b in itertools.pairwise(scales))


def test_gaussian_scale_grows_as_delta_shrinks():
    assert (
        make("discrete_gaussian", delta=1e-12).scale > make("discrete_gaussian", delta=1e-6).scale
    )


@pytest.mark.parametrize("name", ["discrete_laplace", "discrete_gaussian"])
def test_sample_is_int64_and_within_interval(name):
    mech = make(name, 0.5)
    noise = mech.sample(20_000)
    assert noise.dtype == np.int64
    assert noise.shape == (20_000,)
    w = mech.interval(0.999)
    # P(|noise| > w) <= 0.001, so ~20 of 20k expected outside; allowing 40 keeps the
    # false-failure probability below 1e-5 (Poisson(20) tail).
    assert np.mean(np.abs(noise) <= w) >= 0.998
    # not degenerate, and centred (std of the mean <= 1.5 scale / sqrt(n): 7+ sigmas)
    assert len(np.unique(noise)) > 10
    assert abs(noise.mean()) < 10 * mech.scale / math.sqrt(20_000)


def test_none_gives_zeros():
    mech = make("none")
    assert mech.scale == 0
    assert mech.measurement() is None
    out = mech.sample(7)
    assert out.dtype == np.int64
    assert not out.any()
    assert mech.interval() == 0
    assert mech.bound() == 0


def test_sample_zero_and_negative():
    assert make("discrete_laplace").sample(0).shape == (0,)
    with pytest.raises(ValueError):
        make("discrete_laplace").sample(-1)


def test_laplace_interval_is_exact():
    mech = make("discrete_laplace", 1.0, l1=3)  # scale 3
    a = math.exp(-1 / 3)
    w = mech.interval(0.999)

    def tail(k):  # P(|X| > k) from the pmf
        return 2 * a ** (k + 1) / (1 + a)

    assert tail(w) <= 0.001 < tail(w - 1)
    # pmf summed directly agrees
    xs = np.arange(-w, w + 1)
    mass = ((1 - a) / (1 + a) * a ** np.abs(xs)).sum()
    assert mass >= 0.999


def test_gaussian_interval_is_tight():
    mech = make("discrete_gaussian", 1.0, l2=1.0)
    s = mech.scale
    w = mech.interval(0.999)
    xs = np.arange(-int(50 * s), int(50 * s) + 1)
    pmf = np.exp(-(xs**2) / (2 * s * s))
    pmf /= pmf.sum()
    inside = pmf[np.abs(xs) <= w].sum()
    inside_less = pmf[np.abs(xs) <= w - 1].sum()
    assert inside >= 0.999 > inside_less


def test_gaussian_interval_large_scale_uses_a_valid_bound():
    mech = make("discrete_gaussian", 0.001, l2=30.0)
    assert mech.scale > 1e4
    w = mech.interval(0.999)
    # at least the continuous Gaussian's quantile, at most the sub-Gaussian bound
    assert 3.29 * mech.scale <= w <= math.sqrt(2 * math.log(2000)) * mech.scale + 1


@pytest.mark.parametrize("name", ["discrete_laplace", "discrete_gaussian"])
def test_bound_is_wider_than_interval(name):
    mech = make(name)
    assert mech.bound() > mech.interval(0.999999) > mech.interval(0.999)
    assert mech.tail(mech.bound()) <= 2.0**-40


def test_interval_rejects_bad_confidence():
    with pytest.raises(ValueError):
        make("discrete_laplace").interval(1.0)
    with pytest.raises(ValueError):
        make("discrete_laplace").interval(0.0)


def test_invalid_mechanism_names_the_field():
    with pytest.raises(ContractError, match=r"privacy\.mechanism"):
        make("gaussian")


@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("name", MECHANISMS)
def test_invalid_epsilon_names_the_field(name, epsilon):
    with pytest.raises(ContractError, match=r"privacy\.epsilon_per_session"):
        make(name, epsilon)


@pytest.mark.parametrize("delta", [0, 1, -1e-9, 2.0])
def test_invalid_delta_names_the_field(delta):
    with pytest.raises(ContractError, match=r"privacy\.delta"):
        make("discrete_gaussian", delta=delta)


def test_invalid_sensitivity():
    with pytest.raises(ValueError):
        make("discrete_laplace", l1=0)
    with pytest.raises(ValueError):
        make("discrete_gaussian", l2=0.0)


def test_split_epsilon():
    assert split_epsilon(1.0, 4) == 0.25
    assert split_epsilon(0.3, 1) == 0.3
    with pytest.raises(ValueError):
        split_epsilon(1.0, 0)
    with pytest.raises(ContractError):
        split_epsilon(0.0, 2)
