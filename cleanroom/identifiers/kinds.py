"""The identifier key kinds, match keys and normalization profiles a contract may name
(docs/reference/contract.md); their one home. Imports nothing, so that reading a contract
(every command that opens a state database) loads neither Arrow nor NumPy."""

from __future__ import annotations

RAW_KINDS: tuple[str, ...] = ("email", "phone", "maid")
HASHED_KINDS: tuple[str, ...] = ("email_sha256", "phone_sha256")
KEY_KINDS: tuple[str, ...] = RAW_KINDS + HASHED_KINDS
MATCH_KEYS: tuple[str, ...] = ("email", "phone", "maid")
MATCH_KEY_OF: dict[str, str] = {
    "email": "email",
    "email_sha256": "email",
    "phone": "phone",
    "phone_sha256": "phone",
    "maid": "maid",
}
PROFILES: tuple[str, ...] = ("pair-1", "google-1")
