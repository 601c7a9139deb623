from __future__ import annotations

import sqlite3
import threading

import pytest

from cleanroom.errors import IntegrityError, PolicyError, ProtocolError
from cleanroom.store.state import StateStore


def test_budget_is_spent_once_per_session_and_refused_when_exhausted(tmp_path, make_contract):
    contract = make_contract(epsilon=1.0, epsilon_total=2.0)
    store = StateStore(tmp_path / "s.db")
    for session in ("s1", "s2"):
        store.begin_session(session, contract, "peer")
        store.require_budget(contract)
        store.commit_release(session, contract, {"session_id": session}, "t" * 64)
    assert store.epsilon_spent(contract.id) == pytest.approx(2.0)
    with pytest.raises(PolicyError, match="budget exhausted"):
        store.require_budget(contract)
    store.begin_session("s3", contract, "peer")
    with pytest.raises(PolicyError):
        store.commit_release("s3", contract, {}, "t" * 64)
    assert store.report("s3") is None  # nothing half-written


def test_charge_is_idempotent_per_session(tmp_path, make_contract):
    contract = make_contract(epsilon=1.0, epsilon_total=5.0)
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    store.charge("s1", contract)
    store.commit_release("s1", contract, {"ok": True}, "t" * 64)
    assert store.epsilon_spent(contract.id) == pytest.approx(1.0)


def test_concurrent_releases_never_overspend(tmp_path, make_contract):
    contract = make_contract(epsilon=1.0, epsilon_total=3.0)
    store = StateStore(tmp_path / "s.db")
    outcomes: list[str] = []

    def release(i: int) -> None:
        session = f"s{i}"
        store.begin_session(session, contract, "peer")
        try:
            store.commit_release(session, contract, {"i": i}, "t" * 64)
            outcomes.append("released")
        except PolicyError:
            outcomes.append("refused")

    threads = [threading.Thread(target=release, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("released") == 3 and outcomes.count("refused") == 5
    assert store.epsilon_spent(contract.id) == pytest.approx(3.0)


def test_reused_session_id_is_refused(tmp_path, make_contract):
    contract = make_contract()
    store = StateStore(tmp_path / "s.db")
    store.begin_session("dup", contract, "peer")
    with pytest.raises(ProtocolError, match="already used"):
        store.begin_session("dup", contract, "peer")


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
