"""The partner's own checks on what the brand declares, before any of its records leave."""

from __future__ import annotations

import pytest

from cleanroom.brand.demo import synthetic_lists
from cleanroom.crypto.elgamal import ElGamalPrivateKey
from cleanroom.errors import CryptoError, PolicyError, ProtocolError
from cleanroom.lists.local import prepare_partner_list
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.common import BASE_POINT
from cleanroom.protocol.partner import PartnerSession


@pytest.fixture
def partner(make_contract, stores):
    contract = make_contract(min_set_size=100, mechanism="none")
    audience = synthetic_lists(200, 400, seed=5).audience
    return PartnerSession(contract, prepare_partner_list(audience, None, contract), stores[1])


def reply(records, elements, key=b"", match_key=BASE_POINT) -> pb.BrandMessage:
    return pb.BrandMessage(
        hello_reply=pb.HelloReply(
            session_id="ab" * 16,
            brand_records=records,
            brand_elements=elements,
            elgamal_public_key=key,
            match_public_key=match_key,
        )
    )


def test_a_brand_segment_below_min_set_size_is_refused(partner):
    partner.hello()
    key = ElGamalPrivateKey.generate().public_key.to_bytes()
    with pytest.raises(PolicyError, match="segment 'lapsed' has 3 records"):
        list(partner.receive(reply([500, 3, 500], [400, 300, 3, 3, 400, 300], key)))


def test_a_brand_group_below_min_set_size_is_refused(partner):
    """1,000 emails and 3 phones in a segment would show which 3 phones the partner holds."""
    partner.hello()
    key = ElGamalPrivateKey.generate().public_key.to_bytes()
    with pytest.raises(PolicyError, match="segment 'loyal' declared 3 phone elements"):
        list(partner.receive(reply([500, 500, 500], [400, 3, 300, 300, 0, 400], key)))


def test_an_empty_brand_group_is_allowed(partner):
    partner.hello()
    key = ElGamalPrivateKey.generate().public_key.to_bytes()
    list(partner.receive(reply([500, 500, 500], [400, 0, 300, 300, 400, 400], key)))
    assert partner.session_id == "ab" * 16


@pytest.mark.parametrize("match_key", [b"", b"\x09" * 31, bytes(32)])
def test_a_missing_or_low_order_match_key_is_refused(partner, match_key):
    partner.hello()
    key = ElGamalPrivateKey.generate().public_key.to_bytes()
    with pytest.raises((ProtocolError, CryptoError)):
        list(partner.receive(reply([500] * 3, [400] * 6, key, match_key=match_key)))


def test_messages_out_of_order_are_refused(partner):
    partner.hello()
    with pytest.raises(ProtocolError, match="unexpected indicators"):
        list(partner.receive(pb.BrandMessage(indicators=pb.IndicatorsChunk())))
