"""The sessions' port (cleanroom/protocol/ports.py) is real: the protocol runs against an
in-memory implementation, with no SQLite, and releases the same report as with StateStore."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cleanroom.brand.demo import synthetic_lists
from cleanroom.contract import Contract, budget_allows, budget_left
from cleanroom.errors import PolicyError, ProtocolError
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.protocol.ports import SessionStore
from cleanroom.report.document import Report
from cleanroom.store.state import StateStore
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {"email": "email", "phone": "phone", "segment": "tier"}


class MemoryStore:
    """A party's state in dictionaries: each method is one step under a lock, as the port
    asks (one reservation per session, a charge refused after an abort)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status: dict[str, str] = {}
        self.reserved: dict[str, tuple[str, float]] = {}
        self.ledger: dict[str, tuple[str, float]] = {}
        self.reports: dict[str, Report] = {}
        self.sketches: list[tuple[str, str, bytes]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _committed(self, contract_id: str, excluding: str | None = None) -> float:
        entries = [*self.ledger.items(), *self.reserved.items()]
        return sum(a for sid, (cid, a) in entries if cid == contract_id and sid != excluding)

    def audit(
        self,
        event: str,
        *,
        session_id: str | None = None,
        contract_id: str | None = None,
        **detail: Any,
    ) -> None:
        self.events.append((event, {"session_id": session_id, **detail}))

    def require_budget(self, contract: Contract) -> None:
        committed = self._committed(contract.id)
        if not budget_allows(contract.ledger_total, committed, contract.ledger_per_session):
            raise PolicyError("privacy budget exhausted")

    def begin_session(self, session_id: str, contract: Contract, peer: str) -> None:
        with self._lock:
            if session_id in self.status:
                raise ProtocolError(f"session id {session_id} was already used")
            self.require_budget(contract)
            self.status[session_id] = "running"
            self.reserved[session_id] = (contract.id, contract.ledger_per_session)
            self.audit("session-start", session_id=session_id, peer=peer)

    def _charge(self, session_id: str, contract: Contract) -> None:
        if session_id in self.ledger:
            return
        if self.status.get(session_id) == "aborted":
            raise PolicyError(f"session {session_id} was aborted: its budget is not spent")
        del self.reserved[session_id]
        self.ledger[session_id] = (contract.id, contract.ledger_per_session)
        self.audit("budget-spent", session_id=session_id)

    def charge(self, session_id: str, contract: Contract) -> None:
        with self._lock:
            self._charge(session_id, contract)

    def abort_session(self, session_id: str, contract_id: str | None, reason: str) -> None:
        with self._lock:
            self.status[session_id] = "aborted"
            self.reserved.pop(session_id, None)
            self.audit("abort", session_id=session_id, reason=reason)

    def commit_release(
        self,
        session_id: str,
        contract: Contract,
        release: Report | Callable[[float], Report],
        list_sketch: bytes | None = None,
    ) -> Report:
        with self._lock:
            self._charge(session_id, contract)
            if callable(release):
                spent = sum(a for cid, a in self.ledger.values() if cid == contract.id)
                release = release(budget_left(contract.ledger_total, spent))
            self.reports[session_id] = release
            self.status[session_id] = "released"
            if list_sketch is not None:
                self.sketches.append((session_id, contract.id, list_sketch))
            return release

    def add_signature(
        self, session_id: str, role: str, signature: bytes, public_key: bytes
    ) -> None:
        report = self.reports[session_id]
        entry = {"public_key": public_key.hex(), "signature": signature.hex()}
        self.reports[session_id] = report.signed({**report.signatures, role: entry})

    def sketch_key(self) -> bytes:
        return b"k" * 32

    def recent_sketches(self, contract_id: str, limit: int = 20) -> list[tuple[str, bytes]]:
        mine = [(sid, blob) for sid, cid, blob in self.sketches if cid == contract_id]
        return mine[::-1][:limit]

    def remember_list(self, session_id: str, contract: Contract, sketch: bytes) -> None:
        self.sketches.append((session_id, contract.id, sketch))


def released(contract: Contract, stores: tuple[SessionStore, SessionStore]) -> Report:
    lists = synthetic_lists(600, 900, seed=7)
    brand = BrandSession(
        contract, prepare_brand_list(lists.crm, BRAND_COLUMNS, contract), stores[0], peer="p"
    )
    partner = PartnerSession(
        contract, prepare_partner_list(lists.audience, None, contract), stores[1]
    )
    run_in_process(brand, partner)
    assert brand.report is not None and brand.report == partner.report
    return brand.report


def without_run_fields(report: Report) -> bytes:
    """The canonical bytes with what differs between any two runs (the session id, the
    transcript of freshly keyed messages, the time) set to fixed values."""
    run = {"session_id": "s", "transcript_sha256": "t", "released_at": "r"}
    return Report({**report.document, **run}).signed_bytes()


def test_the_protocol_runs_on_an_in_memory_port_and_releases_the_sqlite_report(
    make_contract: Callable[..., Contract], tmp_path: Path
) -> None:
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    memory = (MemoryStore(), MemoryStore())
    in_memory = released(contract, memory)
    sqlite: tuple[SessionStore, SessionStore] = (  # StateStore implements the port (mypy)
        StateStore(tmp_path / "brand.db"),
        StateStore(tmp_path / "partner.db"),
    )
    on_disk = released(contract, sqlite)
    assert without_run_fields(in_memory) == without_run_fields(on_disk)
    assert json.loads(in_memory.signed_bytes())["overlap"]["total"] > 0
    for store in memory:  # each side spent its budget once, and kept the same report
        assert list(store.ledger) == [in_memory.session_id] and not store.reserved
        assert store.reports[in_memory.session_id] == in_memory
        assert store.status == {in_memory.session_id: "released"}


def test_a_second_session_past_the_budget_is_refused_by_the_in_memory_ledger(
    make_contract: Callable[..., Contract],
) -> None:
    contract = make_contract(
        mechanism="none", min_set_size=10, min_overlap=0, epsilon=1.0, epsilon_total=1.0
    )
    stores = (MemoryStore(), MemoryStore())
    released(contract, stores)
    with pytest.raises(PolicyError, match="budget exhausted"):
        released(contract, stores)
    assert [event for event, _ in stores[1].events].count("budget-spent") == 1


def test_the_protocol_package_imports_no_storage_and_no_grpc() -> None:
    code = (
        "import sys, cleanroom.protocol.brand, cleanroom.protocol.partner, "
        "cleanroom.protocol.ports; "
        "print(sorted(m for m in ('sqlite3', 'cleanroom.store', 'cleanroom.store.state', 'grpc')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_the_store_loads_only_the_typed_report_of_the_report_package() -> None:
    code = (
        "import sys, cleanroom.store.state; "
        "print(sorted(m for m in sys.modules if m.startswith(('cleanroom.report', 'pandas'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "['cleanroom.report', 'cleanroom.report.document']"
