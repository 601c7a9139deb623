"""A contract with 50 approved attributes and 3 segments runs, and every count is exact."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cleanroom.brand.demo import synthetic_lists
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


def test_fifty_attributes_and_three_segments(make_contract, stores):
    attributes = tuple(f"attr_{i:02d}" for i in range(50))
    contract = make_contract(
        mechanism="none", min_set_size=10, min_overlap=0, attributes=attributes
    )
    lists = synthetic_lists(300, 500, seed=51)
    rng = np.random.default_rng(5)
    audience = lists.audience[["user_id", "email", "phone"]].copy()
    extra = pd.DataFrame(rng.random((len(audience), 50)) < 0.3, columns=list(attributes))
    audience = pd.concat([audience, extra], axis=1)
    brand_list = prepare_brand_list(lists.crm, BRAND_COLUMNS, contract)
    partner_list = prepare_partner_list(audience, None, contract)
    brand = BrandSession(contract, brand_list, stores[0], peer="p")
    run_in_process(brand, PartnerSession(contract, partner_list, stores[1]))
    report = brand.report.to_dict()
    assert len(report["attributes"]) == 150

    # the same counts computed in the clear from the prepared lists
    segment_of = {}
    for k in range(len(contract.keys)):
        for digest, segment in zip(brand_list.keys[k].as_list(), brand_list.segments, strict=True):
            if digest is not None:
                segment_of[(k, digest)] = int(segment)
    expected = np.zeros((50, 3), dtype=int)
    for r in range(partner_list.size):
        for k in range(len(contract.keys)):
            hit = segment_of.get((k, partner_list.keys[k].as_list()[r]))
            if hit is not None:
                expected[:, hit] += partner_list.attributes[r]
                break
    for cell in report["attributes"]:
        a = attributes.index(cell["attribute"])
        s = contract.segments.index(cell["segment"])
        assert cell["count"] == expected[a, s]
