"""The one exception tree of cleanroom, and the exit code each error maps to
(docs/reference/exit-codes.md lists every exit code, 0, 2 and 130 included).

    CleanroomError                 exit 1  (unexpected)
    ├── InputError                 exit 3  a file, column, row or value the user supplied
    ├── ContractError              exit 4  malformed, mismatched or expired contract
    ├── AuthenticationError        exit 5  unknown or wrong certificate, permission denied
    ├── PolicyError                exit 6  release refused: budget, min_set_size, set difference
    ├── ConnectionLostError        exit 7  peer down, dropped mid-session, timed out
    ├── ProtocolError              exit 8  the peer broke the protocol
    │   └── CryptoError            exit 8  a bad point or ciphertext (deliberately opaque)
    ├── IntegrityError             exit 9  the audit log or a signature does not verify
    └── StorageError               exit 10 a state database cannot be read or written

A Ctrl-C during a partner session is raised as :class:`Interrupted`, a
``KeyboardInterrupt`` (exit 130) that says what became of the session and its budget.

Every message names the file, row, column, field or setting at fault, and never
contains a full identifier.
"""

from __future__ import annotations


class CleanroomError(Exception):
    """Base of every error cleanroom raises on purpose."""

    exit_code = 1


class InputError(CleanroomError):
    """The user's data or configuration cannot be used as given."""

    exit_code = 3


class ContractError(CleanroomError):
    """The contract is malformed, differs between the parties, or has expired."""

    exit_code = 4


class AuthenticationError(CleanroomError):
    """The peer's certificate is unknown, or not the one the contract pins."""

    exit_code = 5


class PolicyError(CleanroomError):
    """A release rule refuses the session: budget, minimum set size, set difference."""

    exit_code = 6


class ConnectionLostError(CleanroomError):
    """The peer is unreachable, went away mid-session, or stalled past a timeout."""

    exit_code = 7


class ProtocolError(CleanroomError):
    """The peer sent a message that is out of order, malformed or inconsistent."""

    exit_code = 8


class CryptoError(ProtocolError):
    """A received point or ciphertext is invalid.

    One opaque error for every cryptographic failure (like pyca's ``InvalidToken``),
    so a peer learns nothing from which check failed.
    """

    exit_code = 8

    def __init__(self) -> None:
        super().__init__("invalid cryptographic element received from the peer")

    def __reduce__(self) -> tuple[type[CryptoError], tuple[()]]:
        """Raised on Spark executors too: unpickle without the message argument, or the job
        fails with a TypeError instead of this error."""
        return (type(self), ())


class IntegrityError(CleanroomError):
    """Stored state does not verify: an edited audit log, a bad report signature."""

    exit_code = 9


class StorageError(CleanroomError):
    """A state database cannot be written or read: disk full, read-only file or directory,
    locked by another program. Nothing is half-written: SQLite rolls the transaction back."""

    exit_code = 10


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a session; the message says whether the session was aborted and
    whether any privacy budget was spent, and why. Still a ``KeyboardInterrupt``, so no
    ``except Exception`` swallows it."""
