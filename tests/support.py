"""Helpers for integration tests: brand sites with a real server, CLI processes."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cleanroom_client import Client

from cleanroom.brand.config import load_server_config
from cleanroom.brand.demo import brand_config_text, contract_text, synthetic_lists
from cleanroom.brand.servicer import build_server, shut_down
from cleanroom.contract import PROTOCOL_VERSION
from cleanroom.lists.tables import write_table
from cleanroom.privacy.calibration import load_contract
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.proto.cleanroom.v1 import session_pb2_grpc
from cleanroom.store.state import StateStore


@dataclass
class Deployment:
    directory: Path
    port: int
    server: grpc.Server

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, contract: str = "contract.toml", **overrides: object) -> Client:
        settings: dict[str, object] = {
            "contract": self.directory / contract,
            "certificate": self.directory / "certs/newsco.crt",
            "private_key": self.directory / "certs/newsco.key",
            "server_certificate": self.directory / "certs/acme.crt",
            "state": self.directory / "partner-state.db",
        }
        settings.update(overrides)
        return Client(self.address, **settings)  # type: ignore[arg-type]

    def brand_store(self) -> StateStore:
        return StateStore(self.directory / "brand-state.db")


# A name's certificate, private key and fingerprint (tests/conftest.py's ``certificates``).
Certificates = Mapping[str, tuple[Path, Path, str]]


def deploy_site(
    directory: Path,
    certificates: Certificates,
    *,
    idle_timeout: float = 300.0,
    session_timeout: float = 86400.0,
    second_partner: bool = False,
    **contract_fields: Any,
) -> Deployment:
    """A brand site: lists, certificates, contract(s), config, and a running server on port 0."""
    directory.mkdir(parents=True, exist_ok=True)
    lists = synthetic_lists(300, 500, seed=3)
    write_table(lists.crm, directory / "crm.csv")
    write_table(lists.audience, directory / "audience.csv")
    certs = directory / "certs"
    certs.mkdir(exist_ok=True)
    for name in ("acme", "newsco", "intruder"):
        cert, key, _ = certificates[name]
        shutil.copy(cert, certs / cert.name)
        shutil.copy(key, certs / key.name)
    fields: dict[str, Any] = {
        "min_set_size": 50,
        "min_overlap": 0,
        "mechanism": "none",
        **contract_fields,
    }
    text = contract_text(certificates["acme"][2], certificates["newsco"][2], **fields)
    (directory / "contract.toml").write_text(text)
    config = brand_config_text("contract.toml").replace(
        'state = "brand-state.db"',
        f'state = "brand-state.db"\nidle_timeout = {idle_timeout}\nsession_timeout = {session_timeout}',
    )
    if second_partner:  # another partner, "intruder", with its own contract
        other = contract_text(
            certificates["acme"][2],
            certificates["intruder"][2],
            contract_id="acme-x-intruder",
            **fields,
        )
        (directory / "intruder-contract.toml").write_text(other)
        config += '\n[[contracts]]\npath = "intruder-contract.toml"\npartner_certificate = "certs/intruder.crt"\n'
    (directory / "brand.toml").write_text(config)
    server, port = build_server(load_server_config(directory / "brand.toml"))
    return Deployment(directory, port, server)


BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The installed console script next to this interpreter (falls back to PATH)."""
    path = BIN / name
    return str(path) if path.exists() else name


def start_server(
    directory: Path,
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
    start_seconds: float = 120,
) -> tuple[subprocess.Popen[str], int]:
    """``cleanroom serve`` as a real process; returns it and the port it bound."""
    server = subprocess.Popen(
        [tool("cleanroom"), "serve", "--config", "brand.toml", *extra],
        cwd=directory,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert server.stderr is not None
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        if match:
            return server, int(match.group(1))
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.stderr.read()}")
    server.kill()
    raise AssertionError("server did not start")


@contextmanager
def brand_in_this_process(directory: Path) -> Iterator[Deployment]:
    """The site's ``brand.toml`` served from the test process, for tests about the partner's
    process. It stops as ``cleanroom serve`` stops on SIGTERM (each running session ended,
    recorded and logged), so the brand's state is final once the block is left."""
    server, port = build_server(load_server_config(directory / "brand.toml"))
    try:
        yield Deployment(directory, port, server)
    finally:
        shut_down(server, "the test is over")


def stop_server(server: subprocess.Popen[str]) -> str:
    """SIGTERM must stop the server promptly; if it does not, kill it and fail. Returns what
    the server wrote to stderr after it started listening."""
    try:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                raise AssertionError("the server ignored SIGTERM for 30 s") from None
        return server.stderr.read() if server.stderr is not None else ""
    finally:
        if server.stderr is not None:
            server.stderr.close()


# Spark in the tests (docs/design-decisions.md, the test suite's duration). Short-lived JVMs:
# quick compilation only, one garbage collector thread, and no bytecode verification of
# Spark's own jars (about a sixth of a JVM's start). The driver on loopback, no web UI, few
# shuffle partitions for small data, no whole-stage code generation or adaptive re-planning:
# on these small lists a cold JVM spent more compiling and re-planning each query than running
# it. None of these can change a result.
SPARK_JVM_OPTIONS = (
    "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    " -XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote"
)
SPARK_DRIVER_ARGS = (
    "--conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1"
    " --conf spark.driver.bindAddress=127.0.0.1 --conf spark.sql.shuffle.partitions=4"
    " --conf spark.sql.codegen.wholeStage=false --conf spark.sql.adaptive.enabled=false"
    f" --driver-java-options '{SPARK_JVM_OPTIONS}'"
)


# How the synthetic CRM (cleanroom.brand.demo.synthetic_lists) maps to key kinds and the segment.
BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


def partner_args(port: int, *extra: str) -> list[str]:
    """``cleanroom-client run`` against a demo site (run from the site's directory)."""
    return [
        tool("cleanroom-client"),
        "run",
        "--server",
        f"127.0.0.1:{port}",
        "--contract",
        "contract.toml",
        "--audience",
        "audience.csv",
        "--tls-cert",
        "certs/newsco.crt",
        "--tls-key",
        "certs/newsco.key",
        "--server-cert",
        "certs/acme.crt",
        "--state",
        "partner-state.db",
        "--quiet",
        *extra,
    ]


def raw_stub(
    deployment: Deployment, name: str
) -> tuple[grpc.Channel, session_pb2_grpc.CleanRoomStub]:
    """A hand-driven client presenting certs/NAME.crt, for sending what the library never would."""
    certs = deployment.directory / "certs"
    credentials = grpc.ssl_channel_credentials(
        (certs / "acme.crt").read_bytes(),
        (certs / f"{name}.key").read_bytes(),
        (certs / f"{name}.crt").read_bytes(),
    )
    channel = grpc.secure_channel(
        deployment.address, credentials, options=[("grpc.ssl_target_name_override", "acme")]
    )
    return channel, session_pb2_grpc.CleanRoomStub(channel)  # type: ignore[no-untyped-call]


def hello_for(contract_path: Path) -> pb.PartnerMessage:
    contract = load_contract(contract_path)
    return pb.PartnerMessage(
        hello=pb.Hello(
            protocol_version=PROTOCOL_VERSION,
            contract_id=contract.id,
            contract_sha256=contract.sha256,
            partner_records=500,
        )
    )


def state_rows(store: StateStore) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table but the audit log."""
    with sqlite3.connect(store.path) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            n: set(db.execute(f"SELECT * FROM {n}"))  # noqa: S608 - names from sqlite_master
            for n in names
            if n != "audit"
        }


def report_cell(
    attribute: str,
    segment: str,
    count: int | None,
    partner_count: int,
    suppressed: bool = False,
) -> dict[str, object]:
    """One (attribute, segment) cell of a report, as the brand releases it."""
    if suppressed:
        return {
            "attribute": attribute,
            "segment": segment,
            "count": None,
            "partner_count": partner_count,
            "index": None,
            "suppressed": True,
        }
    return {
        "attribute": attribute,
        "segment": segment,
        "count": count,
        "partner_count": partner_count,
        "index": None,
        "suppressed": False,
    }


def wait_for_abort(store: StateStore, seconds: float = 20.0) -> dict:
    """The servicer records the abort once its handler unwinds, just after the cancel."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        aborts = [e for e in store.audit_entries() if e["event"] == "abort"]
        if aborts:
            return aborts[-1]
        time.sleep(0.1)
    raise AssertionError(f"no abort recorded within {seconds:g} s")
