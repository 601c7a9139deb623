"""The contract as sessions run it: :mod:`cleanroom.contract` checks its terms, and this
calibrates both sides' noise for them and refuses, naming the field, a contract whose
noise could not be used. Load contracts here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from opendp.mod import OpenDPException

from cleanroom.contract import (
    MAX_DUMMY_RECORDS,
    MAX_NOISE_BOUND,
    NO_NOISE,
    Contract,
    parse_terms,
)
from cleanroom.errors import ContractError
from cleanroom.privacy import accounting


def load_contract(path: str | os.PathLike[str]) -> Contract:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ContractError(f"contract file not found: {path}") from None
    except OSError as exc:
        raise ContractError(f"cannot read contract file {path}: {exc.strerror}") from None
    return parse_contract(data, source=str(path))


def parse_contract(data: bytes, source: str = "<contract>") -> Contract:
    return calibrate(parse_terms(data, source))


def _fail(contract: Contract, field: str, problem: str) -> ContractError:
    return ContractError(f"{contract.source}: {field}: {problem}")


def calibrate(contract: Contract) -> Contract:
    """Calibrate both sides' noise now, and refuse (naming the field) what a session
    could not run: no budget left for the release, more dummies or padding than
    ``MAX_DUMMY_RECORDS``, or noise beyond ``MAX_NOISE_BOUND`` (the brand decrypts sums
    up to 2**40; past it no count could be represented). Returns the contract with its
    ledger amounts (rho under the Gaussian)."""
    budget_fields = "privacy.epsilon_per_session / privacy.epsilon_total / privacy.delta"
    # An absurdly small epsilon would stall every search below: the Laplace scale is
    # L1 / epsilon and the Gaussian's is at least that large, so check it first.
    scale = accounting.brand_sensitivity(contract)[0] / contract.epsilon_per_session
    if contract.mechanism != NO_NOISE and scale > MAX_NOISE_BOUND:
        raise _fail(
            contract,
            "privacy.epsilon_per_session",
            f"too small: the brand's noise scale would be {scale:.3g}, above "
            f"{MAX_NOISE_BOUND} (2**39): its noise could not be represented",
        )
    try:
        contract = dataclasses.replace(
            contract,
            ledger_per_session=accounting.ledger_per_session(contract),
            ledger_total=accounting.ledger_total(contract),
        )
        if contract.mechanism == NO_NOISE:
            return contract
        budgets = [("brand", accounting.brand_budget(contract))]
        if not contract.overlap_only:
            budgets.append(("partner", accounting.partner_budget(contract)))
        else:
            accounting.partner_budget(contract)  # its dummies are checked below
        bounds = [(role, budget.release.bound()) for role, budget in budgets]
    except ValueError:
        raise _fail(
            contract,
            "privacy.epsilon_match",
            f"too large: {accounting.epsilon_match(contract):g} leaves nothing of the "
            "session's budget for the released counts; lower it",
        ) from None
    except OpenDPException as exc:  # e.g. a discrete Gaussian with tiny epsilon and delta
        raise _fail(
            contract,
            budget_fields,
            f"too small for OpenDP to calibrate the noise ({str(exc).strip()[:120]})",
        ) from None
    for role, bound in bounds:
        if bound > MAX_NOISE_BOUND:
            raise _fail(
                contract,
                "privacy.epsilon_per_session",
                f"too small for {len(contract.keys)} keys, {len(contract.segments)} segments "
                f"and {len(contract.attributes)} attributes: the {role}'s noise bound would "
                f"be {bound}, above {MAX_NOISE_BOUND} (2**39): its noise could not be "
                "represented (the brand decrypts sums up to 2**40)",
            )
    patterns = accounting.patterns(contract)
    dummies = patterns * accounting.partner_budget(contract).sizes.maximum
    padding = accounting.brand_budget(contract).sizes.maximum
    if max(dummies, padding) > MAX_DUMMY_RECORDS:
        raise _fail(
            contract,
            "privacy.epsilon_match",
            f"too small for {patterns} match patterns ({len(contract.segments)} segments + 1,"
            f" to the power of {len(contract.keys)} keys): up to {max(dummies, padding)} dummy "
            f"records or padding elements per session, above the limit {MAX_DUMMY_RECORDS}; "
            "raise it, or use fewer segments or keys",
        )
    return contract
