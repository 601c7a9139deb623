"""The set-difference defence: a list that barely changed since an earlier session is refused
(or flagged), on whichever side changed it, before anything is sent."""

from __future__ import annotations

import numpy as np
import pytest

from cleanroom.brand.demo import synthetic_lists
from cleanroom.errors import PolicyError, ProtocolError
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.privacy.setdiff import difference, list_sketch
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


@pytest.fixture(scope="module")
def lists():
    return synthetic_lists(300, 500, seed=21)


def session(contract, crm, audience, stores):
    brand = BrandSession(
        contract, prepare_brand_list(crm, BRAND_COLUMNS, contract), stores[0], peer="p"
    )
    partner = PartnerSession(contract, prepare_partner_list(audience, None, contract), stores[1])
    run_in_process(brand, partner)
    return None if brand.report is None else brand.report.to_dict()


def test_sketch_difference_counts_added_and_removed_records():
    rng = np.random.default_rng(1)
    records = [rng.bytes(32) for _ in range(5000)]
    key = b"k" * 32
    base = list_sketch([records], key)
    changed = list_sketch([records[7:] + [rng.bytes(32) for _ in range(5)]], key)
    assert difference(base, base) == 0
    assert difference(base, changed) == 12  # 7 removed + 5 added
    assert int(base.sum()) == 5000


def test_relabelling_a_brand_record_counts_as_a_change():
    """The identity-graph attack keeps the list byte-identical and moves labels only."""
    rng = np.random.default_rng(2)
    records = [rng.bytes(32) for _ in range(5000)]
    labels = rng.integers(0, 3, size=5000)
    key = b"k" * 32
    moved = labels.copy()
    moved[:4] = (moved[:4] + 1) % 3
    assert difference(list_sketch([records], key, labels), list_sketch([records], key, moved)) == 8
    assert difference(list_sketch([records], key), list_sketch([records], key)) == 0


def test_a_relabelled_brand_list_is_refused(make_contract, stores, lists):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    session(contract, lists.crm, lists.audience, stores)
    relabelled = lists.crm.copy()
    relabelled.loc[:4, "tier"] = relabelled.loc[:4, "tier"].map(
        {"loyal": "lapsed", "lapsed": "prospect", "prospect": "loyal"}
    )
    with pytest.raises(PolicyError, match="set_difference_min"):
        session(contract, relabelled, lists.audience, stores)
    flagged = [e for e in stores[0].audit_entries() if e["event"] == "set-difference"]
    # 5 records, each removed from one bucket and added to another (fewer if buckets collide)
    assert 0 < flagged[-1]["detail"]["records_changed"] <= 10


def test_a_brand_list_that_changed_by_a_few_records_is_refused(make_contract, stores, lists):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    session(contract, lists.crm, lists.audience, stores)
    session(contract, lists.crm, lists.audience, stores)  # the same list again is fine
    with pytest.raises(PolicyError, match="set_difference_min"):
        session(contract, lists.crm.iloc[3:], lists.audience, stores)
    audit = stores[0].audit_entries()
    flagged = [e for e in audit if e["event"] == "set-difference"]
    assert flagged and flagged[-1]["detail"]["records_changed"] == 3
    assert stores[0].budget_spent(contract.id) == pytest.approx(2.0)
    # a list that changed by more than the threshold runs
    assert session(contract, lists.crm.iloc[60:], lists.audience, stores) is not None


def test_a_partner_list_that_changed_by_a_few_records_is_refused_before_hello(
    make_contract, stores, lists
):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    session(contract, lists.crm, lists.audience, stores)
    with_email = lists.audience.index[lists.audience.email != ""]
    smaller = lists.audience.drop(index=with_email[:2])
    partner = PartnerSession(contract, prepare_partner_list(smaller, None, contract), stores[1])
    with pytest.raises(PolicyError, match="partner's list") as refused:
        partner.hello()
    assert (
        "run with that earlier list unchanged, or with one that differs from it by at least"
        in str(refused.value)
    )  # the refusal says what to do next


def test_flag_action_records_and_continues(make_contract, stores, lists):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    flagged = contract.__class__(**{**contract.__dict__, "set_difference_action": "flag"})
    session(flagged, lists.crm, lists.audience, stores)
    assert session(flagged, lists.crm.iloc[1:], lists.audience, stores) is not None
    assert any(e["event"] == "set-difference" for e in stores[0].audit_entries())


def test_a_partner_list_is_remembered_once_its_records_left_even_if_the_brand_aborts(
    make_contract, stores, lists
):
    """The brand knows the exact overlap as soon as the partner's records arrive, so a brand
    that aborts before the release must not escape the partner's set-difference check."""
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    brand = BrandSession(
        contract, prepare_brand_list(lists.crm, BRAND_COLUMNS, contract), stores[0], peer="p"
    )
    partner = PartnerSession(
        contract, prepare_partner_list(lists.audience, None, contract), stores[1]
    )

    def abort_after_matching(sums):
        raise ProtocolError("the brand walks away with the exact overlap")

    brand._on_sums = abort_after_matching
    with pytest.raises(ProtocolError, match="walks away"):
        run_in_process(brand, partner)
    assert partner.report is None and stores[1].budget_spent(contract.id) > 0

    with_email = lists.audience.index[lists.audience.email != ""]
    smaller = lists.audience.drop(index=with_email[:2])
    retry = PartnerSession(contract, prepare_partner_list(smaller, None, contract), stores[1])
    with pytest.raises(PolicyError, match="partner's list"):
        retry.hello()
    events = [e["event"] for e in stores[1].audit_entries()]
    assert events[-3:] == ["abort", "set-difference", "refused"]
