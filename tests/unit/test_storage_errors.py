"""Every SQLite failure of the state store is a StorageError naming the database, the cause
and the fix, and leaves the state as it was; crashed sessions are closed at the next start."""

from __future__ import annotations

import sqlite3

import pytest

from cleanroom.errors import StorageError
from cleanroom.store.state import StateStore, storage_error


@pytest.mark.parametrize(
    ("cause", "fix"),
    [
        ("attempt to write a readonly database", "make the file and its directory writable"),
        ("unable to open database file", "make the file and its directory writable"),
        ("database or disk is full", "free space on its disk"),
        ("database is locked", "another program holds it locked"),
        ("file is not a database", "it is not an intact cleanroom state database"),
        ("disk I/O error", "check the disk and the file's permissions"),
    ],
)
def test_each_sqlite_failure_names_the_database_and_the_fix(tmp_path, cause, fix):
    error = storage_error(tmp_path / "s.db", sqlite3.OperationalError(cause))
    assert isinstance(error, StorageError) and error.exit_code == 10
    assert str(error).startswith(f"state database {tmp_path / 's.db'}: {cause}: {fix}")


def test_a_failed_write_is_rolled_back_and_reported(tmp_path, make_contract, monkeypatch):
    store = StateStore(tmp_path / "s.db")
    contract = make_contract(mechanism="discrete_laplace")
    store.begin_session("s1", contract, "peer")
    entries = store.audit_entries()
    original = StateStore._append_audit

    def full(self, db, event, *args):
        if event == "budget-spent":
            raise sqlite3.OperationalError("database or disk is full")
        return original(self, db, event, *args)

    monkeypatch.setattr(StateStore, "_append_audit", full)
    with pytest.raises(StorageError, match="database or disk is full: free space"):
        store.charge("s1", contract)
    monkeypatch.undo()
    assert store.budget_spent(contract.id) == 0  # the ledger row went with the rollback
    assert store.audit_entries() == entries
    assert store.budget_remaining(contract) == contract.epsilon_total - contract.epsilon_per_session


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path):
    (tmp_path / "s.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StorageError, match="not an intact cleanroom state database"):
        StateStore(tmp_path / "s.db")


def test_a_session_charged_before_its_process_died_is_aborted_at_the_next_start(
    tmp_path, make_contract, monkeypatch
):
    store = StateStore(tmp_path / "s.db")
    contract = make_contract(mechanism="discrete_laplace")
    store.begin_session("charged", contract, "peer")
    store.charge("charged", contract)
    store.begin_session("reserved", contract, "peer")
    assert store.recover_crashed() == []  # this process is alive: nothing to recover
    monkeypatch.setattr("cleanroom.store.state._process_gone", lambda owner: True)
    assert sorted(store.recover_crashed()) == ["charged", "reserved"]
    assert store.session_status("charged") == store.session_status("reserved") == "aborted"
    reasons = {
        e["session_id"]: e["detail"]["reason"]
        for e in store.audit_entries()
        if e["event"] == "abort"
    }
    assert "after its budget was spent" in reasons["charged"]
    assert "after its budget" not in reasons["reserved"]
    assert store.budget_spent(contract.id) == contract.epsilon_per_session  # spent stays spent
    assert store.budget_remaining(contract) == contract.epsilon_total - contract.epsilon_per_session
    assert store.recover_crashed() == []  # each is closed once


def test_a_database_from_before_session_owners_gains_the_column(tmp_path):
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute(
            "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, contract_id TEXT NOT NULL,"
            " contract_sha256 TEXT NOT NULL, peer TEXT NOT NULL, started_at TEXT NOT NULL,"
            " status TEXT NOT NULL, finished_at TEXT)"
        )
    db.close()
    StateStore(tmp_path / "old.db")
    with sqlite3.connect(tmp_path / "old.db") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    db.close()
    assert "owner" in columns
