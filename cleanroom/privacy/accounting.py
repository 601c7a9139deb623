"""What each side spends per session, and on what noise, derived from the contract.

Every formula here is derived in docs/privacy.md; the numbers come from OpenDP's privacy
maps (:mod:`cleanroom.privacy.noise`).

Budget. The contract promises each party (``epsilon_total``, ``delta``)-DP over the
contract's life. Under ``discrete_gaussian`` the ledgers hold rho (zero-concentrated DP):
half of ``delta`` goes to converting the total rho to (epsilon, delta), so the ledger's
total is ``rho_for_epsilon(epsilon_total, delta / 2)``; each session spends the share
``epsilon_per_session / epsilon_total`` of it, and of the other half of ``delta`` (the
probability that a dummy or padding count hits its edge). Under ``discrete_laplace`` the
ledgers hold epsilon, as pure DP, and the whole ``delta`` is for those edges.

Within a session each side spends ``epsilon_match`` (pure, or its zCDP image
epsilon_match^2 / 2) on the sizes the other side sees (the partner's dummy matches, the
brand's group padding) and the rest on the noise of its released counts.

Sensitivities, to one row of the side's own list (add or remove):

Brand: it releases its records per segment (S), the overlap per segment (S) and the
attribute counts (A x S). One brand row is one record of one segment: 1 in that segment's
count. It holds at most one identifier per key, each in at most one partner record, so it
decides the match of at most K partner records, all matched in the row's segment s; the
one matched by its last key can only leave s, each other can leave s or move to one other
segment (never both). Per row of cells (the overlap, and each attribute):
-K at s and at most +(K-1) elsewhere, so

    L2^2 = 1 + (K^2 + (K-1)^2) (1 + A)      L1 = 1 + (2K - 1) (1 + A)       (S > 1)
    L2^2 = 1 + K^2 (1 + A)                  L1 = 1 + K (1 + A)              (S = 1)

Partner: one record adds at most 1 to one (attribute, segment) sum and to the base count,
per attribute: L2^2 = L1 = 2A; and 1 to one cell of the matching-pattern histogram.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from cleanroom.contract import DISCRETE_GAUSSIAN, NO_NOISE, Contract
from cleanroom.privacy.noise import NoiseMechanism, TruncatedLaplace, rho_for_epsilon, rho_of_pure


def patterns(contract: Contract) -> int:
    """Match patterns the brand can observe for one W record, the no-match cell included:
    per key, no match or the segment matched, so (S + 1)^K."""
    return int((len(contract.segments) + 1) ** len(contract.keys))


def first_segment_cells(contract: Contract) -> int:
    """Patterns whose first matching key (contract order) matched in a given segment:
    the key k is first when keys 0..k-1 did not match; later keys are free."""
    s, k = len(contract.segments), len(contract.keys)
    return sum((s + 1) ** (k - 1 - j) for j in range(k))


def group_patterns(contract: Contract) -> int:
    """Patterns that put a dummy into one (segment, key) Z group: that key matched there."""
    return int((len(contract.segments) + 1) ** (len(contract.keys) - 1))


def brand_sensitivity(contract: Contract) -> tuple[int, float]:
    """(L1, L2) of the brand's released vector to one brand row (docstring above)."""
    k, a = len(contract.keys), len(contract.attributes)
    if len(contract.segments) > 1:
        l1, l2_squared = 1 + (2 * k - 1) * (1 + a), 1 + (k * k + (k - 1) ** 2) * (1 + a)
    else:
        l1, l2_squared = 1 + k * (1 + a), 1 + k * k * (1 + a)
    return l1, math.sqrt(l2_squared)


def partner_sensitivity(contract: Contract) -> tuple[int, float]:
    """(L1, L2) of the partner's released vector to one partner record (at least 1: an
    overlap-only contract releases nothing the partner noises)."""
    a = len(contract.attributes)
    return max(1, 2 * a), math.sqrt(max(1, 2 * a))


def ledger_total(contract: Contract) -> float:
    """What each ledger may hold for this contract: rho (Gaussian) or epsilon."""
    if contract.mechanism == DISCRETE_GAUSSIAN:
        return _rho_total(contract.epsilon_total, contract.delta)
    return contract.epsilon_total


def ledger_per_session(contract: Contract) -> float:
    if contract.mechanism == DISCRETE_GAUSSIAN:
        return ledger_total(contract) * contract.epsilon_per_session / contract.epsilon_total
    return contract.epsilon_per_session


@functools.lru_cache(maxsize=64)
def _rho_total(epsilon_total: float, delta: float) -> float:
    return rho_for_epsilon(epsilon_total, delta / 2)


def _size_delta(contract: Contract) -> float:
    """Per session, the chance budget for dummy and padding counts to hit their edges."""
    share = contract.epsilon_per_session / contract.epsilon_total
    half = 0.5 if contract.mechanism == DISCRETE_GAUSSIAN else 1.0
    return contract.delta * half * share


def epsilon_match(contract: Contract) -> float:
    """The contract's ``privacy.epsilon_match`` or, when absent, a quarter of the session's
    budget: rho_match = rho_session / 4 (Gaussian) or epsilon_per_session / 4 (Laplace)."""
    if contract.epsilon_match is not None:
        return contract.epsilon_match
    if contract.mechanism == DISCRETE_GAUSSIAN:
        return math.sqrt(2 * ledger_per_session(contract) / 4)
    return contract.epsilon_per_session / 4


@dataclass(frozen=True)
class SideBudget:
    """One side's spending in one session: the sizes it shows the other side, then the
    noise on its released counts; ``match_cost`` + the release's loss = ``per_session``."""

    release: NoiseMechanism
    sizes: TruncatedLaplace  # partner: dummies per pattern; brand: padding per group
    match_cost: float  # rho (Gaussian) or epsilon (Laplace) of the sizes
    per_session: float


def partner_budget(contract: Contract) -> SideBudget:
    return _budget(contract, groups=1, sensitivity=partner_sensitivity(contract))


def brand_budget(contract: Contract) -> SideBudget:
    """The brand's padding: one row changes K groups by 1. Padding costs only bandwidth, so
    the brand spends half of epsilon_match on it: each group gets epsilon_match / (2 sqrt(K))
    (zCDP adds the K groups' rho: a quarter of the partner's matching rho) or
    epsilon_match / (2K) (pure DP adds the K epsilons: half of epsilon_match)."""
    return _budget(
        contract, groups=len(contract.keys), sensitivity=brand_sensitivity(contract), share=0.5
    )


def _budget(
    contract: Contract, groups: int, sensitivity: tuple[int, float], share: float = 1.0
) -> SideBudget:
    per_session = ledger_per_session(contract)
    if contract.mechanism == NO_NOISE:
        return SideBudget(NoiseMechanism.none(), TruncatedLaplace.zero(), 0.0, per_session)
    total_match = epsilon_match(contract) * share
    gaussian = contract.mechanism == DISCRETE_GAUSSIAN
    per_group = total_match / (math.sqrt(groups) if gaussian else groups)
    sizes = TruncatedLaplace.for_delta(per_group, _size_delta(contract) / groups)
    match_cost = groups * (rho_of_pure(per_group) if gaussian else per_group)
    left = per_session - match_cost
    if left <= per_session * 1e-9:
        raise ValueError("no budget left for the release")  # the contract check names the field
    l1, l2 = sensitivity
    release = NoiseMechanism.gaussian(left, l2) if gaussian else NoiseMechanism.laplace(left, l1)
    return SideBudget(release, sizes, match_cost, per_session)


def overlap_offset(contract: Contract, partner_sizes: TruncatedLaplace) -> int:
    """Expected dummies the brand counts in each segment's overlap: public, subtracted."""
    return partner_sizes.shift * first_segment_cells(contract)
