"""Persistent state of one party: sessions, privacy-budget ledger, reports, audit log.

One SQLite file per party (``brand-state.db``, ``partner-state.db``). It never holds an
identifier, a hash of one, or an encrypted element of either side: only contract ids,
session ids, aggregate reports and audit entries.

A session reserves its budget (``Contract.ledger_per_session``: rho under the discrete
Gaussian, epsilon otherwise; the ``budget_*`` methods count in that unit, and so do the
SQLite columns named ``epsilon``, a name kept so that existing state files stay readable)
when it starts, in the same ``BEGIN IMMEDIATE`` transaction that checks the budget left after every other running session's reservation; the
reservation becomes a ledger entry when this party's noisy numbers leave, and is freed if
the session ends before that. So concurrent sessions can neither double-spend nor start
one that could not be paid for, and a session refused for lack of budget is refused at
Hello, before either side has done any work. A session whose process died is found by
``recover_crashed`` (its owner process is gone), marked aborted, and its reservation freed;
so is one that died after its budget was charged (the ledger entry stays: it was spent).

The audit log is a hash chain: each entry stores the SHA-256 of the previous entry's hash
and its own canonical JSON, so editing or deleting any entry breaks every later link
(``cleanroom audit verify``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cleanroom.contract import BUDGET_SLACK, Contract, budget_allows, budget_left
from cleanroom.crypto.signing import verify_report_signature
from cleanroom.errors import (
    CleanroomError,
    InputError,
    IntegrityError,
    PolicyError,
    ProtocolError,
    StorageError,
)
from cleanroom.report.document import Report, dumps

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    contract_sha256 TEXT NOT NULL,
    peer TEXT NOT NULL,
    started_at TEXT NOT NULL,
    status TEXT NOT NULL,
    finished_at TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS ledger (
    session_id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    epsilon REAL NOT NULL,
    spent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    session_id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    epsilon REAL NOT NULL,
    owner TEXT NOT NULL,
    reserved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    session_id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    transcript_sha256 TEXT NOT NULL,
    report_json TEXT NOT NULL,
    signatures TEXT NOT NULL DEFAULT '{}',
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS list_sketches (
    session_id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    sketch BLOB NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    session_id TEXT,
    contract_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(owner: str) -> bool:
    """Whether the process that owned a session is known to be dead (same host only)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical.encode()).hexdigest()


def _exhausted(contract: Contract, spent: float, reserved: float) -> PolicyError:
    left = budget_left(contract.ledger_total, spent + reserved)
    running = f", {reserved:g} reserved by running sessions" if reserved > BUDGET_SLACK else ""
    wait = "wait for the running sessions to end, or " if running else ""
    return PolicyError(
        f"privacy budget exhausted for contract '{contract.id}': {left:g} {contract.ledger_unit} of "
        f"{contract.ledger_total:g} left ({spent:g} spent{running}), a session needs "
        f"{contract.ledger_per_session:g}; {wait}agree a new contract (a new id and "
        "epsilon_total) with the other party for more sessions"
    )


def storage_error(path: Path, error: sqlite3.Error) -> StorageError:
    """One line naming the database, what SQLite said, and what the operator can do."""
    cause = str(error)
    lowered = cause.lower()
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        fix = (
            "make the file and its directory writable by this user (SQLite also writes"
            f" {path.name}-wal and {path.name}-shm next to it)"
        )
    elif "full" in lowered:
        fix = "free space on its disk"
    elif "locked" in lowered or "busy" in lowered:
        fix = "another program holds it locked; stop that program"
    elif "not a database" in lowered or "malformed" in lowered:
        fix = "it is not an intact cleanroom state database; restore it from a backup"
    else:
        fix = "check the disk and the file's permissions"
    return StorageError(f"state database {path}: {cause}: {fix}")


class StateStore:
    """A party's SQLite state. Safe to share between threads: each call opens its own connection.

    Every SQLite failure (disk full, read-only file or directory, lock held elsewhere)
    becomes a :class:`StorageError` naming the database; the transaction is rolled back,
    so a failed write leaves the state as it was."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise InputError(f"state database directory does not exist: {self.path.parent}")
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
            if "owner" not in columns:  # a database made before sessions named their process
                db.execute("ALTER TABLE sessions ADD COLUMN owner TEXT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                db.execute("PRAGMA synchronous=FULL")
                yield db
            finally:
                db.close()
        except sqlite3.Error as error:
            raise storage_error(self.path, error) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite may already have rolled back (disk full)
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- audit ---------------------------------------------------------------------------

    def _append_audit(
        self,
        db: sqlite3.Connection,
        event: str,
        session_id: str | None,
        contract_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        row = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev_hash = row[0] if row else GENESIS
        at = _now()
        entry = {
            "at": at,
            "event": event,
            "session_id": session_id,
            "contract_id": contract_id,
            "detail": detail,
        }
        db.execute(
            "INSERT INTO audit (at, event, session_id, contract_id, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                at,
                event,
                session_id,
                contract_id,
                json.dumps(detail, sort_keys=True),
                prev_hash,
                _entry_hash(prev_hash, entry),
            ),
        )

    def audit(
        self,
        event: str,
        *,
        session_id: str | None = None,
        contract_id: str | None = None,
        **detail: Any,
    ) -> None:
        with self._transaction() as db:
            self._append_audit(db, event, session_id, contract_id, detail)

    def audit_entries(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT seq, at, event, session_id, contract_id, detail, prev_hash, hash"
                " FROM audit ORDER BY seq"
            ).fetchall()
        return [
            {
                "seq": seq,
                "at": at,
                "event": event,
                "session_id": session_id,
                "contract_id": contract_id,
                "detail": json.loads(detail),
                "prev_hash": prev_hash,
                "hash": hash_,
            }
            for seq, at, event, session_id, contract_id, detail, prev_hash, hash_ in rows
        ]

    def verify_audit(self) -> int:
        """Check the whole chain; return the number of entries or raise naming the first bad one."""
        prev_hash = GENESIS
        entries = self.audit_entries()
        for entry in entries:
            expected = _entry_hash(
                prev_hash,
                {k: entry[k] for k in ("at", "event", "session_id", "contract_id", "detail")},
            )
            if entry["prev_hash"] != prev_hash or entry["hash"] != expected:
                raise IntegrityError(
                    f"{self.path}: audit entry {entry['seq']} ({entry['event']}) does not chain:"
                    " the log was edited or truncated"
                )
            prev_hash = entry["hash"]
        return len(entries)

    # -- sessions and budget ---------------------------------------------------------------

    def begin_session(self, session_id: str, contract: Contract, peer: str) -> None:
        """Open a session and reserve its epsilon, or record the refusal and raise it."""
        refusal: CleanroomError | None = None
        with self._transaction() as db:
            spent, reserved = self._committed(db, contract.id)
            if db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone():
                refusal = ProtocolError(f"session id {session_id} was already used")
            elif not budget_allows(
                contract.ledger_total, spent + reserved, contract.ledger_per_session
            ):
                refusal = _exhausted(contract, spent, reserved)
            if refusal is not None:
                detail = {"peer": peer, "reason": str(refusal)}
                self._append_audit(db, "refused", session_id, contract.id, detail)
            else:
                db.execute(
                    "INSERT INTO sessions (session_id, contract_id, contract_sha256, peer,"
                    " started_at, status, owner) VALUES (?, ?, ?, ?, ?, 'running', ?)",
                    (session_id, contract.id, contract.sha256, peer, _now(), _this_process()),
                )
                db.execute(
                    "INSERT INTO reservations (session_id, contract_id, epsilon, owner,"
                    " reserved_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        session_id,
                        contract.id,
                        contract.ledger_per_session,
                        _this_process(),
                        _now(),
                    ),
                )
                started = {"peer": peer, "epsilon_reserved": contract.ledger_per_session}
                self._append_audit(db, "session-start", session_id, contract.id, started)
        if refusal is not None:
            raise refusal

    def abort_session(self, session_id: str, contract_id: str | None, reason: str) -> None:
        """End a session without a release; its reservation (not any epsilon already spent) is freed."""
        with self._transaction() as db:
            db.execute(
                "UPDATE sessions SET status = 'aborted', finished_at = ? WHERE session_id = ? AND status = 'running'",
                (_now(), session_id),
            )
            db.execute("DELETE FROM reservations WHERE session_id = ?", (session_id,))
            self._append_audit(db, "abort", session_id, contract_id, {"reason": reason})

    def recover_crashed(self) -> list[str]:
        """End every running session whose process on this host is gone (killed, or the
        machine lost power), with an audit entry each; return their ids.

        A session still holding a reservation spent nothing: it is aborted and the
        reservation freed. One whose budget was already charged (the partner's noisy sums
        had left) is aborted too, its ledger entry kept, since that epsilon was spent; its
        report, if the brand released one, can still be recorded with
        ``cleanroom-client recover``. A session with a stored report is already released.
        """
        with self._transaction() as db:
            rows = db.execute(
                "SELECT s.session_id, s.contract_id, COALESCE(s.owner, r.owner),"
                " l.session_id IS NOT NULL FROM sessions s"
                " LEFT JOIN reservations r USING (session_id)"
                " LEFT JOIN ledger l USING (session_id) WHERE s.status = 'running'"
            ).fetchall()
            crashed = [
                (sid, cid, bool(charged))
                for sid, cid, owner, charged in rows
                if owner is not None and _process_gone(owner)
            ]
            for session_id, contract_id, charged in crashed:
                db.execute(
                    "UPDATE sessions SET status = 'aborted', finished_at = ? WHERE session_id = ?",
                    (_now(), session_id),
                )
                db.execute("DELETE FROM reservations WHERE session_id = ?", (session_id,))
                reason = "the process running this session ended without closing it"
                if charged:
                    reason += ", after its budget was spent (no report was stored)"
                self._append_audit(db, "abort", session_id, contract_id, {"reason": reason})
        return [session_id for session_id, _, _ in crashed]

    @staticmethod
    def _committed(
        db: sqlite3.Connection, contract_id: str, excluding: str | None = None
    ) -> tuple[float, float]:
        """(epsilon spent, epsilon reserved by running sessions other than ``excluding``)."""
        (spent,) = db.execute(
            "SELECT COALESCE(SUM(epsilon), 0) FROM ledger WHERE contract_id = ?", (contract_id,)
        ).fetchone()
        (reserved,) = db.execute(
            "SELECT COALESCE(SUM(epsilon), 0) FROM reservations"
            " WHERE contract_id = ? AND session_id IS NOT ?",
            (contract_id, excluding),
        ).fetchone()
        return float(spent), float(reserved)

    def budget_spent(self, contract_id: str) -> float:
        """Budget the contract's sessions spent, in the contract's ledger unit."""
        with self._connect() as db:
            return self._committed(db, contract_id)[0]

    def budget_remaining(self, contract: Contract) -> float:
        """Budget neither spent nor reserved by a running session."""
        with self._connect() as db:
            spent, reserved = self._committed(db, contract.id)
        return budget_left(contract.ledger_total, spent + reserved)

    def require_budget(self, contract: Contract) -> None:
        """Fail early when a session could not start; ``begin_session`` re-checks atomically."""
        with self._connect() as db:
            spent, reserved = self._committed(db, contract.id)
        if not budget_allows(contract.ledger_total, spent + reserved, contract.ledger_per_session):
            raise _exhausted(contract, spent, reserved)

    def _charge(self, db: sqlite3.Connection, session_id: str, contract: Contract) -> None:
        if db.execute("SELECT 1 FROM ledger WHERE session_id = ?", (session_id,)).fetchone():
            return
        # A session aborted (Ctrl-C, a lost peer) while its numbers were still being made
        # must not spend budget afterwards: abort and charge are serialised by the database.
        status = db.execute(
            "SELECT status FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if status is not None and status[0] == "aborted":
            raise PolicyError(f"session {session_id} was aborted: its budget is not spent")
        spent, reserved = self._committed(db, contract.id, excluding=session_id)
        if not budget_allows(contract.ledger_total, spent + reserved, contract.ledger_per_session):
            raise _exhausted(contract, spent, reserved)
        db.execute("DELETE FROM reservations WHERE session_id = ?", (session_id,))
        db.execute(
            "INSERT INTO ledger (session_id, contract_id, epsilon, spent_at) VALUES (?, ?, ?, ?)",
            (session_id, contract.id, contract.ledger_per_session, _now()),
        )
        self._append_audit(
            db, "budget-spent", session_id, contract.id, {"epsilon": contract.ledger_per_session}
        )

    def charge(self, session_id: str, contract: Contract) -> None:
        """Spend this session's epsilon now: this party is about to release noisy numbers."""
        with self._transaction() as db:
            self._charge(db, session_id, contract)

    def budget_spent_by(self, session_id: str) -> float:
        """The budget this session spent (0 when it spent none)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT epsilon FROM ledger WHERE session_id = ?", (session_id,)
            ).fetchone()
        return float(row[0]) if row else 0.0

    # -- set-difference sketches (cleanroom/privacy/setdiff.py) ---------------------------------

    def sketch_key(self) -> bytes:
        """This database's secret for list sketches, made on first use."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM settings WHERE name = 'sketch_key'").fetchone()
            if row:
                return bytes(row[0])
            key = secrets.token_bytes(32)
            db.execute("INSERT INTO settings (name, value) VALUES ('sketch_key', ?)", (key,))
            return key

    def recent_sketches(self, contract_id: str, limit: int = 20) -> list[tuple[str, bytes]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT session_id, sketch FROM list_sketches WHERE contract_id = ?"
                " ORDER BY stored_at DESC LIMIT ?",
                (contract_id, limit),
            ).fetchall()
        return [(session_id, bytes(blob)) for session_id, blob in rows]

    def remember_list(self, session_id: str, contract: Contract, sketch: bytes) -> None:
        """Keep this party's list sketch for later set-difference checks (setdiff.py)."""
        with self._transaction() as db:
            self._remember_list(db, session_id, contract, sketch)

    def _remember_list(
        self, db: sqlite3.Connection, session_id: str, contract: Contract, sketch: bytes
    ) -> None:
        db.execute(
            "INSERT OR IGNORE INTO list_sketches (session_id, contract_id, sketch, stored_at)"
            " VALUES (?, ?, ?, ?)",
            (session_id, contract.id, sketch, _now()),
        )

    def commit_release(
        self,
        session_id: str,
        contract: Contract,
        release: Report | Callable[[float], Report],
        list_sketch: bytes | None = None,
    ) -> Report:
        """Spend the budget (if not yet spent) and store the signed report, atomically.

        ``release`` may be a function of the budget remaining after this session, so the
        figure in the report is read inside the same transaction that spends it. The
        signatures are stored as given: the store never signs."""
        with self._transaction() as db:
            self._charge(db, session_id, contract)
            if callable(release):
                (spent,) = db.execute(
                    "SELECT COALESCE(SUM(epsilon), 0) FROM ledger WHERE contract_id = ?",
                    (contract.id,),
                ).fetchone()
                release = release(budget_left(contract.ledger_total, spent))
            transcript_sha256 = release.transcript_sha256
            db.execute(
                "INSERT INTO reports (session_id, contract_id, transcript_sha256, report_json,"
                " signatures, stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    contract.id,
                    transcript_sha256,
                    json.dumps(release.document, sort_keys=True),
                    json.dumps(release.signatures, sort_keys=True),
                    _now(),
                ),
            )
            db.execute(
                "UPDATE sessions SET status = 'released', finished_at = ? WHERE session_id = ?",
                (_now(), session_id),
            )
            if list_sketch is not None:
                self._remember_list(db, session_id, contract, list_sketch)
            self._append_audit(
                db,
                "release",
                session_id,
                contract.id,
                {
                    "transcript_sha256": transcript_sha256,
                    "report_sha256": hashlib.sha256(release.signed_bytes()).hexdigest(),
                    "signatures": release.signatures,
                },
            )
        return release

    def report(self, session_id: str) -> Report | None:
        """The session's stored report, with the signatures stored alongside it."""
        with self._connect() as db:
            row = db.execute(
                "SELECT report_json, signatures FROM reports WHERE session_id = ?", (session_id,)
            ).fetchone()
        return Report(json.loads(row[0]), signatures=json.loads(row[1])) if row else None

    def add_signature(
        self, session_id: str, role: str, signature: bytes, public_key: bytes
    ) -> None:
        """Record one party's Ed25519 signature over the stored report, in the audit chain too."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT signatures, contract_id FROM reports WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise ProtocolError(f"no stored report for session {session_id}")
            signatures = json.loads(row[0])
            signatures[role] = {"public_key": public_key.hex(), "signature": signature.hex()}
            db.execute(
                "UPDATE reports SET signatures = ? WHERE session_id = ?",
                (json.dumps(signatures, sort_keys=True), session_id),
            )
            self._append_audit(db, "signed", session_id, row[1], {"role": role, **signatures[role]})

    def signatures(self, session_id: str) -> dict[str, dict[str, str]]:
        with self._connect() as db:
            row = db.execute(
                "SELECT signatures FROM reports WHERE session_id = ?", (session_id,)
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def verify_records(self) -> dict[str, int]:
        """Check the reports, ledger and signatures against the audit chain.

        The chain alone shows that no entry was edited; this shows that no stored report,
        signature or ledger entry was edited, added or deleted without its entry: each
        report must hash to the ``report_sha256`` of its release entry, each signature must
        be one the chain recorded and must verify, and the ledger must equal the sum of the
        ``budget-spent`` entries. Run :meth:`verify_audit` first. Returns what was checked.
        """
        released: dict[str, dict[str, Any]] = {}
        spent: dict[str, float] = {}
        signed: dict[str, dict[str, dict[str, str]]] = {}
        for entry in self.audit_entries():
            session_id, detail = entry["session_id"], entry["detail"]
            if entry["event"] == "release":
                released[session_id] = detail
                signed[session_id] = dict(detail.get("signatures", {}))
            elif entry["event"] == "budget-spent":
                spent[session_id] = detail["epsilon"]
            elif entry["event"] == "signed":
                signed.setdefault(session_id, {})[detail["role"]] = {
                    "public_key": detail["public_key"],
                    "signature": detail["signature"],
                }
        with self._connect() as db:
            reports = db.execute(
                "SELECT session_id, transcript_sha256, report_json, signatures FROM reports"
            ).fetchall()
            ledger = db.execute("SELECT session_id, epsilon FROM ledger").fetchall()

        def broken(what: str) -> IntegrityError:
            return IntegrityError(f"{self.path}: {what}: the state was edited outside cleanroom")

        signatures = 0
        for session_id, transcript, report_json, stored_signatures in reports:
            if session_id not in released:
                raise broken(f"the report of session {session_id} has no release entry")
            entry = released.pop(session_id)
            try:
                report, stored = json.loads(report_json), json.loads(stored_signatures)
            except ValueError:
                raise broken(f"the report of session {session_id} is not valid JSON") from None
            report_bytes = dumps(report)
            if (
                hashlib.sha256(report_bytes).hexdigest() != entry.get("report_sha256")
                or transcript != entry["transcript_sha256"]
            ):
                raise broken(f"the report of session {session_id} differs from the one released")
            if stored != signed.get(session_id, {}):
                raise broken(f"the signatures on the report of session {session_id} were changed")
            if len({signature["public_key"] for signature in stored.values()}) < len(stored):
                raise broken(
                    f"the report of session {session_id} carries two signatures by one key"
                )
            for role, signature in stored.items():
                key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(signature["public_key"]))
                if not verify_report_signature(
                    key, bytes.fromhex(signature["signature"]), report_bytes, role=role
                ):
                    raise broken(f"the {role} signature on the report of session {session_id}")
                signatures += 1
        if released:
            raise broken(f"the released report of session {next(iter(released))} was deleted")
        if {sid: float(eps) for sid, eps in ledger} != spent:
            raise broken("the privacy-budget ledger differs from the budget-spent entries")
        return {"reports": len(reports), "signatures": signatures, "ledger_entries": len(ledger)}

    def head(self) -> tuple[int, str]:
        """(sequence number, hash) of the newest audit entry: record it elsewhere to detect a
        later truncation or rewrite of the whole chain (``cleanroom audit verify --anchor``)."""
        with self._connect() as db:
            row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def has_audit_hash(self, hash_: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM audit WHERE hash = ?", (hash_,)).fetchone() is not None

    def latest_report_session(self) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT session_id FROM reports ORDER BY stored_at DESC LIMIT 1"
            ).fetchone()
        return row[0] if row else None

    def session_status(self, session_id: str) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT status FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return row[0] if row else None
