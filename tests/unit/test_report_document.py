"""The typed Report: its canonical bytes survive parsing and the state store unchanged."""

from __future__ import annotations

import numpy as np

from cleanroom.privacy.accounting import brand_budget, partner_budget
from cleanroom.report.document import Report
from cleanroom.report.release import ReleasedCounts, build_report
from cleanroom.store.state import StateStore


def test_a_released_report_keeps_its_bytes_through_parsing_and_the_store(make_contract, tmp_path):
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=4.0)
    segments, attributes = len(contract.segments), len(contract.attributes)
    report = build_report(
        contract=contract,
        session_id="ab" * 16,
        transcript_sha256="cd" * 32,
        brand_records=[5000] * segments,
        partner_size=8000,
        counts=ReleasedCounts(
            by_segment=[900 + s for s in range(segments)],
            attribute_counts=np.full((attributes, segments), 300, dtype=np.int64),
            partner_counts=[2000] * attributes,
        ),
        brand=brand_budget(contract),
        partner=partner_budget(contract),
        ledger_remaining=3.0,
    )
    data = report.signed_bytes()
    assert Report.parse(data).signed_bytes() == data
    signed = report.signed({"brand": {"public_key": "00", "signature": "11"}})
    assert signed == report and signed.signed_bytes() == data  # signatures are not the report
    assert signed.to_json() != data and b'"signatures"' in signed.to_json()

    store = StateStore(tmp_path / "s.db")
    store.begin_session(report.session_id, contract, "peer")
    store.commit_release(report.session_id, contract, signed)
    stored = store.report(report.session_id)
    assert stored is not None and stored.signed_bytes() == data
    assert stored.signatures == signed.signatures and stored.to_json() == signed.to_json()
    assert store.verify_audit() == len(store.audit_entries())
