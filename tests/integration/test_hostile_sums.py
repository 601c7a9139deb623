"""A partner that returns sums it could not have computed honestly is caught by the brand's
range check before anything is released (DESIGN §5, rounds 4-5)."""

from __future__ import annotations

import numpy as np
import pytest

from cleanroom.demo import synthetic_lists
from cleanroom.errors import ProtocolError
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.inprocess import run_in_process
from cleanroom.protocol.lists import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.partner import PartnerSession

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


class ChosenSums(PartnerSession):
    """Sends encryptions of values the test picks instead of the real sums."""

    def __init__(self, *args, choose, **kwargs):
        super().__init__(*args, **kwargs)
        self.choose = choose

    def _attribute_sums(self):
        sums, base_counts = self.choose()
        assert self._public_key is not None and self.session_id is not None
        self.store.charge(self.session_id, self.contract)
        yield pb.PartnerMessage(
            attribute_sums=pb.AttributeSums(
                ciphertexts=b"".join(self._public_key.encrypt(int(v)) for v in sums),
                base_counts=base_counts,
            )
        )


@pytest.fixture(scope="module")
def lists():
    return synthetic_lists(400, 700, seed=11)


def session(make_contract, stores, lists, choose_with_brand):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    brand = BrandSession(
        contract, prepare_brand_list(lists.crm, BRAND_COLUMNS, contract), stores[0], peer="p"
    )
    partner = ChosenSums(
        contract,
        prepare_partner_list(lists.audience, None, contract),
        stores[1],
        choose=lambda: choose_with_brand(brand, contract),
    )
    with pytest.raises(ProtocolError, match="outside the possible range"):
        run_in_process(brand, partner)
    assert brand.report is None and stores[0].epsilon_spent(contract.id) == 0


def test_a_sum_above_the_segments_overlap_is_refused(make_contract, stores, lists):
    def inflate_the_smallest_segment(brand, contract):
        matched = brand._by_segment
        assert matched.min() < matched.max()  # the data gives segments of different overlap
        segments = len(contract.segments)
        sums = np.zeros(len(contract.attributes) * segments, dtype=np.int64)
        sums[int(np.argmin(matched))] = int(matched.max())  # decryptable, impossible there
        return sums, [0] * len(contract.attributes)

    session(make_contract, stores, lists, inflate_the_smallest_segment)


def test_a_base_count_above_the_partners_records_is_refused(make_contract, stores, lists):
    def inflate_a_base_count(brand, contract):
        cells = len(contract.attributes) * len(contract.segments)
        base_counts = [0] * len(contract.attributes)
        base_counts[0] = brand._records_seen + 1
        return np.zeros(cells, dtype=np.int64), base_counts

    session(make_contract, stores, lists, inflate_a_base_count)
