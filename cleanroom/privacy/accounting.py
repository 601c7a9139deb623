"""How much noise each side adds, derived honestly from the contract.

The privacy unit is one row of a party's list. Each side spends ``epsilon_per_session``
to protect its own rows from the other side, with noise only it knows (DESIGN §5):

Brand (noise on every released overlap and attribute count). Removing one brand row
changes the match of at most K partner records (K = number of match keys: the row has at
most one identifier per key, and each identifier sits in at most one de-duplicated
partner record). Each such record can leave its segment or move to another (by_segment
changes by at most 2 in L1, 1 with one segment), can leave the total (released as its
own noisy count when S > 1, so a suppressed segment cannot be recovered by subtraction),
can switch the key it matched by (by_key: at most 2, released only when K > 1), and can
move each of its A attribute counts between segments (at most 2 per attribute, 1 with
one segment).

    L1 = K * (c_s + c_t + c_k + A * c_s),
    c_s = 2 if S > 1 else 1,  c_t = 1 if S > 1 else 0,  c_k = 2 if K > 1 else 0

Partner (noise on the attribute sums, under encryption, and on its base counts). One
partner record sits in at most one segment, so it adds at most 1 to one (attribute,
segment) sum per attribute, and at most 1 to each base count:

    L1 = 2 * A

For the Gaussian mechanism the L2 sensitivity is computed the same way, per record,
and multiplied by K (the brand's K affected records can all move the same cells).
"""

from __future__ import annotations

import math

from cleanroom.contract import Contract
from cleanroom.privacy.noise import NoiseMechanism


def _segment_factor(contract: Contract) -> int:
    return 2 if len(contract.segments) > 1 else 1


def _key_factor(contract: Contract) -> int:
    return 2 if len(contract.keys) > 1 else 0


def brand_sensitivity(contract: Contract) -> tuple[int, float]:
    """(L1, L2) sensitivity of the brand's released vector to one brand row."""
    k = len(contract.keys)
    a = len(contract.attributes)
    cs, ck = _segment_factor(contract), _key_factor(contract)
    ct = 1 if len(contract.segments) > 1 else 0
    cells = cs + ct + ck + a * cs  # cells one affected record moves, each by 1
    l1 = k * cells
    l2 = k * math.sqrt(cells)
    return l1, l2


def partner_sensitivity(contract: Contract) -> tuple[int, float]:
    """(L1, L2) sensitivity of the partner's released vector to one partner record."""
    a = len(contract.attributes)
    return 2 * a, math.sqrt(2 * a)


def _mechanism(contract: Contract, l1: int, l2: float) -> NoiseMechanism:
    return NoiseMechanism.from_contract(
        contract.mechanism,
        contract.epsilon_per_session,
        l1_sensitivity=max(l1, 1),
        l2_sensitivity=max(l2, 1.0),
        delta=contract.delta,
    )


def brand_mechanism(contract: Contract) -> NoiseMechanism:
    return _mechanism(contract, *brand_sensitivity(contract))


def partner_mechanism(contract: Contract) -> NoiseMechanism:
    return _mechanism(contract, *partner_sensitivity(contract))
