"""The partner's client library for cleanroom.

    Client(server, contract=..., certificate=..., private_key=..., server_certificate=...)
        .run(audience, columns=...) -> Report    (DataFrame, Arrow table, CSV or Parquet path)

Exceptions (from :mod:`cleanroom.errors`; ``UnsavedReportError`` from
:mod:`cleanroom.transport.partner`):

    CleanroomError
    ├── InputError            a file, column, row or value cannot be used
    ├── ContractError         malformed, mismatched or expired contract
    ├── AuthenticationError   unknown or wrong certificate
    ├── PolicyError           budget exhausted, list below min_set_size, set difference
    ├── ConnectionLostError   brand unreachable, dropped mid-session, timed out
    ├── ProtocolError         the brand sent something invalid
    │   └── CryptoError
    ├── IntegrityError        a report signature or the audit log does not verify
    └── StorageError          the state database cannot be written (disk full, read-only)
        └── UnsavedReportError  the released report could not be recorded: .report holds it
    Interrupted (a KeyboardInterrupt)  Ctrl-C: says whether any budget was spent
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cleanroom.errors import (
    AuthenticationError,
    CleanroomError,
    ConnectionLostError,
    ContractError,
    CryptoError,
    InputError,
    IntegrityError,
    Interrupted,
    PolicyError,
    ProtocolError,
    StorageError,
)

if TYPE_CHECKING:
    from cleanroom.report.document import Report
    from cleanroom_client.client import Client, UnsavedReportError


def __getattr__(name: str) -> Any:
    """``Client`` and ``Report`` on first use: `cleanroom-client --help` must not pay for
    gRPC, pandas and pyarrow."""
    if name in ("Client", "UnsavedReportError"):
        from cleanroom_client import client

        return getattr(client, name)
    if name == "Report":
        from cleanroom.report.document import Report

        return Report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthenticationError",
    "CleanroomError",
    "Client",
    "ConnectionLostError",
    "ContractError",
    "CryptoError",
    "InputError",
    "IntegrityError",
    "Interrupted",
    "PolicyError",
    "ProtocolError",
    "Report",
    "StorageError",
    "UnsavedReportError",
]
