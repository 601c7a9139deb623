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
    └── IntegrityError        a report signature or the audit log does not verify
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
)
from cleanroom.stats.report import Report
from cleanroom_client.client import Client

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
]
