"""The partner's client library for cleanroom.

    Client(server, contract=..., certificate=..., private_key=..., server_certificate=...)
        .run(audience, columns=...) -> Report    (DataFrame, Arrow table, CSV or Parquet path)

Exceptions (all from :mod:`cleanroom.errors`):

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
"""

from cleanroom.errors import (
    AuthenticationError,
    CleanroomError,
    ConnectionLostError,
    ContractError,
    CryptoError,
    InputError,
    IntegrityError,
    PolicyError,
    ProtocolError,
    StorageError,
)
from cleanroom.stats.report import Report
from cleanroom_client.client import Client, UnsavedReportError

__all__ = [
    "AuthenticationError",
    "CleanroomError",
    "Client",
    "ConnectionLostError",
    "ContractError",
    "CryptoError",
    "InputError",
    "IntegrityError",
    "PolicyError",
    "ProtocolError",
    "Report",
    "StorageError",
    "UnsavedReportError",
]
