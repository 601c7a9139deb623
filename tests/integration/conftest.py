"""A running brand site for gRPC tests: a real server with mutual TLS on port 0."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cleanroom_client import Client

from cleanroom.demo import brand_config_text, contract_text, synthetic_lists
from cleanroom.io import write_table
from cleanroom.server.config import load_server_config
from cleanroom.server.service import build_server
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


def _deploy(
    directory: Path,
    certificates,
    *,
    idle_timeout: float = 300.0,
    second_partner: bool = False,
    **contract_fields: object,
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
    fields = {"min_set_size": 50, "min_overlap": 0, "mechanism": "none", **contract_fields}
    text = contract_text(certificates["acme"][2], certificates["newsco"][2], **fields)  # type: ignore[arg-type]
    (directory / "contract.toml").write_text(text)
    config = brand_config_text("contract.toml").replace(
        'state = "brand-state.db"', f'state = "brand-state.db"\nidle_timeout = {idle_timeout}'
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


@pytest.fixture
def deploy(tmp_path, certificates) -> Iterator[Callable[..., Deployment]]:
    """Build sites on demand; every server is stopped at the end of the test."""
    started: list[Deployment] = []

    def build(**options: object) -> Deployment:
        deployed = _deploy(tmp_path / f"site{len(started)}", certificates, **options)
        started.append(deployed)
        return deployed

    yield build
    for deployed in started:
        deployed.server.stop(grace=None)
