"""Right to be forgotten: a removal shows in the next session, and neither state database
holds an identifier, a hash of one, or an encrypted element afterwards."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from cleanroom.brand.demo import synthetic_lists
from cleanroom.identifiers.normalize import normalize
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


def run(contract, crm, audience, stores, wire=None):
    brand = BrandSession(
        contract, prepare_brand_list(crm, BRAND_COLUMNS, contract), stores[0], peer="p"
    )
    partner = PartnerSession(contract, prepare_partner_list(audience, None, contract), stores[1])
    run_in_process(
        brand,
        partner,
        on_wire=(lambda d, data: wire.append((d, data))) if wire is not None else None,
    )
    return None if brand.report is None else brand.report.to_dict()


@pytest.fixture
def contract(make_contract):
    # A deletion request removes one person: with the default "refuse" the set-difference
    # defence would stop the next session, so deletions run under "flag" (docs/threat-model.md).
    return dataclasses.replace(
        make_contract(mechanism="none", min_set_size=10, min_overlap=0, attributes=()),
        set_difference_action="flag",
    )


def test_a_removed_person_is_gone_from_the_next_session(contract, stores):
    lists = synthetic_lists(300, 500, seed=31)
    before = run(contract, lists.crm, lists.audience, stores)["overlap"]["total"]
    crm_emails = {normalize("email", e, "pair-1", "US") for e in lists.crm.email} - {None}
    in_both = lists.audience[
        lists.audience.email.map(lambda e: normalize("email", e, "pair-1", "US") in crm_emails)
    ]
    person = in_both.iloc[0]
    # the partner forgets the person entirely
    audience = lists.audience.drop(index=person.name)
    after_partner = run(contract, lists.crm, audience, stores)["overlap"]["total"]
    assert after_partner == before - 1
    # and so does the brand, for another matched person
    other = normalize("email", in_both.iloc[1].email, "pair-1", "US")
    crm = lists.crm[lists.crm.email.map(lambda e: normalize("email", e, "pair-1", "US") != other)]
    assert run(contract, crm, audience, stores)["overlap"]["total"] == after_partner - 1


def test_state_databases_hold_no_identifier_in_any_form(contract, stores, tmp_path):
    lists = synthetic_lists(300, 500, seed=32)
    wire: list[tuple[str, bytes]] = []
    run(contract, lists.crm, lists.audience, stores, wire)
    forms: set[bytes] = set()
    for value in [*lists.crm.email, *lists.audience.email]:
        normalized = normalize("email", value, "pair-1", "US") if value.strip() else None
        if normalized:
            digest = hashlib.sha256(normalized.encode()).digest()
            forms |= {normalized.encode(), digest, digest.hex().encode(), digest[:12]}
    for value in [*lists.crm.phone, *lists.audience.phone]:
        normalized = normalize("phone", value, "pair-1", "US") if value.strip() else None
        if normalized:
            digest = hashlib.sha256(normalized.encode()).digest()
            forms |= {normalized.encode(), digest, digest.hex().encode()}
    # every encrypted element that crossed the wire (Z elements are 12 bytes, the others 32)
    for direction, data in wire:
        message = (
            pb.PartnerMessage if direction == "partner->brand" else pb.BrandMessage
        ).FromString(data)
        body = getattr(message, message.WhichOneof("body"))
        elements = getattr(body, "elements", b"")
        size = 12 if message.WhichOneof("body") == "double_encrypted" else 32
        forms |= {elements[i : i + size] for i in range(0, len(elements), size)}
    forms = {form for form in forms if len(form) >= 8}
    assert len(forms) > 1000
    for store in stores:
        blob = b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
        assert blob, "the state database was written"
        leaked = [form for form in forms if form in blob]
        assert not leaked, f"{store.path.name} holds {len(leaked)} identifier forms"
