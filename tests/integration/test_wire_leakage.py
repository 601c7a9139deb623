"""Every byte either side sends, checked for identifiers in any form."""

from __future__ import annotations

import hashlib

from cleanroom.brand.demo import synthetic_lists
from cleanroom.identifiers.normalize import normalize
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


def identifier_forms(values) -> set[bytes]:
    """Raw, normalized, SHA-256 (raw bytes and hex) of every identifier."""
    forms: set[bytes] = set()
    for kind, value in values:
        if not value or not value.strip():
            continue
        forms.add(value.strip().encode())
        normalized = normalize(kind, value, "pair-1", "US") if kind in ("email", "phone") else value
        if normalized:
            digest = hashlib.sha256(normalized.encode()).digest()
            forms |= {normalized.encode(), digest, digest.hex().encode(), digest[:12], digest[-12:]}
    return {form for form in forms if len(form) >= 8}


def test_no_identifier_in_any_form_crosses_the_wire(make_contract, stores):
    lists = synthetic_lists(300, 500, seed=11)
    contract = make_contract(mechanism="none", min_set_size=0, min_overlap=0)
    brand = BrandSession(
        contract, prepare_brand_list(lists.crm, BRAND_COLUMNS, contract), stores[0], peer="p"
    )
    partner = PartnerSession(
        contract, prepare_partner_list(lists.audience, None, contract), stores[1]
    )
    wire: list[tuple[str, bytes]] = []
    run_in_process(brand, partner, on_wire=lambda direction, data: wire.append((direction, data)))

    assert {d for d, _ in wire} == {"partner->brand", "brand->partner"}
    assert sum(len(data) for _, data in wire) > 50_000  # the elements really travelled
    forms = identifier_forms(
        [("email", v) for v in lists.crm.email]
        + [("phone", v) for v in lists.crm.phone]
        + [("email", v) for v in lists.audience.email]
        + [("phone", v) for v in lists.audience.phone]
        + [("email_sha256", v) for v in lists.crm.email_sha256]
    )
    assert len(forms) > 1000
    for direction in ("partner->brand", "brand->partner"):
        blob = b"\x00".join(data for d, data in wire if d == direction)
        leaked = [form for form in forms if form in blob]
        assert not leaked, f"{len(leaked)} identifier forms crossed {direction}"
    assert brand.report is not None and brand.report.overlap > 0
