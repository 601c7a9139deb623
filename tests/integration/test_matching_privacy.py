"""The brand's whole matching view is differentially private for the partner's rows.

Both attacks from issue 9 run against the real ``BrandSession`` over the in-process
transport, and read exactly what the brand's matcher holds: every W record it received,
raised to its key ``b`` (as its matcher was handed them) and looked up, key by key, in its
own Z tables. Without dummies (``mechanism = "none"``) each attack succeeds every time, so
these tests can fail.
"""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import numpy as np
import pandas as pd

from cleanroom.contract import Contract
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.privacy import accounting
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.common import TRUNCATED_SIZE, truncate
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {"email": "email", "phone": "phone", "segment": "tier"}


def matcher_view(contract: Contract, crm, audience, directory: Path) -> np.ndarray:
    """Run one session; return, per W record the brand received, the segment each key
    matched in (-1: no match), as the brand's own tables say."""
    directory.mkdir(parents=True)
    brand = BrandSession(
        contract,
        prepare_brand_list(crm, BRAND_COLUMNS, contract),
        StateStore(directory / "brand.db"),
        peer="newsco",
    )
    partner = PartnerSession(
        contract, prepare_partner_list(audience, None, contract), StateStore(directory / "p.db")
    )
    # what the brand's matcher is handed: each chunk of W records raised to its key b
    raised: list[bytes] = []
    match = brand._match

    def tap(raised_elements: bytes, records: int) -> np.ndarray:
        raised.append(raised_elements)
        return match(raised_elements, records)

    brand._match = tap  # type: ignore[method-assign]
    run_in_process(brand, partner)
    keys = len(contract.keys)
    values = np.frombuffer(truncate(b"".join(raised)), dtype=f"S{TRUNCATED_SIZE}")
    values = values.reshape(-1, keys)
    assert len(values) == brand._records_seen  # every record the partner sent
    return np.stack([table.lookup(values[:, k]) for k, table in enumerate(brand._tables)], 1)


def email(tag: str) -> str:
    return f"{tag}.{secrets.token_hex(4)}@example.org"


def phone(i: int) -> str:
    return f"212{200 + i:03d}{1000 + i:04d}"


# ---------------------------------------------------------------- identity graph

SEGMENTS = ("s0", "s1", "s2", "s3")
CANDIDATES = 64  # 3 base-4 digits, one per session
PEOPLE = 8  # other people on the partner's list


def graph_contract(make_contract, mechanism: str) -> Contract:
    return make_contract(
        mechanism=mechanism,
        segments=SEGMENTS,
        attributes=(),
        min_set_size=0,  # the attack: the target's email alone in its group
        min_overlap=0,
        epsilon_match=0.2,
    )


def digit(candidate: int, session: int) -> int:
    return (candidate >> (2 * (2 - session))) & 3


def graph_lists(target_email: str, held: int, session: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The brand's list: the target's email in s0, and every candidate phone in the
    segment of its digit for this session. The partner: the target with the phone it
    holds, and a few other people."""
    rows = [{"email": target_email, "phone": "", "tier": "s0"}]
    rows += [
        {"email": "", "phone": phone(i), "tier": SEGMENTS[digit(i, session)]}
        for i in range(CANDIDATES)
    ]
    people = [{"email": target_email, "phone": phone(held)}]
    people += [{"email": email("other"), "phone": ""} for _ in range(PEOPLE)]
    return pd.DataFrame(rows), pd.DataFrame(people)


def guess_digit(view: np.ndarray) -> int:
    """The brand's best guess from one session: among records whose email matched in the
    target's segment, the phone segment seen most often (ties broken at random)."""
    phones = view[view[:, 0] == 0, 1]
    counts = np.bincount(phones[phones >= 0], minlength=len(SEGMENTS))
    best = np.flatnonzero(counts == counts.max())
    return int(best[secrets.randbelow(len(best))])


def recovered_digits(contract: Contract, directory: Path) -> int:
    held = secrets.randbelow(CANDIDATES)
    target = email("target")
    right = 0
    for session in range(3):
        crm, audience = graph_lists(target, held, session)
        view = matcher_view(contract, crm, audience, directory / f"{held}-{session}")
        right += guess_digit(view) == digit(held, session)
    return right


def binomial_tail_limit(trials: int, p: float, failure: float) -> int:
    """The smallest k with P(Binomial(trials, p) > k) <= failure."""
    tail, k = 1.0, -1
    while tail > failure:
        k += 1
        tail -= math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
    return k


def test_without_dummies_the_identity_graph_attack_recovers_the_phone(make_contract, tmp_path):
    contract = graph_contract(make_contract, "none")
    assert recovered_digits(contract, tmp_path) == 3


GRAPH_TRIALS = 12


def test_the_identity_graph_attack_recovers_digits_no_better_than_chance(make_contract, tmp_path):
    """Each digit's guess succeeds with probability at most e^(2 epsilon_match) / 4 (+ delta):
    two hypotheses differ by one record moved between two pattern cells. Chance is 1/4."""
    contract = graph_contract(make_contract, "discrete_gaussian")
    dummies = accounting.partner_budget(contract).sizes
    right = sum(recovered_digits(contract, tmp_path / str(t)) for t in range(GRAPH_TRIALS))
    bound = math.exp(2 * dummies.epsilon) / len(SEGMENTS) + dummies.delta
    assert right <= binomial_tail_limit(3 * GRAPH_TRIALS, bound, failure=1e-6), right


# ---------------------------------------------------------------- membership probe


def probe_contract(make_contract, mechanism: str) -> Contract:
    return make_contract(
        mechanism=mechanism,
        keys=("email",),
        segments=(),
        attributes=(),
        min_set_size=0,
        min_overlap=0,
        epsilon_match=0.4,
    )


def probe_view(contract: Contract, with_target: bool, directory: Path) -> int:
    """The brand's probe: one target plus made-up identifiers; it counts matched records."""
    target = email("target")
    crm = pd.DataFrame({"email": [target] + [email("madeup") for _ in range(PEOPLE)]})
    crm["phone"], crm["tier"] = "", ""
    people = [email("other") for _ in range(PEOPLE)] + ([target] if with_target else [])
    audience = pd.DataFrame({"email": people, "phone": ""})
    view = matcher_view(contract, crm, audience, directory)
    return int((view[:, 0] >= 0).sum())


def test_without_dummies_the_membership_probe_is_certain(make_contract, tmp_path):
    contract = probe_contract(make_contract, "none")
    assert probe_view(contract, True, tmp_path / "in") == 1
    assert probe_view(contract, False, tmp_path / "out") == 0


PROBES = 60


def test_the_membership_probe_has_a_likelihood_ratio_within_e_to_the_epsilon(
    make_contract, tmp_path
):
    """Over repeated sessions with and without the target, the brand's best tests (a
    threshold on its matched count) have true and false positive rates with
    TPR <= e^eps FPR + delta and 1 - FPR <= e^eps (1 - TPR) + delta, up to sampling error.
    The matched counts also follow the dummy distribution shifted by the target."""
    contract = probe_contract(make_contract, "discrete_gaussian")
    dummies = accounting.partner_budget(contract).sizes
    inside = [probe_view(contract, True, tmp_path / f"in{i}") for i in range(PROBES)]
    outside = [probe_view(contract, False, tmp_path / f"out{i}") for i in range(PROBES)]
    assert all(0 <= c <= dummies.maximum for c in outside)
    assert all(1 <= c <= dummies.maximum + 1 for c in inside)
    slack = 4.5 * math.sqrt(0.25 / PROBES)  # 4.5 standard errors of a rate, each side
    e = math.exp(dummies.epsilon)
    for threshold in range(dummies.shift - 3 * int(1 / dummies.epsilon), dummies.shift + 4):
        tpr = np.mean(np.asarray(inside) > threshold)
        fpr = np.mean(np.asarray(outside) > threshold)
        assert tpr <= e * (fpr + slack) + slack + dummies.delta, (threshold, tpr, fpr)
        assert 1 - fpr <= e * (1 - tpr + slack) + slack + dummies.delta, (threshold, tpr, fpr)
