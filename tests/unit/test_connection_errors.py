"""How the partner reads each way a connection fails, and the checks on connection settings.

The gRPC details below are the strings grpcio's C core reports for each case (recorded
against a real server; see tests/integration/test_connection_errors.py for the live ones).
"""

from __future__ import annotations

import inspect
import math
import os
import re
from pathlib import Path

import grpc
import pytest
from cleanroom_client import Client
from cleanroom_client.cli import flag_names, partner_client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cleanroom import errors
from cleanroom.brand.config import load_server_config
from cleanroom.brand.demo import brand_config_text, contract_text
from cleanroom.cli_support import check_seconds, check_workers
from cleanroom.errors import (
    AuthenticationError,
    ConnectionLostError,
    InputError,
    PolicyError,
    ProtocolError,
)
from cleanroom.identity import fingerprint, init_certificate, load_certificate, load_key_pair
from cleanroom.transport.grpc import ERROR_METADATA
from cleanroom.transport.partner import PARAMETERS, PartnerClient, translate

SERVER = "127.0.0.1:50051"
ADDRESS = "failed to connect to all addresses; last error: "
VERIFY_FAILED = (
    ADDRESS + "UNKNOWN: ipv4:127.0.0.1:50051: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: "
    "self signed certificate: OK"
)
REFUSED_OUR_CERTIFICATE = ADDRESS + "UNAVAILABLE: ipv4:127.0.0.1:50051: Socket closed"
CLOSED_IN_HANDSHAKE = (
    ADDRESS + "UNAVAILABLE: ipv4:127.0.0.1:50051: Handshake read failed (Socket closed)"
)
HUNG_IN_HANDSHAKE = (
    ADDRESS + "UNAVAILABLE: ipv4:127.0.0.1:50051: Handshake read failed (Endpoint closing)"
)
PORT_CLOSED = (
    ADDRESS + "UNKNOWN: ipv4:127.0.0.1:50051: Failed to connect to remote host: Connection refused"
)
NOT_TLS = (
    ADDRESS + "UNKNOWN: ipv4:127.0.0.1:50051: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER: "
    "Invalid certificate verification context: OK"
)
TLS12_ALERT = (
    ADDRESS + "UNKNOWN: ipv4:127.0.0.1:50051: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
    "SSL_ERROR_SSL: error:10000412:SSL routines:OPENSSL_internal:SSLV3_ALERT_BAD_CERTIFICATE"
)


class FailedCall(grpc.RpcError, grpc.Call):
    """A finished call as grpcio hands it to the client: status, details, trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str, kind: str | None = None) -> None:
        self._code, self._details = code, details
        self._trailing = ((ERROR_METADATA, kind),) if kind else ()

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self):
        return self._trailing

    def initial_metadata(self):
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback) -> bool:
        return False


Status = grpc.StatusCode
FLAGS = flag_names()


def _translate(error: grpc.RpcError, server: str, **options) -> errors.CleanroomError:
    """As the command line reads a failed call: its messages name the CLI's flags."""
    return translate(error, server, names=FLAGS, **options)


@pytest.mark.parametrize(
    ("code", "details", "options", "expected", "message"),
    [
        (Status.UNAVAILABLE, VERIFY_FAILED, {}, AuthenticationError, "other than --server-cert"),
        (Status.UNAVAILABLE, REFUSED_OUR_CERTIFICATE, {}, AuthenticationError, "refused your"),
        (Status.UNAVAILABLE, TLS12_ALERT, {}, AuthenticationError, "refused your certificate"),
        (Status.UNAVAILABLE, CLOSED_IN_HANDSHAKE, {}, ConnectionLostError, "cannot reach"),
        (Status.UNAVAILABLE, HUNG_IN_HANDSHAKE, {}, ConnectionLostError, "cannot reach"),
        (Status.UNAVAILABLE, PORT_CLOSED, {}, ConnectionLostError, "Connection refused"),
        (Status.UNAVAILABLE, NOT_TLS, {}, ConnectionLostError, "does not speak TLS"),
        # A plain client at a TLS server sees the same words as a refused certificate.
        (
            Status.UNAVAILABLE,
            REFUSED_OUR_CERTIFICATE,
            {"tls": False},
            ConnectionLostError,
            "a TLS server closes plain connections",
        ),
        # The brand process dying mid-session: no "failed to connect", so not a certificate.
        (Status.UNAVAILABLE, "Socket closed", {}, ConnectionLostError, "cannot reach"),
        (
            Status.DEADLINE_EXCEEDED,
            "Deadline Exceeded",
            {"connect_timeout": 2.5},
            ConnectionLostError,
            "no answer from the brand server at 127.0.0.1:50051 within 2.5 s",
        ),
        (Status.DEADLINE_EXCEEDED, "Deadline Exceeded", {}, ConnectionLostError, "interrupted"),
        (Status.CANCELLED, "Cancelled", {}, ConnectionLostError, "interrupted"),
        (
            Status.RESOURCE_EXHAUSTED,
            "Concurrent RPC limit exceeded!",
            {},
            ConnectionLostError,
            "busy; try again later",
        ),
        (
            Status.RESOURCE_EXHAUSTED,
            "Received message larger than max (5242885 vs. 4259840)",
            {},
            ProtocolError,
            "RESOURCE_EXHAUSTED",
        ),
        (Status.PERMISSION_DENIED, "certificate not pinned", {}, AuthenticationError, "refused"),
        (
            Status.UNIMPLEMENTED,
            "Method not found!",
            {"connect_timeout": 15.0},
            ProtocolError,
            "is not a cleanroom brand server",
        ),
        (Status.INTERNAL, "internal error", {}, ProtocolError, "ended the session (INTERNAL)"),
        (Status.UNKNOWN, "Exception iterating responses", {}, ProtocolError, "UNKNOWN"),
    ],
)
def test_each_status_becomes_the_documented_error(code, details, options, expected, message):
    translated = _translate(FailedCall(code, details), SERVER, **options)
    assert type(translated) is expected
    assert message in str(translated)


@pytest.mark.parametrize(
    ("code", "kind", "expected"),
    [
        (Status.FAILED_PRECONDITION, "PolicyError", PolicyError),
        (Status.FAILED_PRECONDITION, "ContractError", errors.ContractError),
        (Status.PERMISSION_DENIED, "AuthenticationError", AuthenticationError),
        (Status.INVALID_ARGUMENT, "ProtocolError", ProtocolError),
        (Status.INTERNAL, "InputError", InputError),
    ],
)
def test_the_brands_error_class_travels_back(code, kind, expected):
    translated = _translate(FailedCall(code, "budget exhausted", kind), SERVER)
    assert type(translated) is expected
    assert str(translated) == "the brand refused: budget exhausted"


@pytest.mark.parametrize(
    ("kind", "details"),
    [
        ("ConnectionLostError", "the brand server is shutting down (SIGTERM)"),
        ("StorageError", "the brand server could not write its state database"),
    ],
)
def test_a_session_the_brand_ended_is_not_called_a_refusal(kind, details):
    translated = _translate(FailedCall(Status.DEADLINE_EXCEEDED, details, kind), SERVER)
    assert type(translated) is ConnectionLostError
    assert str(translated).startswith(f"the brand ended the session: {details}")


def test_a_server_lost_mid_session_is_not_called_unreachable():
    lost = FailedCall(Status.UNAVAILABLE, "Socket closed")
    assert "cannot reach" in str(_translate(lost, SERVER, tls=False))
    translated = _translate(lost, SERVER, session="ab" * 16)
    assert type(translated) is ConnectionLostError
    assert "cannot reach" not in str(translated)
    assert f"stopped answering in the middle of session {'ab' * 16}" in str(translated)


def test_a_crypto_error_stays_opaque():
    translated = _translate(FailedCall(Status.INTERNAL, "anything", "CryptoError"), SERVER)
    assert type(translated) is errors.CryptoError
    assert "anything" not in str(translated)


@pytest.mark.parametrize("value", [0, -5, math.nan, math.inf, True, "10"])
def test_a_timeout_must_be_a_positive_number_of_seconds(value):
    with pytest.raises(InputError, match=r"^--timeout: must be a number of seconds greater than 0"):
        check_seconds(value, "--timeout")


def test_workers_zero_means_every_core_and_negative_is_refused():
    assert check_workers(0) is None and check_workers(None) is None and check_workers(3) == 3
    with pytest.raises(InputError, match="--workers"):
        check_workers(-1)


BAD_SETTINGS = [
    # (argument, value, as the library names it, as the command line names it)
    ("idle_timeout", -5, "idle_timeout: must be", "--timeout: must be"),
    ("connect_timeout", 0, "connect_timeout: must be", "--connect-timeout: must be"),
    ("connect_timeout", math.nan, "connect_timeout: must be", "--connect-timeout: must be"),
    ("workers", -1, "workers: must be", "--workers: must be"),
    ("engine", "dask", "engine must be one of", "--engine must be one of"),
    (
        "spark_scratch",
        "scratch",
        "spark_scratch only applies with engine spark",
        "--spark-scratch only applies with --engine spark",
    ),
]


@pytest.mark.parametrize(("argument", "value", "library", "cli"), BAD_SETTINGS)
def test_the_library_names_its_parameters_and_the_cli_its_flags(
    make_contract, argument, value, library, cli
):
    settings = {"contract": make_contract(), "insecure": True, argument: value}
    with pytest.raises(InputError) as refused:
        Client("127.0.0.1:1", **settings)
    assert str(refused.value).startswith(library)
    assert "--" not in str(refused.value)
    with pytest.raises(InputError) as refused:
        partner_client("127.0.0.1:1", **settings)
    assert str(refused.value).startswith(cli)


def test_tls_settings_are_named_as_the_caller_knows_them(make_contract):
    with pytest.raises(InputError) as refused:
        Client("127.0.0.1:1", contract=make_contract())
    assert str(refused.value) == (
        "mutual TLS needs certificate, private_key and server_certificate "
        "(or insecure=True on loopback)"
    )
    with pytest.raises(InputError) as refused:
        partner_client("127.0.0.1:1", contract=make_contract())
    assert str(refused.value) == (
        "mutual TLS needs --tls-cert, --tls-key and --server-cert (or --insecure on loopback)"
    )
    with pytest.raises(InputError, match=r"^insecure=True is only allowed for a loopback"):
        Client("10.0.0.1:1", contract=make_contract(), insecure=True)
    with pytest.raises(InputError, match=r"^--insecure is only allowed for a loopback"):
        partner_client("10.0.0.1:1", contract=make_contract(), insecure=True)


def test_a_failed_call_names_the_settings_as_the_caller_knows_them():
    refused = FailedCall(Status.UNAVAILABLE, VERIFY_FAILED)
    assert "other than server_certificate," in str(translate(refused, SERVER, names=PARAMETERS))
    assert "other than --server-cert," in str(_translate(refused, SERVER))
    alert = FailedCall(Status.UNAVAILABLE, TLS12_ALERT)
    assert "does not pin certificate for" in str(translate(alert, SERVER, names=PARAMETERS))
    slow = FailedCall(Status.DEADLINE_EXCEEDED, "Deadline Exceeded")
    library = translate(slow, SERVER, names=PARAMETERS, connect_timeout=1.0)
    assert "(connect_timeout)" in str(library) and "--" not in str(library)
    assert "(--connect-timeout)" in str(_translate(slow, SERVER, connect_timeout=1.0))


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    init_certificate(tmp_path, "acme")
    init_certificate(tmp_path, "newsco")
    return tmp_path


def test_a_key_from_another_pair_is_refused_naming_both_files(pairs):
    with pytest.raises(InputError) as refused:
        load_key_pair(pairs / "acme.crt", pairs / "newsco.key", "--tls-cert", "--tls-key")
    assert str(refused.value).startswith(f"--tls-key {pairs / 'newsco.key'} does not match")
    assert str(pairs / "acme.crt") in str(refused.value)
    certificate, key = load_key_pair(pairs / "acme.crt", pairs / "acme.key", "c", "k")
    assert certificate == (pairs / "acme.crt").read_bytes()
    assert key == (pairs / "acme.key").read_bytes()


def test_an_encrypted_or_unparsable_key_is_refused(pairs):
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (pairs / "encrypted.key").write_bytes(encrypted)
    (pairs / "broken.key").write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n")
    for name in ("encrypted.key", "broken.key"):
        with pytest.raises(InputError, match=r"--tls-key .* is not an unencrypted PEM private key"):
            load_key_pair(pairs / "acme.crt", pairs / name, "--tls-cert", "--tls-key")


@pytest.mark.parametrize(
    ("make_client", "named"), [(Client, "private_key"), (partner_client, "--tls-key")]
)
def test_the_client_refuses_a_key_that_is_not_its_certificates(pairs, make_client, named):
    contract = contract_text(fingerprint_of(pairs, "acme"), fingerprint_of(pairs, "newsco"))
    (pairs / "contract.toml").write_text(contract)
    with pytest.raises(InputError, match=rf"^{named} .*acme\.key does not match"):
        make_client(
            "127.0.0.1:1",
            contract=pairs / "contract.toml",
            certificate=pairs / "newsco.crt",
            private_key=pairs / "acme.key",
            server_certificate=pairs / "acme.crt",
        )


def fingerprint_of(directory: Path, name: str) -> str:
    return fingerprint(load_certificate(directory / f"{name}.crt"))


def brand_site(directory: Path, **replacements: str) -> Path:
    """A brand.toml over the certificates in DIRECTORY, with settings swapped in."""
    (directory / "certs").mkdir(exist_ok=True)
    for name in ("acme", "newsco"):
        for suffix in (".crt", ".key"):
            os.replace(directory / f"{name}{suffix}", directory / "certs" / f"{name}{suffix}")
    contract = contract_text(
        fingerprint_of(directory / "certs", "acme"),
        fingerprint_of(directory / "certs", "newsco"),
    )
    (directory / "contract.toml").write_text(contract)
    config = brand_config_text("contract.toml")
    for old, new in replacements.items():
        assert old in config
        config = config.replace(old, new)
    (directory / "brand.toml").write_text(config)
    return directory / "brand.toml"


def test_the_brand_config_loads_with_its_own_key(pairs):
    config = load_server_config(brand_site(pairs))
    assert config.private_key == pairs / "certs/acme.key"


@pytest.mark.parametrize(
    ("key", "content", "message"),
    [
        ("certs/newsco.key", None, r"\[tls\] private_key .*newsco\.key does not match"),
        ("garbage.key", "no key here", r"\[tls\] private_key .*garbage\.key is not a PEM file"),
        ("missing.key", None, r"\[tls\] private_key not found: .*missing\.key"),
    ],
)
def test_a_bad_brand_key_names_the_config_and_the_setting(pairs, key, content, message):
    if content is not None:
        (pairs / key).write_text(content)
    source = brand_site(pairs, **{'private_key = "certs/acme.key"': f'private_key = "{key}"'})
    with pytest.raises(InputError, match=rf"^{re.escape(str(source))}: {message}"):
        load_server_config(source)


@pytest.mark.parametrize("setting", ["idle_timeout", "session_timeout"])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_a_bad_timeout_is_refused(pairs, setting, value):
    source = brand_site(
        pairs, **{'state = "brand-state.db"': f'state = "brand-state.db"\n{setting} = {value}'}
    )
    with pytest.raises(
        InputError, match=rf"^{re.escape(str(source))}: \[server\] {setting}: must be"
    ):
        load_server_config(source)


def test_the_session_time_limit_is_read_from_the_config(pairs):
    source = brand_site(
        pairs, **{'state = "brand-state.db"': 'state = "brand-state.db"\nsession_timeout = 7200'}
    )
    assert load_server_config(source).session_timeout == 7200


@pytest.mark.parametrize("name", ["../outside", "a/b", "", ".hidden", "-rf", "ok\n", "x" * 129])
def test_certs_init_refuses_a_name_that_is_not_a_party_name(tmp_path, name):
    target = tmp_path / "certs"
    with pytest.raises(InputError, match=r"--name .*not a valid party name"):
        init_certificate(target, name)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_the_library_client_takes_the_runners_settings_with_the_same_defaults(make_contract):
    """Client is the runner with the library's names: no setting or default of its own."""

    library = inspect.signature(Client.__init__).parameters
    runner = dict(inspect.signature(PartnerClient.__init__).parameters)
    assert runner.pop("names").default is inspect.Parameter.empty
    assert [(p.name, p.default) for p in library.values()] == [
        (p.name, p.default)
        for p in sorted(runner.values(), key=lambda p: list(library).index(p.name))
    ]
    assert Client("127.0.0.1:1", contract=make_contract(), insecure=True).names is PARAMETERS
