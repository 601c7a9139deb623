"""Integer differential-privacy noise for released counts, drawn through OpenDP.

Every released count carries integer noise added by the side whose rows it protects
(DESIGN §5). The contract names the mechanism (``privacy.mechanism``):

``discrete_laplace``
    P(X = x) ∝ exp(-|x| / scale), scale = l1_sensitivity / epsilon: pure ε-DP.
``discrete_gaussian``
    P(X = x) ∝ exp(-x² / (2 scale²)). OpenDP states it as rho-zCDP; we convert it to
    (ε, δ)-DP with ``make_zCDP_to_approxDP`` and ``make_fix_delta`` and pick the
    smallest scale that meets (``privacy.epsilon_per_session``, ``privacy.delta``).
``none``
    No noise (tests and demos where both parties agree to exact numbers).

All randomness comes from OpenDP's samplers (exact integer samplers over a CSPRNG),
never from ``numpy.random``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as dp

from cleanroom.errors import ContractError

# OpenDP gates every measurement and combinator outside its vetted core behind the
# "contrib" feature flag; make_laplace, make_gaussian, make_zCDP_to_approxDP and
# make_fix_delta all need it (without it they raise "requires contrib"). The flag
# only unlocks those constructors; it does not weaken anything else we use
# ("floating-point" and "honest-but-curious" stay off).
dp.enable_features("contrib")

MECHANISMS = ("discrete_laplace", "discrete_gaussian", "none")

DEFAULT_DELTA = 1e-9

#: Probability that |noise| exceeds :meth:`NoiseMechanism.bound` (per released count).
BOUND_FAILURE = 2.0**-40

# Above this scale the discrete Gaussian tail is bounded analytically rather than
# summed term by term (the sum needs ~40 x scale terms, 3 float64 arrays of them).
_EXACT_TAIL_MAX_SCALE = 1e4


def split_epsilon(epsilon: float, parts: int) -> float:
    """Epsilon for each of ``parts`` releases so they compose to ``epsilon``.

    Basic (sequential) composition: ``parts`` mechanisms that are each
    (epsilon / parts)-DP are epsilon-DP together.
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    _check_epsilon(epsilon)
    return epsilon / parts


def _check_epsilon(epsilon: float) -> None:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise ContractError(
            f"privacy.epsilon_per_session must be a number, got {type(epsilon).__name__}"
        )
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ContractError(
            f"privacy.epsilon_per_session must be a finite number > 0, got {epsilon!r}"
        )


def _laplace_space() -> tuple[dp.Domain, dp.Metric]:
    return dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)


def _gaussian_space() -> tuple[dp.Domain, dp.Metric]:
    # A float L2 metric so that non-integer L2 sensitivities (sqrt(k)) are expressible;
    # the data and the noise stay integers.
    return dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=float)


def _laplace_measurement(scale: float) -> dp.Measurement:
    return dp.m.make_laplace(*_laplace_space(), scale=scale)


def _gaussian_measurement(scale: float, delta: float) -> dp.Measurement:
    zcdp = dp.m.make_gaussian(*_gaussian_space(), scale=scale)
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), delta)


def _privacy_map(meas: dp.Measurement, d_in: Any) -> Any:
    return meas.map(d_in)  # type: ignore[no-untyped-call]  # opendp's map is untyped


@functools.lru_cache(maxsize=256)
def _laplace_scale(epsilon: float, l1: int) -> float:
    scale = l1 / epsilon
    # l1 / (l1 / eps) can round one ulp above eps, and OpenDP's privacy maps round
    # conservatively; step the scale up by ulps until OpenDP itself accepts it.
    while _privacy_map(_laplace_measurement(scale), l1) > epsilon:
        scale = math.nextafter(scale, math.inf)
    return scale


@functools.lru_cache(maxsize=256)
def _gaussian_scale(epsilon: float, delta: float, l2: float) -> float:
    # binary_search_param returns the smallest scale for which the chain's check passes,
    # i.e. map(l2) = (eps', delta) with eps' <= epsilon. About 0.3 s, hence the cache.
    return float(
        dp.binary_search_param(
            lambda s: _gaussian_measurement(s, delta), d_in=float(l2), d_out=(epsilon, delta)
        )
    )


@dataclass(frozen=True)
class NoiseMechanism:
    """One contract's noise mechanism, calibrated to a sensitivity.

    Build it with :meth:`from_contract`, which validates the contract fields.
    ``l1_sensitivity`` calibrates the discrete Laplace, ``l2_sensitivity`` the
    discrete Gaussian; ``delta`` is only used by the Gaussian.
    """

    name: str
    epsilon: float
    l1_sensitivity: int
    l2_sensitivity: float
    delta: float = DEFAULT_DELTA

    @classmethod
    def from_contract(
        cls,
        name: str,
        epsilon: float,
        *,
        l1_sensitivity: int,
        l2_sensitivity: float,
        delta: float = DEFAULT_DELTA,
    ) -> NoiseMechanism:
        """Validate the contract's ``privacy`` fields and the sensitivities.

        Raises :class:`ContractError` naming ``privacy.mechanism``,
        ``privacy.epsilon_per_session`` or ``privacy.delta``. Epsilon must be > 0 for
        every mechanism, ``none`` included, so the ledger always has something to
        deduct; it does not affect ``none``.
        """
        if name not in MECHANISMS:
            raise ContractError(
                f"privacy.mechanism must be one of {', '.join(MECHANISMS)}, got {name!r}"
            )
        _check_epsilon(epsilon)
        if name == "discrete_gaussian" and not (
            isinstance(delta, (int, float)) and not isinstance(delta, bool) and 0 < delta < 1
        ):
            raise ContractError(f"privacy.delta must be a number in (0, 1), got {delta!r}")
        if isinstance(l1_sensitivity, bool) or int(l1_sensitivity) != l1_sensitivity:
            raise ValueError(f"l1_sensitivity must be an integer, got {l1_sensitivity!r}")
        if l1_sensitivity < 1:
            raise ValueError(f"l1_sensitivity must be >= 1, got {l1_sensitivity!r}")
        if not (math.isfinite(l2_sensitivity) and l2_sensitivity > 0):
            raise ValueError(f"l2_sensitivity must be a finite number > 0, got {l2_sensitivity!r}")
        return cls(
            name=name,
            epsilon=float(epsilon),
            l1_sensitivity=int(l1_sensitivity),
            l2_sensitivity=float(l2_sensitivity),
            delta=float(delta),
        )

    # -- calibration --------------------------------------------------------------

    @property
    def scale(self) -> float:
        """The noise scale.

        * discrete_laplace: ``l1_sensitivity / epsilon`` (raised by at most a few ulps
          if floating-point rounding would otherwise make OpenDP's map exceed epsilon);
        * discrete_gaussian: the smallest sigma for which OpenDP's discrete Gaussian,
          converted from zCDP to (epsilon, delta)-DP, satisfies (epsilon, delta) at
          ``l2_sensitivity`` (``dp.binary_search_param``; cached per parameters);
        * none: 0.
        """
        if self.name == "discrete_laplace":
            return _laplace_scale(self.epsilon, self.l1_sensitivity)
        if self.name == "discrete_gaussian":
            return _gaussian_scale(self.epsilon, self.delta, self.l2_sensitivity)
        return 0.0

    @property
    def sensitivity(self) -> int | float:
        """The sensitivity the mechanism is calibrated to (L1 for Laplace, L2 otherwise)."""
        return self.l1_sensitivity if self.name == "discrete_laplace" else self.l2_sensitivity

    def measurement(self) -> dp.Measurement | None:
        """The OpenDP measurement: vector of int counts -> noisy counts.

        discrete_laplace: ``make_laplace`` on ``vector_domain(atom_domain(T=int))`` with
        ``l1_distance``; its map gives epsilon (MaxDivergence).
        discrete_gaussian: ``make_gaussian`` with ``l2_distance`` wrapped in
        ``make_zCDP_to_approxDP`` and ``make_fix_delta(delta)``; its map gives
        ``(epsilon, delta)``. ``none``: None.
        """
        if self.name == "discrete_laplace":
            return _laplace_measurement(self.scale)
        if self.name == "discrete_gaussian":
            return _gaussian_measurement(self.scale, self.delta)
        return None

    # -- sampling -----------------------------------------------------------------

    def sample(self, size: int) -> np.ndarray:
        """``size`` independent integer noise values (int64), drawn by OpenDP.

        The measurement is applied to a vector of zeros, so each value is one draw
        of the mechanism's noise. ``none`` returns zeros.
        """
        if isinstance(size, bool) or int(size) != size or size < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}")
        size = int(size)
        meas = self.measurement()
        if meas is None or size == 0:
            return np.zeros(size, dtype=np.int64)
        return np.asarray(meas([0] * size), dtype=np.int64)

    # -- tails ----------------------------------------------------------------------

    def tail(self, w: int) -> float:
        """P(|noise| > w) for one draw (exact for Laplace; see :meth:`interval`)."""
        if w < 0:
            return 1.0
        if self.name == "none":
            return 0.0
        if self.name == "discrete_laplace":
            return _laplace_tail(self.scale, w)
        return _gaussian_tail(self.scale, w)

    def interval(self, confidence: float = 0.999) -> int:
        """Half-width ``w`` such that P(|noise| <= w) >= ``confidence``.

        * discrete_laplace: exact and smallest. With a = exp(-1/scale),
          P(X = x) = (1-a)/(1+a) a^|x| and P(|X| > w) = 2 a^(w+1) / (1+a).
        * discrete_gaussian: for scale <= 1e4 the tail is summed term by term over
          |x| <= 40 scale (normalising constant and tail summed in float64 from the
          smallest terms up, relative error ~1e-15), so ``w`` is the smallest such
          integer up to that rounding. Above 1e4 it uses the fact that the discrete
          Gaussian is sub-Gaussian with variance proxy scale^2 (Canonne, Kamath and
          Steinke, "The Discrete Gaussian for Differential Privacy", 2020):
          P(|X| > w) <= 2 exp(-(w+1)^2 / (2 scale^2)), valid but up to ~20% wider
          than the exact interval at confidence 0.999 and ~5% at 1 - 2^-40.
        * none: 0.
        """
        if not (0.0 < confidence < 1.0):
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
        if self.name == "none":
            return 0
        alpha = 1.0 - confidence
        if self.name == "discrete_laplace":
            return _laplace_interval(self.scale, alpha)
        return _gaussian_interval(self.scale, alpha)

    def bound(self) -> int:
        """A bound on |noise| for decryption ranges: ``interval(1 - 2**-40)``.

        The brand decrypts noisy sums with baby-step giant-step over
        [-bound, max_count + bound]; a single released count falls outside with
        probability at most 2^-40 (about 1e-12), in which case decryption fails
        loudly rather than returning a wrong number.
        """
        return self.interval(1.0 - BOUND_FAILURE)


# -- discrete Laplace tail -----------------------------------------------------------


def _laplace_tail(scale: float, w: int) -> float:
    # 2 a^(w+1) / (1+a), a = exp(-1/scale)
    a = math.exp(-1.0 / scale)
    return 2.0 * math.exp(-(w + 1) / scale) / (1.0 + a)


def _laplace_interval(scale: float, alpha: float) -> int:
    a = math.exp(-1.0 / scale)
    # smallest w with 2 a^(w+1)/(1+a) <= alpha  <=>  w + 1 >= -scale * ln(alpha (1+a) / 2)
    w = max(0, math.ceil(-scale * math.log(alpha * (1.0 + a) / 2.0)) - 1)
    # fix float rounding at the boundary: move to the exact smallest integer
    while _laplace_tail(scale, w) > alpha:
        w += 1
    while w > 0 and _laplace_tail(scale, w - 1) <= alpha:
        w -= 1
    return w


# -- discrete Gaussian tail ----------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _gaussian_tails(scale: float) -> np.ndarray:
    """tails[w] = P(|X| > w) for w = 0 .. K, K = ceil(40 scale) (mass beyond is < e^-800)."""
    k = math.ceil(40.0 * scale) + 2
    x = np.arange(0, k + 1, dtype=np.float64)
    terms = np.exp(-(x * x) / (2.0 * scale * scale))
    # sum from the smallest terms up for accuracy
    upper = np.cumsum(terms[::-1])[::-1]  # upper[i] = sum_{x >= i} terms[x]
    z = 2.0 * upper[0] - terms[0]  # sum over all integers
    tails = np.empty(k + 1, dtype=np.float64)
    tails[:-1] = 2.0 * upper[1:] / z  # P(|X| > w) = 2 sum_{x > w} / Z
    tails[-1] = 0.0
    return tails


def _gaussian_tail(scale: float, w: int) -> float:
    if scale > _EXACT_TAIL_MAX_SCALE:
        return min(1.0, 2.0 * math.exp(-((w + 1) ** 2) / (2.0 * scale * scale)))
    tails = _gaussian_tails(scale)
    return float(tails[w]) if w < len(tails) else 0.0


def _gaussian_interval(scale: float, alpha: float) -> int:
    if scale > _EXACT_TAIL_MAX_SCALE:
        # 2 exp(-(w+1)^2 / (2 s^2)) <= alpha  <=>  w + 1 >= s sqrt(2 ln(2/alpha))
        w = max(0, math.ceil(scale * math.sqrt(2.0 * math.log(2.0 / alpha))) - 1)
        while _gaussian_tail(scale, w) > alpha:
            w += 1
        return w
    tails = _gaussian_tails(scale)
    # tails is non-increasing; first index whose tail is <= alpha
    return int(np.argmax(tails <= alpha))
