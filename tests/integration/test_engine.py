"""The per-record crypto on worker processes gives exactly what it gives inline."""

from __future__ import annotations

import pytest

from cleanroom.demo import synthetic_lists
from cleanroom.engine import INLINE, Engine
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.inprocess import run_in_process
from cleanroom.protocol.lists import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


@pytest.fixture(scope="module")
def pool():
    engine = Engine(workers=2)
    yield engine
    engine.close()


def released(contract, lists, tmp_path, brand_engine, partner_engine, tag):
    brand = BrandSession(
        contract,
        prepare_brand_list(lists.crm, BRAND_COLUMNS, contract),
        StateStore(tmp_path / f"b-{tag}.db"),
        peer="p",
        engine=brand_engine,
    )
    partner = PartnerSession(
        contract,
        prepare_partner_list(lists.audience, None, contract),
        StateStore(tmp_path / f"p-{tag}.db"),
        engine=partner_engine,
    )
    run_in_process(brand, partner)
    report = dict(brand.report)
    for field in ("session_id", "transcript_sha256", "released_at"):
        report.pop(field)
    return report


def test_worker_processes_release_exactly_the_inline_report(make_contract, tmp_path, pool):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    lists = synthetic_lists(2000, 3000, seed=41)
    inline = released(contract, lists, tmp_path, INLINE, INLINE, "inline")
    pooled = released(contract, lists, tmp_path, pool, pool, "pool")
    assert pooled == inline
    assert pooled["overlap"]["total"] > 200


def test_engine_map_keeps_order_and_bounds_work_in_flight(pool):
    results = list(pool.map(pow, ((5000, (i, 2)) for i in range(50))))
    assert results == [i * i for i in range(50)]
    with pytest.raises(ZeroDivisionError):
        pool.submit(5000, divmod, 1, 0).result()
