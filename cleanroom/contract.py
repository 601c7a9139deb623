"""The contract both parties sign: what may be matched, released, and at what privacy cost.

Both sides hold the byte-identical TOML file. Its SHA-256 (of the exact bytes) binds
every session: it is part of the hash-to-curve domain separation tag, it is compared at
Hello, and it is in the report. A contract that differs by one byte (even a line ending)
is a different contract, on purpose: ``cleanroom contract hash FILE`` shows it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from typing import Any

import phonenumbers

from cleanroom.errors import ContractError
from cleanroom.identifiers.kinds import MATCH_KEYS, PROFILES

PROTOCOL_VERSION = 2  # 2: dummy matches, padding and B (issue 9); 1 peers are refused at Hello
#: The noise mechanisms a contract may name (docs/privacy.md); cleanroom.privacy implements them.
DISCRETE_GAUSSIAN = "discrete_gaussian"
DISCRETE_LAPLACE = "discrete_laplace"
NO_NOISE = "none"
MECHANISMS = (DISCRETE_GAUSSIAN, DISCRETE_LAPLACE, NO_NOISE)
DEFAULT_MECHANISM = DISCRETE_GAUSSIAN
SET_DIFFERENCE_ACTIONS = ("refuse", "flag")
DEFAULT_SEGMENT = "all"
MAX_SEGMENTS = 16
MAX_ATTRIBUTES = 128
#: Names an attribute may not take: the key kinds (``--column email=...`` would be
#: ambiguous, and an audience column named ``email`` is read as identifiers), the brand's
#: ``segment`` mapping and the lookalike export's default id column.
RESERVED_ATTRIBUTE_NAMES = (
    "email",
    "phone",
    "maid",
    "email_sha256",
    "phone_sha256",
    "segment",
    "user_id",
)

#: The largest noise bound (``NoiseMechanism.bound``) a contract may imply for either side.
#: The brand decrypts attribute sums over ``[-(records + bound), records + bound]`` and
#: :mod:`cleanroom.crypto.elgamal` decrypts up to ``2**40``; the other half of that range is
#: left for the partner's list.
MAX_NOISE_BOUND = 2**39

#: The most dummy records a partner may add to one session (every match pattern at its
#: maximum), and the most padding elements a brand may add to one (segment, key) group:
#: a contract whose ``privacy.epsilon_match`` would need more is refused.
MAX_DUMMY_RECORDS = 2**20

#: Floating-point slack when budget amounts add up: a ledger is a sum of many session shares.
BUDGET_SLACK = 1e-9


def budget_allows(total: float, committed: float, per_session: float) -> bool:
    """Whether one more session spending ``per_session`` fits in ``total`` beside the
    ``committed`` amount (spent or reserved): the one budget inequality, for the contract's
    own terms and for every ledger."""
    return committed + per_session <= total + BUDGET_SLACK


def budget_left(total: float, committed: float) -> float:
    """What a budget of ``total`` has left once ``committed`` is spent or reserved."""
    return max(0.0, total - committed)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def is_valid_name(value: str) -> bool:
    """A party, contract or segment name: letters, digits, ``. _ -``, starting alphanumeric."""
    return _NAME.fullmatch(value) is not None


_SCHEMA: dict[str, set[str]] = {
    "contract": {"id", "expires", "normalization", "default_region"},
    "parties": {"brand", "partner"},
    "match": {"keys"},
    "release": {
        "min_set_size",
        "min_overlap",
        "segments",
        "attributes",
        "max_invalid_fraction",
        "set_difference_min",
        "set_difference_action",
    },
    "privacy": {"mechanism", "epsilon_per_session", "epsilon_total", "delta", "epsilon_match"},
}
_PARTY_FIELDS = {"name", "certificate_sha256"}


@dataclass(frozen=True)
class Party:
    name: str
    certificate_sha256: str


@dataclass(frozen=True)
class Contract:
    """A validated contract. Build it with :func:`cleanroom.privacy.calibration.load_contract`
    or :func:`~cleanroom.privacy.calibration.parse_contract`."""

    id: str
    expires: dt.date
    normalization: str
    default_region: str
    brand: Party
    partner: Party
    keys: tuple[str, ...]
    min_set_size: int
    min_overlap: int
    segments: tuple[str, ...]
    attributes: tuple[str, ...]
    max_invalid_fraction: float
    set_difference_min: int
    set_difference_action: str
    mechanism: str
    epsilon_per_session: float
    epsilon_total: float
    delta: float
    epsilon_match: float | None  # None: the default share (cleanroom.privacy.accounting)
    #: What one session spends from each ledger, and what a ledger may hold in all: rho
    #: (zero-concentrated DP) under discrete_gaussian, epsilon otherwise (docs/privacy.md).
    ledger_per_session: float
    ledger_total: float
    sha256: str
    source: str

    @property
    def ledger_unit(self) -> str:
        return "rho" if self.mechanism == DISCRETE_GAUSSIAN else "epsilon"

    @property
    def overlap_only(self) -> bool:
        return not self.attributes

    def check_not_expired(self, today: dt.date | None = None) -> None:
        today = today or dt.datetime.now(dt.UTC).date()
        if today > self.expires:
            raise ContractError(
                f"{self.source}: contract '{self.id}' expired on {self.expires.isoformat()} "
                "(field contract.expires)"
            )

    def hash_to_curve_dst(self) -> bytes:
        """Domain separation tag: protocol version and contract hash (RFC 9380 §3.1)."""
        return (
            f"CLEANROOM-V{PROTOCOL_VERSION}-{self.sha256}-with-curve25519_XMD:SHA-512_ELL2_RO_"
        ).encode()


def contract_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_terms(data: bytes, source: str = "<contract>") -> Contract:
    """The contract's terms, each field checked; its ledger amounts are NaN (so no budget
    check passes) until :func:`cleanroom.privacy.calibration.calibrate` sets them.
    Sessions take a contract from :func:`cleanroom.privacy.calibration.load_contract`."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ContractError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{source}: not valid TOML: {exc}") from None
    return _Validator(doc, source).contract(contract_sha256(data))


class _Validator:
    """Checks each field and names it (``release.min_overlap``) in every message."""

    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.doc = doc
        self.source = source

    def fail(self, field: str, problem: str) -> ContractError:
        return ContractError(f"{self.source}: {field}: {problem}")

    def table(self, name: str, required: bool = True) -> dict[str, Any]:
        value = self.doc.get(name)
        if value is None:
            if required:
                raise self.fail(f"[{name}]", "missing table")
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"[{name}]", "must be a table")
        unknown = set(value) - _SCHEMA[name]
        if unknown:
            raise self.fail(f"{name}.{sorted(unknown)[0]}", "unknown field")
        return value

    def get(
        self, table: dict[str, Any], table_name: str, key: str, kind: type, default: Any = None
    ) -> Any:
        field = f"{table_name}.{key}"
        if key not in table:
            if default is None:
                raise self.fail(field, "missing field")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool):
            raise self.fail(field, "must be an integer")
        if not isinstance(value, kind):
            raise self.fail(field, f"must be {_KIND_NAMES.get(kind, kind.__name__)}")
        return value

    def names(
        self, table: dict[str, Any], table_name: str, key: str, allowed: tuple[str, ...] | None
    ) -> tuple[str, ...]:
        field = f"{table_name}.{key}"
        values = self.get(table, table_name, key, list, default=[])
        seen: set[str] = set()
        for value in values:
            if not isinstance(value, str) or not _NAME.match(value):
                raise self.fail(field, f"{value!r} is not a valid name (letters, digits, . _ -)")
            if allowed is not None and value not in allowed:
                raise self.fail(field, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
            if value in seen:
                raise self.fail(field, f"{value!r} is listed twice")
            seen.add(value)
        return tuple(values)

    def party(self, parties: dict[str, Any], role: str) -> Party:
        field = f"parties.{role}"
        table = parties.get(role)
        if not isinstance(table, dict):
            raise self.fail(f"[{field}]", "missing table")
        unknown = set(table) - _PARTY_FIELDS
        if unknown:
            raise self.fail(f"{field}.{sorted(unknown)[0]}", "unknown field")
        name = self.get(table, field, "name", str)
        if not _NAME.match(name):
            raise self.fail(f"{field}.name", f"{name!r} is not a valid name")
        fingerprint = self.get(table, field, "certificate_sha256", str).replace(":", "").lower()
        if not _FINGERPRINT.match(fingerprint):
            raise self.fail(
                f"{field}.certificate_sha256",
                "must be the 64 hex digits printed by 'cleanroom certs init'",
            )
        return Party(name=name, certificate_sha256=fingerprint)

    def contract(self, sha256: str) -> Contract:
        unknown = set(self.doc) - set(_SCHEMA)
        if unknown:
            raise self.fail(f"[{sorted(unknown)[0]}]", "unknown table")
        head = self.table("contract")
        contract_id = self.get(head, "contract", "id", str)
        if not _NAME.match(contract_id):
            raise self.fail(
                "contract.id", f"{contract_id!r} is not a valid id (letters, digits, . _ -)"
            )
        expires = self.get(head, "contract", "expires", dt.date)
        if isinstance(expires, dt.datetime):
            raise self.fail("contract.expires", "must be a date (YYYY-MM-DD), not a date-time")
        normalization = self.get(head, "contract", "normalization", str)
        if normalization not in PROFILES:
            raise self.fail(
                "contract.normalization",
                f"unknown profile {normalization!r}; allowed: {', '.join(PROFILES)}",
            )
        region = self.get(head, "contract", "default_region", str).upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise self.fail("contract.default_region", f"{region!r} is not an ISO 3166 region code")

        parties = self.table("parties")
        brand = self.party(parties, "brand")
        partner = self.party(parties, "partner")
        if brand.certificate_sha256 == partner.certificate_sha256:
            raise self.fail("parties", "brand and partner must have different certificates")

        match = self.table("match")
        keys = self.names(match, "match", "keys", MATCH_KEYS)
        if not keys:
            raise self.fail("match.keys", f"list at least one of {', '.join(MATCH_KEYS)}")

        release = self.table("release")
        min_set_size = self.get(release, "release", "min_set_size", int)
        min_overlap = self.get(release, "release", "min_overlap", int)
        for field, value in (("min_set_size", min_set_size), ("min_overlap", min_overlap)):
            if value < 0:
                raise self.fail(f"release.{field}", "must be zero or more")
        segments = self.names(release, "release", "segments", None) or (DEFAULT_SEGMENT,)
        if len(segments) > MAX_SEGMENTS:
            raise self.fail("release.segments", f"at most {MAX_SEGMENTS} segments")
        attributes = self.names(release, "release", "attributes", None)
        if len(attributes) > MAX_ATTRIBUTES:
            raise self.fail("release.attributes", f"at most {MAX_ATTRIBUTES} attributes")
        for attribute in attributes:
            if attribute in RESERVED_ATTRIBUTE_NAMES:
                raise self.fail(
                    "release.attributes",
                    f"{attribute!r} is a reserved column name; reserved: "
                    f"{', '.join(RESERVED_ATTRIBUTE_NAMES)}",
                )
        max_invalid = self.get(release, "release", "max_invalid_fraction", float)
        if not 0.0 <= max_invalid <= 1.0:
            raise self.fail("release.max_invalid_fraction", "must be between 0 and 1")
        set_difference_min = self.get(release, "release", "set_difference_min", int, default=50)
        if set_difference_min < 0:
            raise self.fail("release.set_difference_min", "must be zero or more")
        set_difference_action = self.get(
            release, "release", "set_difference_action", str, default="refuse"
        )
        if set_difference_action not in SET_DIFFERENCE_ACTIONS:
            raise self.fail(
                "release.set_difference_action",
                f"must be one of {', '.join(SET_DIFFERENCE_ACTIONS)}",
            )

        privacy = self.table("privacy")
        mechanism = self.get(privacy, "privacy", "mechanism", str, default=DEFAULT_MECHANISM)
        if mechanism not in MECHANISMS:
            raise self.fail(
                "privacy.mechanism", f"unknown {mechanism!r}; allowed: {', '.join(MECHANISMS)}"
            )
        epsilon = self.get(privacy, "privacy", "epsilon_per_session", float)
        epsilon_total = self.get(privacy, "privacy", "epsilon_total", float)
        if not 0 < epsilon < float("inf"):
            raise self.fail("privacy.epsilon_per_session", "must be a finite number greater than 0")
        if not (epsilon_total < float("inf") and budget_allows(epsilon_total, 0.0, epsilon)):
            raise self.fail(
                "privacy.epsilon_total", "must be finite and at least epsilon_per_session"
            )
        if "delta" not in privacy and mechanism != NO_NOISE:
            needs = (
                "the discrete Gaussian's (epsilon, delta) guarantee"
                if mechanism == DISCRETE_GAUSSIAN
                else "the dummy matches and padding"
            )
            raise self.fail("privacy.delta", f"missing field: {needs} needs it (e.g. delta = 1e-9)")
        delta = self.get(privacy, "privacy", "delta", float, default=1e-9)
        if not 0.0 < delta < 1e-3:
            raise self.fail("privacy.delta", "must be between 0 and 0.001")
        epsilon_match: float | None = None
        if "epsilon_match" in privacy:
            epsilon_match = self.get(privacy, "privacy", "epsilon_match", float)
            if not 0 < epsilon_match < float("inf"):
                raise self.fail("privacy.epsilon_match", "must be a finite number greater than 0")

        contract = Contract(
            id=contract_id,
            expires=expires,
            normalization=normalization,
            default_region=region,
            brand=brand,
            partner=partner,
            keys=keys,
            min_set_size=min_set_size,
            min_overlap=min_overlap,
            segments=segments,
            attributes=attributes,
            max_invalid_fraction=max_invalid,
            set_difference_min=set_difference_min,
            set_difference_action=set_difference_action,
            mechanism=mechanism,
            epsilon_per_session=epsilon,
            epsilon_total=epsilon_total,
            delta=delta,
            epsilon_match=epsilon_match,
            ledger_per_session=math.nan,
            ledger_total=math.nan,
            sha256=sha256,
            source=self.source,
        )
        return contract


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    list: "a list",
    dt.date: "a date",
}
