"""What the brand's server and the partner's client share about gRPC, in one place.

The service and method names, the message-size limits and channel options, mutual-TLS
credentials from the pinned PEM files, the idle timeout both sides default to, and the one
two-way table between cleanroom's errors and gRPC statuses (docs/reference/exit-codes.md,
"Over the wire"). Typed wrappers stand in for the generated ``session_pb2_grpc``, which has
no types, and the health stub, whose type stubs declare no methods. The protocol itself (``cleanroom.protocol``)
never sees any of this.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

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
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.proto.cleanroom.v1 import session_pb2_grpc
from cleanroom.protocol.common import MAX_MESSAGE_BYTES

SERVICE_NAME = "cleanroom.v1.CleanRoom"
#: Trailing metadata key that carries a failed session's stable error code.
ERROR_METADATA = "cleanroom-error"
#: Seconds a session may go without a message either way (the client's ``--timeout``, the
#: brand's ``[server] idle_timeout``).
DEFAULT_IDLE_TIMEOUT = 300.0

# Encrypted elements are uniformly random bytes: compressing them costs CPU and saves nothing.
NO_COMPRESSION = grpc.Compression.NoCompression
MESSAGE_LIMIT = MAX_MESSAGE_BYTES + 64 * 1024
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ("grpc.max_receive_message_length", MESSAGE_LIMIT),
    ("grpc.max_send_message_length", MESSAGE_LIMIT),
]
# The server lets gRPC pass messages up to twice the limit so that it can refuse them itself,
# with a status and a log line that say why; gRPC's own refusal reaches the handler only as
# a cancelled stream. Larger ones gRPC still refuses (logged as a cancelled stream).
GRPC_RECEIVE_LIMIT = 2 * MESSAGE_LIMIT
SERVER_OPTIONS: list[tuple[str, Any]] = [
    *[
        (name, value)
        for name, value in CHANNEL_OPTIONS
        if name != "grpc.max_receive_message_length"
    ],
    ("grpc.max_receive_message_length", GRPC_RECEIVE_LIMIT),
]


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names this machine: the only place plain TCP (``insecure``) may go."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- errors <-> statuses -------------------------------------------------------------------


@dataclass(frozen=True)
class WireError:
    """One row of the table: an error class, its stable code and its gRPC status."""

    error: type[CleanroomError]
    code: str  # what travels in ERROR_METADATA; never renamed with the class
    status: grpc.StatusCode


# Most specific first: an error takes the first row it is an instance of. The codes are the
# class names these errors had when the code first went on the wire; they stay as they are.
WIRE_ERRORS: tuple[WireError, ...] = (
    WireError(AuthenticationError, "AuthenticationError", grpc.StatusCode.PERMISSION_DENIED),
    WireError(CryptoError, "CryptoError", grpc.StatusCode.INTERNAL),
    WireError(ProtocolError, "ProtocolError", grpc.StatusCode.INVALID_ARGUMENT),
    WireError(ContractError, "ContractError", grpc.StatusCode.FAILED_PRECONDITION),
    WireError(PolicyError, "PolicyError", grpc.StatusCode.FAILED_PRECONDITION),
    WireError(ConnectionLostError, "ConnectionLostError", grpc.StatusCode.DEADLINE_EXCEEDED),
    WireError(InputError, "InputError", grpc.StatusCode.INTERNAL),
    WireError(IntegrityError, "IntegrityError", grpc.StatusCode.INTERNAL),
    WireError(StorageError, "StorageError", grpc.StatusCode.INTERNAL),
    WireError(CleanroomError, "CleanroomError", grpc.StatusCode.INTERNAL),  # and any other
)
_BY_CODE = {row.code: row.error for row in WIRE_ERRORS}


def wire_error(error: BaseException) -> WireError:
    """The row an error is sent as; an exception that is no cleanroom error is an internal one."""
    for row in WIRE_ERRORS:
        if isinstance(error, row.error):
            return row
    return WIRE_ERRORS[-1]


def error_class(code: object) -> type[CleanroomError] | None:
    """The error class a received code stands for; None for a code this table does not know."""
    return _BY_CODE.get(code) if isinstance(code, str) else None


def abort_call(context: grpc.ServicerContext, error: BaseException, details: str) -> NoReturn:
    """End a call with the error's status and code (``details`` is what the peer is told)."""
    row = wire_error(error)
    context.set_trailing_metadata(((ERROR_METADATA, row.code),))
    context.abort(row.status, details)


# -- credentials, channels and servers -------------------------------------------------------


def channel_credentials(
    certificate: bytes, private_key: bytes, server_certificate: bytes
) -> grpc.ChannelCredentials:
    """Mutual TLS for the partner: its own pair, and the brand's pinned certificate as the
    only root it trusts."""
    return grpc.ssl_channel_credentials(
        root_certificates=server_certificate, private_key=private_key, certificate_chain=certificate
    )


def server_credentials(
    certificate: bytes, private_key: bytes, partner_certificates: Sequence[bytes]
) -> grpc.ServerCredentials:
    """Mutual TLS for the brand: a client must present one of the pinned partner certificates."""
    return grpc.ssl_server_credentials(
        [(private_key, certificate)],
        root_certificates=b"".join(partner_certificates),
        require_client_auth=True,
    )


def open_channel(
    address: str, credentials: grpc.ChannelCredentials | None, server_name: str | None
) -> grpc.Channel:
    """A channel to the brand: plain TCP without credentials (loopback only, checked by the
    caller), else TLS checked against ``server_name``, the pinned certificate's name."""
    if credentials is None:
        return grpc.insecure_channel(address, options=CHANNEL_OPTIONS, compression=NO_COMPRESSION)
    options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name)]
    return grpc.secure_channel(address, credentials, options=options, compression=NO_COMPRESSION)


def new_server(max_sessions: int) -> grpc.Server:
    """A gRPC server for at most ``max_sessions`` concurrent sessions (ports not yet bound)."""
    return grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=2 * max_sessions + 4, thread_name_prefix="cleanroom"
        ),
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=max_sessions,
        compression=NO_COMPRESSION,
    )


# -- typed wrappers of the generated service code and the health service ---------------------


class SessionCall(Protocol):
    """The partner's side of a running ``Session`` call: the brand's messages, and control."""

    def __iter__(self) -> Iterator[pb.BrandMessage]: ...

    def __next__(self) -> pb.BrandMessage: ...

    def cancel(self) -> bool: ...

    def add_done_callback(self, callback: Callable[[Any], None]) -> None: ...


def open_session(channel: grpc.Channel, outgoing: Iterator[pb.PartnerMessage]) -> SessionCall:
    """Start the ``Session`` call, sending ``outgoing`` as it yields."""
    stub = session_pb2_grpc.CleanRoomStub(channel)  # type: ignore[no-untyped-call]
    return cast(SessionCall, stub.Session(outgoing))


def add_session_service(server: grpc.Server, servicer: session_pb2_grpc.CleanRoomServicer) -> None:
    session_pb2_grpc.add_CleanRoomServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def add_health_service(server: grpc.Server) -> Callable[[], None]:
    """Register the standard health service; call what this returns once the server serves."""
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    def serving() -> None:
        for name in ("", SERVICE_NAME):
            servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    return serving


def check_health(channel: grpc.Channel, timeout: float) -> bool:
    """Whether the brand's session service answers SERVING within ``timeout`` seconds; a
    failed call raises its ``grpc.RpcError``."""
    stub = health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(  # type: ignore[attr-defined]  # the stubs give HealthStub no methods
        health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=timeout
    )
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
