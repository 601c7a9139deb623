"""The brand's server configuration (``brand.toml``, docs/howto/brand.md)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanroom.cli_support import check_listen, check_log_format, check_seconds
from cleanroom.contract import Contract
from cleanroom.errors import AuthenticationError, InputError
from cleanroom.identity import (
    check_pinned,
    fingerprint,
    load_certificate,
    load_key_pair,
    require_distinct_signing_keys,
    require_signing_key,
)
from cleanroom.lists.tables import TABLE_PREFIX, CsvDialect, csv_dialect
from cleanroom.privacy.calibration import load_contract
from cleanroom.transport.grpc import DEFAULT_IDLE_TIMEOUT, is_loopback

DEFAULT_SESSION_TIMEOUT = 86400.0  # a day: far above an honest 100M-row session on one machine
# An honest client sends Hello as soon as the stream opens (its audience is prepared before
# it connects), so a few seconds is plenty; a silent stream holds a session slot until then.
DEFAULT_HELLO_TIMEOUT = 10.0


@dataclass(frozen=True)
class ContractEntry:
    contract: Contract
    partner_certificate: bytes  # PEM, trusted for mutual TLS and pinned by the contract


@dataclass(frozen=True)
class ServerConfig:
    source: Path
    listen: str
    state: Path
    crm: Path | str  # a file, or table:NAME for --engine spark
    columns: dict[str, str]
    contracts: list[ContractEntry]
    certificate: Path | None
    private_key: Path | None
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    hello_timeout: float = DEFAULT_HELLO_TIMEOUT
    metrics_listen: str | None = None  # HOST:PORT for Prometheus metrics; None: not served
    log_format: str = "text"
    crm_dialect: CsvDialect = field(default_factory=lambda: CsvDialect(style="toml"))


_SETTINGS = {
    "server": {
        "listen",
        "state",
        "idle_timeout",
        "session_timeout",
        "hello_timeout",
        "metrics_listen",
        "log_format",
    },
    "tls": {"certificate", "private_key"},
    "crm": {"path", "columns", "delimiter", "encoding"},
    "contracts": {"path", "partner_certificate"},
}


def _require(table: dict[str, Any], name: str, key: str, source: Path, kind: type = str) -> Any:
    if key not in table:
        raise InputError(f"{source}: [{name}] {key}: missing setting")
    value = table[key]
    if not isinstance(value, kind):
        raise InputError(f"{source}: [{name}] {key}: must be a {kind.__name__}")
    return value


def load_server_config(path: str | Path, *, insecure: bool = False) -> ServerConfig:
    """Read and check the config: every file exists, every certificate is the pinned one."""
    source = Path(path)
    try:
        doc = tomllib.loads(source.read_text())
    except FileNotFoundError:
        raise InputError(f"server config not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read server config {source}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    base = source.parent
    _check_settings(doc, source)

    def resolve(value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else base / candidate

    server = doc.get("server", {})
    listen = _require(server, "server", "listen", source)
    if insecure and not is_loopback(listen):
        raise InputError(
            f"{source}: [server] listen = {listen!r}: --insecure is only allowed on a loopback address"
        )
    idle_timeout = check_seconds(
        server.get("idle_timeout", DEFAULT_IDLE_TIMEOUT), f"{source}: [server] idle_timeout"
    )
    session_timeout = check_seconds(
        server.get("session_timeout", DEFAULT_SESSION_TIMEOUT),
        f"{source}: [server] session_timeout",
    )
    hello_timeout = check_seconds(
        server.get("hello_timeout", DEFAULT_HELLO_TIMEOUT), f"{source}: [server] hello_timeout"
    )
    metrics_listen = server.get("metrics_listen")
    if metrics_listen is not None:
        metrics_listen = check_listen(metrics_listen, f"{source}: [server] metrics_listen")
    log_format = check_log_format(
        server.get("log_format", "text"), f"{source}: [server] log_format"
    )
    state = resolve(_require(server, "server", "state", source))

    crm_table = doc.get("crm", {})
    crm_path = _require(crm_table, "crm", "path", source)
    crm = crm_path if crm_path.startswith(TABLE_PREFIX) else resolve(crm_path)
    columns = crm_table.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise InputError(
            f"{source}: [crm] columns: must map key kinds and 'segment' to column names"
        )

    dialect_settings = {}
    for key in ("delimiter", "encoding"):
        if key in crm_table:
            dialect_settings[key] = _require(crm_table, "crm", key, source)
    try:
        crm_dialect = csv_dialect(**dialect_settings, style="toml")
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None

    certificate = private_key = None
    brand_fingerprint = brand_signing_key = None
    if not insecure:
        tls = doc.get("tls", {})
        certificate = resolve(_require(tls, "tls", "certificate", source))
        private_key = resolve(_require(tls, "tls", "private_key", source))
        certificate_pem, _ = load_key_pair(
            certificate, private_key, f"{source}: [tls] certificate", f"{source}: [tls] private_key"
        )
        brand_fingerprint = fingerprint(load_certificate(certificate, "brand certificate"))
        brand_signing_key = require_signing_key(certificate_pem, f"{source}: [tls] certificate")

    entries = doc.get("contracts", [])
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{source}: [[contracts]]: list at least one contract")
    contracts: list[ContractEntry] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        name = f"contracts[{i}]"
        contract = load_contract(resolve(_require(entry, name, "path", source)))
        if contract.id in seen:
            raise InputError(f"{source}: [{name}]: contract id '{contract.id}' is listed twice")
        seen.add(contract.id)
        if brand_fingerprint is not None and brand_fingerprint != contract.brand.certificate_sha256:
            raise AuthenticationError(
                f"{source}: [tls] certificate has fingerprint {brand_fingerprint[:16]}..., but contract "
                f"'{contract.id}' pins {contract.brand.certificate_sha256[:16]}... for the brand"
            )
        partner_pem = b""
        if not insecure:
            partner_pem = check_pinned(
                resolve(_require(entry, name, "partner_certificate", source)),
                contract.partner.certificate_sha256,
                "partner",
                f"[{name}] partner_certificate",
            )
            assert brand_signing_key is not None
            require_distinct_signing_keys(
                brand_signing_key,
                require_signing_key(partner_pem, f"{source}: [{name}] partner_certificate"),
                f"{source}: [{name}] partner_certificate",
            )
        contracts.append(ContractEntry(contract=contract, partner_certificate=partner_pem))
    return ServerConfig(
        source=source,
        listen=listen,
        state=state,
        crm=crm,
        columns=dict(columns),
        contracts=contracts,
        certificate=certificate,
        private_key=private_key,
        idle_timeout=idle_timeout,
        session_timeout=session_timeout,
        hello_timeout=hello_timeout,
        metrics_listen=metrics_listen,
        log_format=log_format,
        crm_dialect=crm_dialect,
    )


def _check_settings(doc: dict[str, Any], source: Path) -> None:
    """A misspelt setting must not be silently ignored."""
    for table, value in doc.items():
        if table not in _SETTINGS:
            raise InputError(
                f"{source}: [{table}]: unknown table (expected {', '.join(_SETTINGS)})"
            )
        for entry in value if isinstance(value, list) else [value]:
            if not isinstance(entry, dict):
                raise InputError(f"{source}: [{table}]: must be a table")
            unknown = set(entry) - _SETTINGS[table]
            if unknown:
                raise InputError(f"{source}: [{table}] {sorted(unknown)[0]}: unknown setting")
