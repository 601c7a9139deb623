from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cleanroom.crypto.signing import sign_report
from cleanroom.errors import IntegrityError, PolicyError, ProtocolError
from cleanroom.identity import ReportSigner
from cleanroom.report.document import Report, dumps
from cleanroom.store.state import StateStore


def released(document: dict) -> Report:
    """A report to store, unsigned, with the transcript hash every report carries."""
    return Report({**document, "transcript_sha256": "t" * 64})


def test_budget_is_spent_once_per_session_and_refused_when_exhausted(tmp_path, make_contract):
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=2.0)
    store = StateStore(tmp_path / "s.db")
    for session in ("s1", "s2"):
        store.require_budget(contract)
        store.begin_session(session, contract, "peer")
        store.commit_release(session, contract, released({"session_id": session}))
    assert store.budget_spent(contract.id) == pytest.approx(2.0)
    with pytest.raises(PolicyError, match="budget exhausted"):
        store.require_budget(contract)
    with pytest.raises(PolicyError, match="budget exhausted"):
        store.begin_session("s3", contract, "peer")
    assert store.session_status("s3") is None and store.report("s3") is None
    refusal = store.audit_entries()[-1]
    assert refusal["event"] == "refused" and refusal["session_id"] == "s3"
    assert "budget exhausted" in refusal["detail"]["reason"]
    assert "agree a new contract" in refusal["detail"]["reason"]  # what to do next


def test_a_running_session_reserves_its_epsilon_until_it_spends_or_aborts(tmp_path, make_contract):
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=2.0)
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    store.begin_session("s2", contract, "peer")
    assert store.budget_spent(contract.id) == 0 and store.budget_remaining(contract) == 0
    with pytest.raises(PolicyError, match="2 reserved by running sessions"):
        store.begin_session("s3", contract, "peer")
    store.abort_session("s1", contract.id, "the peer went away")
    assert store.budget_remaining(contract) == pytest.approx(1.0)
    store.charge("s2", contract)  # the reservation becomes a ledger entry, not a second charge
    assert store.budget_spent(contract.id) == pytest.approx(1.0)
    assert store.budget_remaining(contract) == pytest.approx(1.0)
    store.abort_session("s2", contract.id, "failed after spending")  # spent stays spent
    assert store.budget_spent(contract.id) == pytest.approx(1.0)
    store.begin_session("s4", contract, "peer")


def test_a_session_whose_process_died_is_marked_aborted_and_frees_its_reservation(
    tmp_path, make_contract
):
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=1.0)
    path = tmp_path / "s.db"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pickle; from cleanroom.store.state import StateStore;"
            " contract = pickle.loads(sys.stdin.buffer.read());"
            f" StateStore({str(path)!r}).begin_session('lost', contract, 'peer')",
        ],
        input=pickle.dumps(contract),
        check=True,
    )
    assert child.returncode == 0
    store = StateStore(path)
    store.begin_session(
        "alive",
        make_contract(
            mechanism="discrete_laplace", epsilon=1.0, epsilon_total=1.0, contract_id="other"
        ),
        "p",
    )
    assert store.budget_remaining(contract) == 0  # the dead session still holds its reservation
    assert store.recover_crashed() == ["lost"]  # this process's own session is left alone
    assert store.session_status("lost") == "aborted"
    assert store.session_status("alive") == "running"
    assert store.budget_remaining(contract) == pytest.approx(1.0)
    assert store.audit_entries()[-1]["event"] == "abort"
    assert store.verify_audit() == len(store.audit_entries())


def test_charge_is_idempotent_per_session(tmp_path, make_contract):
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=5.0)
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    store.charge("s1", contract)
    store.commit_release("s1", contract, released({"ok": True}))
    assert store.budget_spent(contract.id) == pytest.approx(1.0)


def test_concurrent_sessions_never_overspend_and_every_started_one_can_release(
    tmp_path, make_contract
):
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=3.0)
    store = StateStore(tmp_path / "s.db")
    outcomes: list[str] = []

    def release(i: int) -> None:
        session = f"s{i}"
        try:
            store.begin_session(session, contract, "peer")
        except PolicyError:
            outcomes.append("refused")  # at the start, before any work: nothing to waste
            return
        store.commit_release(session, contract, released({"i": i}))
        outcomes.append("released")

    threads = [threading.Thread(target=release, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("released") == 3 and outcomes.count("refused") == 5
    assert store.budget_spent(contract.id) == pytest.approx(3.0)


def test_reused_session_id_is_refused(tmp_path, make_contract):
    contract = make_contract()
    store = StateStore(tmp_path / "s.db")
    store.begin_session("dup", contract, "peer")
    with pytest.raises(ProtocolError, match="already used"):
        store.begin_session("dup", contract, "peer")
    refusal = store.audit_entries()[-1]
    assert refusal["event"] == "refused" and "already used" in refusal["detail"]["reason"]


def test_audit_chain_verifies_and_detects_tampering(tmp_path, make_contract):
    contract = make_contract()
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    store.abort_session("s1", contract.id, "test")
    store.audit("refused", contract_id="x", reason="unknown contract")
    assert store.verify_audit() == 3
    assert store.session_status("s1") == "aborted"
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute('UPDATE audit SET detail = \'{"reason": "edited"}\' WHERE seq = 2')
    with pytest.raises(IntegrityError, match="audit entry 2"):
        store.verify_audit()


def test_audit_chain_detects_a_deleted_entry(tmp_path, make_contract):
    store = StateStore(tmp_path / "s.db")
    for i in range(3):
        store.audit("refused", reason=str(i))
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("DELETE FROM audit WHERE seq = 2")
    with pytest.raises(IntegrityError, match="audit entry 3"):
        store.verify_audit()


def released_store(tmp_path, make_contract) -> StateStore:
    """A store with one released session, signed by this party and by its peer."""
    contract = make_contract()
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    own, peer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    report = released({"overlap": {"total": 120}})
    brand_signature = ReportSigner(own, "brand").sign(report.signed_bytes())
    store.commit_release("s1", contract, report.signed({"brand": brand_signature}))
    store.add_signature(
        "s1",
        "partner",
        sign_report(peer, report.signed_bytes(), role="partner"),
        peer.public_key().public_bytes_raw(),
    )
    assert store.verify_records() == {"reports": 1, "signatures": 2, "ledger_entries": 1}
    return store


def forge_report(store: StateStore, total: int, signatures: str) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute(
            "UPDATE reports SET report_json = ?, signatures = ?",
            (json.dumps({"overlap": {"total": total}}), signatures),
        )
    db.close()


def test_verify_records_catches_a_forged_report_re_signed_with_a_fresh_key(tmp_path, make_contract):
    store = released_store(tmp_path, make_contract)
    forger = Ed25519PrivateKey.generate()
    forged = {"overlap": {"total": 999999}}
    signature = {
        "public_key": forger.public_key().public_bytes_raw().hex(),
        "signature": sign_report(forger, dumps(forged), role="brand").hex(),
    }
    forge_report(store, 999999, json.dumps({"brand": signature, "partner": signature}))
    assert store.verify_audit() == len(store.audit_entries())  # the chain itself is untouched
    with pytest.raises(IntegrityError, match="differs from the one released"):
        store.verify_records()


def test_verify_records_catches_stripped_signatures(tmp_path, make_contract):
    store = released_store(tmp_path, make_contract)
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE reports SET signatures = '{}'")
    db.close()
    with pytest.raises(IntegrityError, match="signatures on the report of session s1"):
        store.verify_records()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM reports", "released report of session s1 was deleted"),
        ("DELETE FROM ledger", "ledger differs"),
        ("UPDATE ledger SET epsilon = 0.01", "ledger differs"),
        ("UPDATE reports SET report_json = 'not json'", "not valid JSON"),
    ],
)
def test_verify_records_catches_edits_the_chain_does_not_cover(
    tmp_path, make_contract, statement, message
):
    store = released_store(tmp_path, make_contract)
    with sqlite3.connect(store.path) as db:
        db.execute(statement)
    db.close()
    with pytest.raises(IntegrityError, match=message):
        store.verify_records()


def test_a_recorded_head_exposes_a_truncated_log(tmp_path, make_contract):
    store = released_store(tmp_path, make_contract)
    seq, head = store.head()
    assert store.has_audit_hash(head)
    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM audit WHERE seq = ?", (seq,))
    db.close()
    assert store.verify_audit() == seq - 1  # a truncated chain still chains
    assert not store.has_audit_hash(head)  # but the hash recorded elsewhere is gone


def test_a_session_aborted_before_its_charge_never_spends(tmp_path, make_contract):
    """The late Ctrl-C: the numbers were still being made when the session was aborted;
    the charge that follows is refused, and the abort tells the truth about the budget."""
    contract = make_contract(mechanism="discrete_laplace", epsilon=1.0, epsilon_total=2.0)
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    store.abort_session("s1", contract.id, "the partner interrupted the session (Ctrl-C)")
    with pytest.raises(PolicyError, match="s1 was aborted"):
        store.charge("s1", contract)
    assert store.budget_spent(contract.id) == 0 and store.budget_spent_by("s1") == 0
    assert not [e for e in store.audit_entries() if e["event"] == "budget-spent"]
    store.begin_session("s2", contract, "peer")
    store.charge("s2", contract)  # charged first, then aborted: the spend stands and shows
    store.abort_session("s2", contract.id, "the partner interrupted the session (Ctrl-C)")
    assert store.budget_spent_by("s2") == 1.0 and store.budget_remaining(contract) == 1.0
