"""Each way a connection fails, against real sockets and servers on loopback: the exit code
says whether to retry (7), fix a certificate (5) or fix a setting (3)."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cleanroom_client import Client
from support import partner_args, tool

from cleanroom.brand.config import load_server_config
from cleanroom.brand.servicer import build_server
from cleanroom.contract import PROTOCOL_VERSION
from cleanroom.errors import AuthenticationError, ConnectionLostError, InputError
from cleanroom.privacy.calibration import load_contract
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.proto.cleanroom.v1 import session_pb2_grpc
from cleanroom.store.state import StateStore


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts TCP connections and never says a word: a hung server."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    listener.close()
    for connection in held:
        connection.close()


@pytest.fixture
def site(deploy):
    return deploy()


def client_for(site, address: str, **overrides: object) -> Client:
    settings: dict[str, object] = {
        "contract": site.directory / "contract.toml",
        "certificate": site.directory / "certs/newsco.crt",
        "private_key": site.directory / "certs/newsco.key",
        "server_certificate": site.directory / "certs/acme.crt",
        "state": site.directory / "partner-state.db",
    }
    settings.update(overrides)
    return Client(address, **settings)  # type: ignore[arg-type]


def nothing_spent(site) -> bool:
    partner = StateStore(site.directory / "partner-state.db")
    return partner.budget_spent("acme-x-newsco-demo") == 0


def test_a_silent_server_is_a_connection_error_not_a_certificate_one(site, silent_port):
    client = client_for(site, f"127.0.0.1:{silent_port}", connect_timeout=0.5)
    with pytest.raises(ConnectionLostError, match=r"no answer from the brand server .* 0\.5 s"):
        client.run(site.directory / "audience.csv")
    assert nothing_spent(site)


def test_a_server_with_another_certificate_is_an_authentication_error(site):
    certs = site.directory / "certs"
    impostor = grpc.server(futures.ThreadPoolExecutor(2))
    credentials = grpc.ssl_server_credentials(
        [((certs / "intruder.key").read_bytes(), (certs / "intruder.crt").read_bytes())],
        root_certificates=(certs / "newsco.crt").read_bytes(),
        require_client_auth=True,
    )
    port = impostor.add_secure_port("127.0.0.1:0", credentials)
    impostor.start()
    try:
        with pytest.raises(AuthenticationError, match="other than server_certificate,"):
            client_for(site, f"127.0.0.1:{port}").run(site.directory / "audience.csv")
    finally:
        impostor.stop(grace=None)
    assert nothing_spent(site)


def test_a_plain_server_is_a_connection_error(site):
    plain = grpc.server(futures.ThreadPoolExecutor(2))
    port = plain.add_insecure_port("127.0.0.1:0")
    plain.start()
    try:
        with pytest.raises(ConnectionLostError, match="does not speak TLS"):
            client_for(site, f"127.0.0.1:{port}").run(site.directory / "audience.csv")
    finally:
        plain.stop(grace=None)


def test_a_plain_client_at_the_tls_server_is_a_connection_error(site):
    client = Client(
        site.address,
        contract=site.directory / "contract.toml",
        state=site.directory / "partner-state.db",
        insecure=True,
    )
    with pytest.raises(ConnectionLostError, match="a TLS server closes plain connections"):
        client.run(site.directory / "audience.csv")


def test_a_server_at_its_call_limit_says_try_later(site):
    server, port = build_server(load_server_config(site.directory / "brand.toml"), max_sessions=1)
    certs = site.directory / "certs"
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        grpc.ssl_channel_credentials(
            (certs / "acme.crt").read_bytes(),
            (certs / "newsco.key").read_bytes(),
            (certs / "newsco.crt").read_bytes(),
        ),
        options=[("grpc.ssl_target_name_override", "acme")],
    )
    contract = load_contract(site.directory / "contract.toml")
    hello = pb.PartnerMessage(
        hello=pb.Hello(
            protocol_version=PROTOCOL_VERSION,
            contract_id=contract.id,
            contract_sha256=contract.sha256,
            partner_records=500,
        )
    )
    release = threading.Event()

    def hello_then_wait():
        yield hello
        release.wait(60)

    try:
        held = session_pb2_grpc.CleanRoomStub(channel).Session(hello_then_wait(), timeout=120)
        next(held)  # the brand answered: the one call it allows is now running
        with pytest.raises(ConnectionLostError, match="busy; try again later"):
            client_for(site, f"127.0.0.1:{port}").run(site.directory / "audience.csv")
    finally:
        release.set()
        channel.close()
        server.stop(grace=None)
    assert nothing_spent(site)


def occupied_config(site, holder: socket.socket) -> Path:
    port = holder.getsockname()[1]
    config = (site.directory / "brand.toml").read_text()
    assert 'listen = "127.0.0.1:0"' in config
    busy = site.directory / "busy.toml"
    busy.write_text(config.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'))
    return busy


def test_a_port_in_use_is_an_input_error_naming_the_setting(site):
    with socket.create_server(("127.0.0.1", 0)) as holder:
        busy = occupied_config(site, holder)
        port = holder.getsockname()[1]
        with pytest.raises(InputError) as refused:
            build_server(load_server_config(busy))
    assert str(refused.value).startswith(f"{busy}: [server] listen = '127.0.0.1:{port}'")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # no traceback, no gRPC log lines
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


@pytest.mark.slow
def test_cli_exit_codes_for_connection_settings(site, silent_port, tmp_path):
    directory = site.directory
    hung = partner_args(silent_port, "--connect-timeout", "1", "--out", str(tmp_path / "r.json"))
    one_line_error(run(*hung, cwd=directory), 7, "no answer from the brand server")
    assert not (tmp_path / "r.json").exists()
    assert nothing_spent(site)

    wrong_key = partner_args(site.port, "--out", str(tmp_path / "r.json"))
    wrong_key[wrong_key.index("--tls-key") + 1] = "certs/intruder.key"
    one_line_error(run(*wrong_key, cwd=directory), 3, "--tls-key certs/intruder.key does not match")
    for option, value in (("--timeout", "-5"), ("--workers", "-1"), ("--connect-timeout", "0")):
        bad = partner_args(site.port, option, value)
        one_line_error(run(*bad, cwd=directory), 3, f"error: {option}: must be")


@pytest.mark.slow
def test_cli_serve_refuses_a_busy_port_and_a_foreign_key(site):
    directory = site.directory
    with socket.create_server(("127.0.0.1", 0)) as holder:
        occupied_config(site, holder)
        busy = run(tool("cleanroom"), "serve", "--config", "busy.toml", cwd=directory)
    one_line_error(busy, 3, "busy.toml: [server] listen = '127.0.0.1:")

    config = (directory / "brand.toml").read_text()
    (directory / "foreign-key.toml").write_text(
        config.replace("certs/acme.key", "certs/newsco.key")
    )
    foreign = run(tool("cleanroom"), "serve", "--config", "foreign-key.toml", cwd=directory)
    one_line_error(
        foreign, 3, "foreign-key.toml: [tls] private_key certs/newsco.key does not match"
    )


@pytest.mark.slow
def test_cli_certs_init_stays_inside_its_directory(tmp_path):
    (tmp_path / "certs").mkdir()
    result = run(tool("cleanroom"), "certs", "init", "certs", "--name", "../escaped", cwd=tmp_path)
    one_line_error(result, 3, "--name '../escaped': not a valid party name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["certs"]
