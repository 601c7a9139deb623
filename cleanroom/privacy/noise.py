"""Integer differential-privacy noise, drawn and accounted through OpenDP.

Two kinds of noise (docs/privacy.md):

* **Release noise** on every released count, added by the side whose rows it protects:
  ``discrete_gaussian`` (the default; OpenDP's ``make_gaussian`` on 64-bit integers, a
  rho-zCDP measurement on L2 sensitivity) or ``discrete_laplace`` (``make_laplace``, a pure
  epsilon-DP measurement on L1 sensitivity); ``none`` adds nothing.
* **Size noise** (:class:`TruncatedLaplace`): a non-negative count on ``[0, 2 shift]``,
  ``P(d) ∝ exp(-epsilon |d - shift|)``, for the partner's dummy matches and the brand's
  padding. It is OpenDP's discrete Laplace draw, resampled until it falls in range.

All randomness comes from OpenDP's exact integer samplers over a CSPRNG, never from
``numpy.random``; every draw is a 64-bit integer (``atom_domain(T="i64")``), so no noise is
clipped at 2**31 (a 32-bit draw that saturates would reveal the true count).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from opendp import combinators, measurements
from opendp.domains import atom_domain, vector_domain
from opendp.metrics import l1_distance, l2_distance
from opendp.mod import Measurement, enable_features

from cleanroom.contract import DISCRETE_GAUSSIAN, DISCRETE_LAPLACE, NO_NOISE

# OpenDP gates every measurement and combinator outside its vetted core behind the
# "contrib" feature flag; make_laplace, make_gaussian, make_pureDP_to_zCDP,
# make_zCDP_to_approxDP and make_fix_delta all need it. The flag only unlocks those
# constructors ("floating-point" and "honest-but-curious" stay off).
enable_features("contrib")

#: Probability that |noise| exceeds :meth:`NoiseMechanism.bound` (per released count).
BOUND_FAILURE = 2.0**-40

#: The largest scale whose probability mass function is tabulated for exact intervals; above
#: it, intervals use the sub-Gaussian bound of the sum (still not a union bound).
_EXACT_MAX_SCALE = 2e4


def _integers() -> Any:
    return vector_domain(atom_domain(T="i64"))


def laplace_measurement(scale: float) -> Measurement:
    """OpenDP's discrete Laplace on 64-bit integer vectors, L1 distance (pure DP)."""
    return measurements.make_laplace(_integers(), l1_distance(T="i64"), scale=scale)


def gaussian_measurement(scale: float) -> Measurement:
    """OpenDP's discrete Gaussian on 64-bit integer vectors, L2 distance (rho-zCDP). A float
    metric so that L2 sensitivities such as sqrt(36) or sqrt(12) are expressible."""
    return measurements.make_gaussian(_integers(), l2_distance(T=float), scale=scale)


def _map(meas: Measurement, d_in: Any) -> Any:
    return meas.map(d_in)  # type: ignore[no-untyped-call]  # opendp's map is untyped


# -- conversions, all through OpenDP's own maps ------------------------------------------------


@functools.lru_cache(maxsize=512)
def epsilon_of_rho(rho: float, delta: float) -> float:
    """The epsilon at ``delta`` of a rho-zCDP mechanism: OpenDP's ``make_zCDP_to_approxDP``
    then ``make_fix_delta`` (the Canonne-Kamath-Steinke 2020 conversion), applied to a
    discrete Gaussian of scale 1 at the input distance sqrt(2 rho), whose map is rho."""
    if rho <= 0:
        return 0.0
    return float(_map(_approx_dp_at(delta), math.sqrt(2.0 * rho))[0])


@functools.lru_cache(maxsize=64)
def _approx_dp_at(delta: float) -> Measurement:
    """The conversion of :func:`epsilon_of_rho`, built once per ``delta``."""
    return combinators.make_fix_delta(
        combinators.make_zCDP_to_approxDP(gaussian_measurement(1.0)), delta
    )


@functools.lru_cache(maxsize=256)
def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho whose (epsilon, delta) conversion (:func:`epsilon_of_rho`) stays
    within ``epsilon``: the zCDP budget an (epsilon, delta) promise buys. Found to 12
    significant digits from below, so never above that largest rho.

    Each conversion is a numerical search inside OpenDP (about 2 ms), so the root is
    bracketed tightly and found by regula falsi (Illinois variant, superlinear: about ten
    conversions instead of bisection's fifty). The bracket: Bun and Steinke's classic
    conversion, epsilon = rho + 2 sqrt(rho ln(1/delta)), is looser than OpenDP's, so its rho
    is below the answer; and every conversion gives epsilon > rho, so epsilon is above it.
    """
    log_term = math.log(1 / delta)
    low = (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2
    high = epsilon
    gap_low = epsilon_of_rho(low, delta) - epsilon
    gap_high = epsilon_of_rho(high, delta) - epsilon
    if gap_low > 0 or gap_high <= 0:  # not a bracket after all: start from the widest one
        low, gap_low = 0.0, -epsilon
        high = max(epsilon, 1.0)
        gap_high = epsilon_of_rho(high, delta) - epsilon
    moved = 0  # which end the last step moved: -1 low, +1 high
    for _ in range(200):
        if high - low <= 1e-12 * high:
            break
        middle = (low * gap_high - high * gap_low) / (gap_high - gap_low)
        if not low < middle < high:
            middle = (low + high) / 2
        gap = epsilon_of_rho(middle, delta) - epsilon
        if gap <= 0:
            low, gap_low = middle, gap
            if moved == -1:
                gap_high /= 2  # Illinois: the stale end's weight halves
            moved = -1
        else:
            high, gap_high = middle, gap
            if moved == 1:
                gap_low /= 2
            moved = 1
    return low


@functools.lru_cache(maxsize=256)
def rho_of_pure(epsilon: float) -> float:
    """OpenDP's ``make_pureDP_to_zCDP`` (Bun and Steinke 2016, Prop. 1.4: epsilon-DP implies
    epsilon^2/2-zCDP), applied to a discrete Laplace whose map is ``epsilon`` at distance 1."""
    meas = combinators.make_pureDP_to_zCDP(laplace_measurement(_laplace_scale(epsilon, 1)))
    return float(_map(meas, 1))


@functools.lru_cache(maxsize=256)
def _laplace_scale(epsilon: float, l1: int) -> float:
    scale = l1 / epsilon
    # l1 / (l1 / eps) can round one ulp above eps, and OpenDP's maps round conservatively:
    # step the scale up by ulps until OpenDP itself reports at most epsilon.
    while _map(laplace_measurement(scale), l1) > epsilon:
        scale = math.nextafter(scale, math.inf)
    return scale


@functools.lru_cache(maxsize=256)
def _gaussian_scale(rho: float, l2: float) -> float:
    # OpenDP's map is rho = (l2 / scale)^2 / 2, so scale = l2 / sqrt(2 rho); its maps round
    # conservatively: step the scale up by ulps until OpenDP itself reports at most rho
    # (what its binary_search_param finds, in two or three maps instead of sixty).
    scale = l2 / math.sqrt(2.0 * rho)
    while _map(gaussian_measurement(scale), l2) > rho:
        scale = math.nextafter(scale, math.inf)
    return scale


# -- release noise -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseMechanism:
    """One side's release noise, calibrated to the sensitivity of everything it releases.

    Build it with :meth:`gaussian`, :meth:`laplace` or :meth:`none`.
    """

    name: str
    scale: float
    sensitivity: float  # L2 for the Gaussian, L1 for the Laplace, 0 for none

    @classmethod
    def gaussian(cls, rho: float, l2_sensitivity: float) -> NoiseMechanism:
        """rho-zCDP at L2 sensitivity ``l2_sensitivity`` (smallest such scale)."""
        if not (rho > 0 and l2_sensitivity > 0):
            raise ValueError(f"rho and sensitivity must be > 0, got {rho!r}, {l2_sensitivity!r}")
        l2 = float(l2_sensitivity)
        return cls(DISCRETE_GAUSSIAN, _gaussian_scale(float(rho), l2), l2)

    @classmethod
    def laplace(cls, epsilon: float, l1_sensitivity: int) -> NoiseMechanism:
        """epsilon-DP at L1 sensitivity ``l1_sensitivity``."""
        if not (epsilon > 0 and l1_sensitivity >= 1):
            raise ValueError(
                f"epsilon and sensitivity must be > 0: {epsilon!r}, {l1_sensitivity!r}"
            )
        return cls(
            DISCRETE_LAPLACE, _laplace_scale(float(epsilon), int(l1_sensitivity)), l1_sensitivity
        )

    @classmethod
    def none(cls) -> NoiseMechanism:
        return cls(NO_NOISE, 0.0, 0.0)

    def measurement(self) -> Measurement | None:
        if self.name == DISCRETE_LAPLACE:
            return laplace_measurement(self.scale)
        if self.name == DISCRETE_GAUSSIAN:
            return gaussian_measurement(self.scale)
        return None

    def privacy_loss(self) -> float:
        """OpenDP's map at this sensitivity: rho (Gaussian) or epsilon (Laplace)."""
        meas = self.measurement()
        if meas is None:
            return 0.0
        d_in = int(self.sensitivity) if self.name == DISCRETE_LAPLACE else self.sensitivity
        return float(_map(meas, d_in))

    def sample(self, size: int) -> np.ndarray:
        """``size`` independent 64-bit noise values drawn by OpenDP (zeros for ``none``)."""
        if isinstance(size, bool) or int(size) != size or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        meas = self.measurement()
        if meas is None or size == 0:
            return np.zeros(int(size), dtype=np.int64)
        return np.asarray(meas([0] * int(size)), dtype=np.int64)

    def pmf(self) -> np.ndarray:
        """P(X = x) for x = -h .. h (h = len // 2), tails beyond h below 1e-30."""
        if self.name == NO_NOISE:
            return np.ones(1)
        if self.name == DISCRETE_LAPLACE:
            h = math.ceil(70.0 * self.scale) + 1
            x = np.arange(-h, h + 1, dtype=np.float64)
            weights = np.exp(-np.abs(x) / self.scale)
        else:
            h = math.ceil(12.0 * self.scale) + 1
            x = np.arange(-h, h + 1, dtype=np.float64)
            weights = np.exp(-(x * x) / (2.0 * self.scale * self.scale))
        pmf: np.ndarray = weights / weights.sum()
        return pmf

    def tail(self, w: int) -> float:
        """P(|X| > w) for one draw."""
        if w < 0:
            return 1.0
        if self.name == NO_NOISE:
            return 0.0
        if self.name == DISCRETE_LAPLACE:
            a = math.exp(-1.0 / self.scale)
            return 2.0 * math.exp(-(w + 1) / self.scale) / (1.0 + a)
        return _gaussian_tail(self.scale, w)

    def interval(self, confidence: float = 0.999) -> int:
        """Smallest ``w`` with P(|X| <= w) >= ``confidence`` for one draw."""
        return interval_of_sum([self], confidence)

    def bound(self) -> int:
        """``interval(1 - 2**-40)``: the decryption range's margin for one noisy sum."""
        if self.name == NO_NOISE:
            return 0
        w = 0 if self.scale <= 0 else int(self.scale)
        step = max(1, w)
        while self.tail(w) > BOUND_FAILURE:
            w += step
        while step > 1:  # back off to the smallest w, by halving steps
            step //= 2
            while w - step >= 0 and self.tail(w - step) <= BOUND_FAILURE:
                w -= step
        return w


@functools.lru_cache(maxsize=64)
def _gaussian_tails(scale: float) -> np.ndarray:
    """tails[w] = P(|X| > w) for the discrete Gaussian, w = 0 .. 40 scale, summed from the
    smallest terms up (relative error ~1e-15)."""
    k = math.ceil(40.0 * scale) + 2
    x = np.arange(0, k + 1, dtype=np.float64)
    terms = np.exp(-(x * x) / (2.0 * scale * scale))
    upper = np.cumsum(terms[::-1])[::-1]
    z = 2.0 * upper[0] - terms[0]
    tails = np.empty(k + 1, dtype=np.float64)
    tails[:-1] = 2.0 * upper[1:] / z
    tails[-1] = 0.0
    return tails


def _gaussian_tail(scale: float, w: int) -> float:
    if scale > _EXACT_MAX_SCALE:
        # sub-Gaussian with variance proxy scale^2 (Canonne, Kamath, Steinke 2020)
        return min(1.0, 2.0 * math.exp(-((w + 1) ** 2) / (2.0 * scale * scale)))
    tails = _gaussian_tails(scale)
    return float(tails[w]) if w < len(tails) else 0.0


# -- size noise ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruncatedLaplace:
    """Non-negative noise on ``[0, 2 shift]`` with ``P(d) ∝ exp(-epsilon |d - shift|)``.

    Added to a count of sensitivity 1 (one record more or less), it is epsilon-DP once the
    two edge outputs are excluded, which happens with probability ``delta`` = P(d = 0)
    (docs/privacy.md#dummy-matches-and-padding). ``shift`` is the smallest that makes
    ``delta`` at most the requested value. Its mean is exactly ``shift`` (symmetric pmf).
    """

    epsilon: float
    shift: int

    @classmethod
    def for_delta(cls, epsilon: float, delta: float) -> TruncatedLaplace:
        a = math.exp(-epsilon)
        # P(d = 0) = a^s / Z(s), Z(s) = (1 + a - 2 a^(s+1)) / (1 - a); decreasing in s.
        shift = max(0, math.floor(math.log(delta * (1 + a) / (1 - a)) / -epsilon) - 1)
        while cls(epsilon, shift).delta > delta:
            shift += 1
        return cls(epsilon, shift)

    @classmethod
    def zero(cls) -> TruncatedLaplace:
        return cls(math.inf, 0)

    @property
    def maximum(self) -> int:
        return 2 * self.shift

    @property
    def delta(self) -> float:
        if self.shift == 0:  # always 0: no privacy, unless it is the "none" mechanism's zero
            return 0.0 if math.isinf(self.epsilon) else 1.0
        a = math.exp(-self.epsilon)
        return (1 - a) * a**self.shift / (1 + a - 2 * a ** (self.shift + 1))

    def pmf(self) -> np.ndarray:
        """P(d - shift = x) for x = -shift .. shift."""
        if self.shift == 0:
            return np.ones(1)
        x = np.arange(-self.shift, self.shift + 1, dtype=np.float64)
        weights = np.exp(-self.epsilon * np.abs(x))
        pmf: np.ndarray = weights / weights.sum()
        return pmf

    def sample(self, size: int) -> np.ndarray:
        """``size`` draws in ``[0, 2 shift]``: OpenDP discrete Laplace draws of scale
        1/epsilon, each redrawn until within ``±shift``, plus ``shift``."""
        if self.shift == 0 or size == 0:
            return np.zeros(size, dtype=np.int64)
        meas = laplace_measurement(_laplace_scale(self.epsilon, 1))
        kept: list[np.ndarray] = []
        missing = size
        while missing > 0:  # rejection: each draw is kept only if within ±shift
            draws = np.asarray(meas([0] * (missing + 8)), dtype=np.int64)
            inside = draws[np.abs(draws) <= self.shift][:missing]
            kept.append(inside)
            missing -= len(inside)
        return np.concatenate(kept or [np.zeros(0, dtype=np.int64)]) + self.shift

    def privacy_loss_rho(self) -> float:
        """zCDP of one count once the edge outputs are excluded: OpenDP's pure-to-zCDP map."""
        return 0.0 if self.shift == 0 else rho_of_pure(self.epsilon)


# -- intervals of sums of independent noises ----------------------------------------------------


def _convolve(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    if min(len(first), len(second)) < 512:
        out = np.convolve(first, second)
    else:
        n = len(first) + len(second) - 1
        size = 1 << (n - 1).bit_length()
        out = np.fft.irfft(np.fft.rfft(first, size) * np.fft.rfft(second, size), size)[:n]
    return np.clip(out, 0.0, None)


def interval_of_sum(
    noises: Sequence[NoiseMechanism | TruncatedLaplace], confidence: float = 0.999
) -> int:
    """Smallest ``w`` with P(|X_1 + ... + X_n| <= w) >= ``confidence`` for independent,
    centred, symmetric noises: the exact distribution of the sum, by convolving the pmfs
    (not a union bound). A Gaussian scale above 2e4 uses the sub-Gaussian tail of the sum,
    sum of variance proxies, a valid bound a few percent wide."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if any(isinstance(n, NoiseMechanism) and n.scale > _EXACT_MAX_SCALE for n in noises):
        proxy = sum(
            n.scale**2
            if isinstance(n, NoiseMechanism) and n.name == DISCRETE_GAUSSIAN
            else float(_variance(n.pmf()))
            for n in noises
        )
        return max(0, math.ceil(math.sqrt(2.0 * proxy * math.log(2.0 / (1.0 - confidence)))) - 1)
    pmf = np.ones(1)
    for noise in noises:
        pmf = _convolve(pmf, noise.pmf())
    h = len(pmf) // 2
    # mass within ±w, from the centre out; the pmf is symmetric about index h
    inside = pmf[h] + np.concatenate([[0.0], np.cumsum(pmf[h + 1 :] + pmf[h - 1 :: -1][:h])])
    inside = inside / pmf.sum()
    return int(np.argmax(inside >= confidence))


def _variance(pmf: np.ndarray) -> float:
    h = len(pmf) // 2
    x = np.arange(-h, h + 1, dtype=np.float64)
    return float((pmf * x * x).sum() / pmf.sum())
