"""A brand server facing participants that misbehave: wrong identity, stalled streams, and
many sessions at once (protocol misuse, oversized messages included: test_protocol_misuse.py)."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from support import hello_for, raw_stub, state_rows, wait_for_abort

from cleanroom.errors import AuthenticationError
from cleanroom.store.state import StateStore


def test_a_partner_naming_another_partners_contract_is_denied_and_audited(deploy):
    site = deploy(second_partner=True)
    channel, stub = raw_stub(site, "intruder")  # pinned, but only for acme-x-intruder
    with channel, pytest.raises(grpc.RpcError) as refused:
        list(stub.Session(iter([hello_for(site.directory / "contract.toml")]), timeout=30))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    store = site.brand_store()
    entries = store.audit_entries()
    assert [e["event"] for e in entries] == ["refused"]
    assert entries[0]["detail"]["reason"] == "certificate not pinned"
    assert entries[0]["contract_id"] == "acme-x-newsco-demo"
    # Refused before any session started: nothing recorded, reserved, spent or stored.
    tables = state_rows(store)
    for table in ("sessions", "reservations", "ledger", "reports"):
        assert tables[table] == set(), table


def test_a_certificate_no_contract_pins_fails_the_tls_handshake(deploy, certificates, tmp_path):
    site = deploy()
    # A partner-side contract naming the intruder: the brand's TLS layer has never heard of it.
    text = (
        (site.directory / "contract.toml")
        .read_text()
        .replace(certificates["newsco"][2], certificates["intruder"][2])
    )
    (tmp_path / "forged.toml").write_text(text)
    client = site.client(
        contract=tmp_path / "forged.toml",
        certificate=site.directory / "certs/intruder.crt",
        private_key=site.directory / "certs/intruder.key",
        state=tmp_path / "p.db",
    )
    with pytest.raises(AuthenticationError):
        client.run(site.directory / "audience.csv")


def test_a_stalled_partner_is_dropped_after_the_idle_timeout(deploy):
    site = deploy(idle_timeout=1.5)
    channel, stub = raw_stub(site, "newsco")
    release = threading.Event()

    def hello_then_silence():
        yield hello_for(site.directory / "contract.toml")
        release.wait(30)

    started = time.monotonic()
    with channel, pytest.raises(grpc.RpcError):
        call = stub.Session(hello_then_silence(), timeout=60)
        next(call)  # the hello reply arrives; then this client neither reads nor writes
        wait_for_abort(site.brand_store())  # 1.5 s after the hello reply, not later
        list(call)
    release.set()
    assert time.monotonic() - started < 30
    aborts = [e for e in site.brand_store().audit_entries() if e["event"] == "abort"]
    assert re.search(r"stalled|no message from the peer", aborts[-1]["detail"]["reason"])
    # the brand's noisy sizes left with HelloReply: that session is paid for (privacy.md#ledger)
    assert site.brand_store().budget_spent("acme-x-newsco-demo") == 1.0


def test_eight_concurrent_sessions_get_isolated_reports_and_a_correct_ledger(deploy, tmp_path):
    site = deploy(second_partner=True, epsilon=1.0, epsilon_total=5.0)
    runs = []
    for i in range(8):
        if i % 4 == 3:  # two sessions under the other partner's contract
            runs.append(
                site.client(
                    "intruder-contract.toml",
                    certificate=site.directory / "certs/intruder.crt",
                    private_key=site.directory / "certs/intruder.key",
                    state=tmp_path / f"partner{i}.db",
                )
            )
        else:  # six under newsco's contract, which only has budget for five
            runs.append(site.client(state=tmp_path / f"partner{i}.db"))

    def attempt(client):
        try:
            return client.run(site.directory / "audience.csv")
        except Exception as error:
            return error

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, runs))
    reports = [o for o in outcomes if not isinstance(o, Exception)]
    errors = [o for o in outcomes if isinstance(o, Exception)]
    store = site.brand_store()
    assert store.budget_spent("acme-x-newsco-demo") == pytest.approx(5.0)
    assert store.budget_spent("acme-x-intruder") == pytest.approx(2.0)
    assert len(reports) == 7 and len(errors) == 1
    assert "budget" in str(errors[0])
    assert len({r.session_id for r in reports}) == 7
    for report in reports:
        assert store.report(report.session_id) == report
    # identical inputs and no noise: every session saw the same lists, isolated from the others
    assert len({r.overlap for r in reports}) == 1
    # the refused partner was refused at the start: it spent nothing and holds no reservation
    for client, outcome in zip(runs, outcomes, strict=True):
        partner = StateStore(client.state)
        refused = isinstance(outcome, Exception)
        assert partner.budget_spent(client.contract.id) == (0 if refused else 1.0)
        assert partner.budget_remaining(client.contract) == 5.0 - (0 if refused else 1.0)
        assert (partner.latest_report_session() is None) == refused
    assert store.verify_audit() == len(store.audit_entries())
