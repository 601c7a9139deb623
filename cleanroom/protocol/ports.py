"""What a session needs from outside, as small ports: the budget ledger, the audit log, report
storage and the list sketches of earlier sessions (docs/protocol.md).

The sessions call these and nothing else that touches a disk, so the protocol imports no
storage: :class:`cleanroom.store.state.StateStore` implements :class:`SessionStore` with
SQLite, and a test can run the protocol against memory. Each method is one atomic step of
the protocol's accounting; an implementation must keep it so:

* ``begin_session`` checks the budget left after every other running session's
  reservation and reserves this session's share in the same step, or records the refusal
  and raises it: of two sessions racing for the last share exactly one starts;
* ``charge`` turns the reservation into a ledger entry just before this side's first noisy
  numbers leave; it refuses a session already aborted, so an interrupted run spends nothing;
* ``abort_session`` frees the reservation (never budget already charged);
* ``commit_release`` charges (if not yet), then stores the report and its signatures in the
  same step, the report made from the budget left after the charge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from cleanroom.contract import Contract
from cleanroom.report.document import Report


class Ledger(Protocol):
    """The privacy-budget ledger of one party, in the contract's ledger unit."""

    def require_budget(self, contract: Contract) -> None:
        """Raise PolicyError early when a session could not start (``begin_session`` re-checks)."""

    def begin_session(self, session_id: str, contract: Contract, peer: str) -> None:
        """Open the session and reserve its budget atomically, or audit the refusal and raise."""

    def charge(self, session_id: str, contract: Contract) -> None:
        """Spend the session's reservation now (once; refused if the session was aborted)."""

    def abort_session(self, session_id: str, contract_id: str | None, reason: str) -> None:
        """End the session without a release and free its reservation."""


class AuditLog(Protocol):
    def audit(
        self,
        event: str,
        *,
        session_id: str | None = None,
        contract_id: str | None = None,
        **detail: Any,
    ) -> None:
        """Append one entry to the tamper-evident log."""


class ReportStore(Protocol):
    def commit_release(
        self,
        session_id: str,
        contract: Contract,
        release: Report | Callable[[float], Report],
        list_sketch: bytes | None = None,
    ) -> Report:
        """Charge the budget (if not yet) and store the report with its signatures, atomically.

        ``release`` may be a function of the budget left after this session, so that the
        figure in the report is read in the same step that spends it. Also remembers
        ``list_sketch`` for later set-difference checks. Returns what was stored."""
        ...

    def add_signature(
        self, session_id: str, role: str, signature: bytes, public_key: bytes
    ) -> None:
        """Store the peer's signature over the stored report (already verified)."""


class ListSketches(Protocol):
    """This party's list sketches of earlier sessions (cleanroom/privacy/setdiff.py)."""

    def sketch_key(self) -> bytes:
        """The party's secret key for list sketches."""
        ...

    def recent_sketches(self, contract_id: str, limit: int = 20) -> list[tuple[str, bytes]]:
        """(session id, packed sketch) of the latest sessions under the contract, newest first."""
        ...

    def remember_list(self, session_id: str, contract: Contract, sketch: bytes) -> None:
        """Keep this session's packed list sketch."""


class SessionStore(Ledger, AuditLog, ReportStore, ListSketches, Protocol):
    """Everything a :class:`~cleanroom.protocol.brand.BrandSession` or
    :class:`~cleanroom.protocol.partner.PartnerSession` needs from outside."""
