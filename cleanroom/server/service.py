"""The brand's gRPC server. Translation only: authenticate, pick the contract, pump
messages through a BrandSession, and map errors to status codes.

Status codes: wrong or unknown certificate -> PERMISSION_DENIED; malformed or out-of-order
message -> INVALID_ARGUMENT; bad point or ciphertext -> INTERNAL (one opaque message);
contract or release-rule refusal -> FAILED_PRECONDITION; stalled peer ->
DEADLINE_EXCEEDED. The error's class travels in the ``cleanroom-error`` trailing metadata
so the client can exit with the documented code.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cleanroom.contract import Contract
from cleanroom.crypto.signing import signing_key_from_tls_key
from cleanroom.engine import INLINE, Engine
from cleanroom.errors import (
    AuthenticationError,
    CleanroomError,
    ConnectionLostError,
    ContractError,
    CryptoError,
    InputError,
    PolicyError,
    ProtocolError,
)
from cleanroom.io import CsvDialect
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.proto.cleanroom.v1 import session_pb2_grpc
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.common import MAX_MESSAGE_BYTES
from cleanroom.protocol.lists import OwnBrandList, prepare_brand_list
from cleanroom.protocol.pump import Pump
from cleanroom.server.certs import fingerprint_of_pem, require_signing_key
from cleanroom.server.config import ServerConfig
from cleanroom.spark import prepare_brand_list_spark
from cleanroom.store.state import StateStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("cleanroom.server")

ERROR_METADATA = "cleanroom-error"
SERVICE_NAME = "cleanroom.v1.CleanRoom"
# Encrypted elements are uniformly random bytes: compressing them costs CPU and saves nothing.
NO_COMPRESSION = grpc.Compression.NoCompression
MESSAGE_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES + 64 * 1024),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES + 64 * 1024),
]


def status_for(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, AuthenticationError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, CryptoError):
        return grpc.StatusCode.INTERNAL
    if isinstance(error, ProtocolError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, ContractError | PolicyError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, ConnectionLostError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.INTERNAL


@dataclass(frozen=True)
class Offer:
    """One contract the brand serves, with its CRM prepared for that contract's rules."""

    contract: Contract
    brand_list: OwnBrandList
    partner_fingerprint: str | None  # None only with --insecure
    partner_signing_key: Ed25519PublicKey | None = None  # None only with --insecure


class CleanRoomService(session_pb2_grpc.CleanRoomServicer):
    def __init__(
        self,
        offers: dict[str, Offer],
        store: StateStore,
        *,
        idle_timeout: float,
        session_timeout: float | None = None,
        signer: Ed25519PrivateKey | None = None,
        engine: Engine = INLINE,
    ) -> None:
        self.offers = offers
        self.engine = engine
        key = store.sketch_key()
        self.sketches = {cid: o.brand_list.sketch(key) for cid, o in offers.items()}
        self.store = store
        self.idle_timeout = idle_timeout
        self.session_timeout = session_timeout
        self.signer = signer

    def _peer_fingerprint(self, context: grpc.ServicerContext) -> str | None:
        certificates = context.auth_context().get("x509_pem_cert")
        return fingerprint_of_pem(certificates[0]) if certificates else None

    def _offer_for(self, hello: pb.PartnerMessage, context: grpc.ServicerContext) -> Offer:
        """Refuse before any data is read: unknown contract or a certificate it does not pin."""
        if hello.WhichOneof("body") != "hello":
            reason = "the session must start with Hello"
            self.store.audit("refused", reason=reason, peer=self._peer_fingerprint(context))
            raise ProtocolError(reason)
        contract_id = hello.hello.contract_id
        offer = self.offers.get(contract_id)
        peer = self._peer_fingerprint(context)
        if offer is None:
            self.store.audit(
                "refused", contract_id=contract_id[:128], reason="unknown contract", peer=peer
            )
            raise ContractError(f"this brand has no contract '{contract_id[:128]}'")
        if offer.partner_fingerprint is not None and peer != offer.partner_fingerprint:
            self.store.audit(
                "refused", contract_id=contract_id, reason="certificate not pinned", peer=peer
            )
            raise AuthenticationError(
                f"your certificate is not the one contract '{contract_id}' pins for the partner"
            )
        return offer

    def Session(
        self, request_iterator: Iterator[pb.PartnerMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.BrandMessage]:
        session: BrandSession | None = None
        pump: Pump | None = None
        try:
            first = next(request_iterator, None)
            if first is None:
                return
            offer = self._offer_for(first, context)
            session = BrandSession(
                offer.contract,
                offer.brand_list,
                self.store,
                peer=offer.contract.partner.name,
                signer=self.signer,
                partner_key=offer.partner_signing_key,
                engine=self.engine,
                sketch=self.sketches[offer.contract.id],
            )
            pump = Pump(
                session,
                idle_timeout=self.idle_timeout,
                session_timeout=self.session_timeout,
                max_pending=2 * self.engine.workers + 2,
            )
            on_stream_end = pump.fail
            context.add_callback(
                lambda: on_stream_end(ConnectionLostError("the partner went away"))
            )
            pump.start_watchdog(on_stall=context.cancel)
            pump.start_reading(itertools.chain([first], request_iterator))
            log.info(
                "%s: %s connected, session %s",
                offer.contract.id,
                offer.contract.partner.name,
                session.session_id,
            )
            yield from pump.outgoing()
            if pump.error is not None:
                raise pump.error
            log.info("%s: session %s released its report", offer.contract.id, session.session_id)
        except CleanroomError as error:
            self._fail(context, session, error)
        except Exception as error:
            log.exception("session failed")
            self._fail(context, session, error)
        finally:  # also when the stream is torn down under us (GeneratorExit)
            if session is not None and not session.finished:
                session.abort(str(pump.error) if pump and pump.error else "the stream ended early")

    def _fail(
        self, context: grpc.ServicerContext, session: BrandSession | None, error: BaseException
    ) -> None:
        reason = str(error) if isinstance(error, CleanroomError) else "internal error"
        if session is not None:
            session.abort(reason)
            log.warning(
                "%s: session %s failed: %s", session.contract.id, session.session_id, reason
            )
        else:
            log.warning("refused a partner before any session: %s", reason)
        if not context.is_active():
            return
        context.set_trailing_metadata(((ERROR_METADATA, type(error).__name__),))
        context.abort(status_for(error), reason)


def prepare_offers(
    config: ServerConfig, spark: SparkSession | None = None, scratch: str | None = None
) -> dict[str, Offer]:
    """Prepare the CRM once per contract's rules (profile, keys, segments): in this process's
    memory, or, given a Spark session, as a persisted Spark frame (:mod:`cleanroom.spark`)."""
    offers: dict[str, Offer] = {}
    for entry in config.contracts:
        contract = entry.contract
        brand_list: OwnBrandList
        if spark is not None:
            if config.crm_dialect != CsvDialect(style="toml"):
                raise InputError(
                    f"{config.source}: [crm] delimiter and encoding are for the local engine; "
                    "Spark reads comma-separated UTF-8 CSV files"
                )
            brand_list = prepare_brand_list_spark(
                spark, str(config.crm), config.columns, contract, scratch
            )
        elif isinstance(config.crm, str):
            raise InputError(f"[crm] path = {config.crm!r}: a catalog table needs --engine spark")
        else:
            brand_list = prepare_brand_list(
                config.crm, config.columns, contract, config.crm_dialect
            )
        offers[contract.id] = Offer(
            contract=contract,
            brand_list=brand_list,
            partner_fingerprint=fingerprint_of_pem(entry.partner_certificate)
            if entry.partner_certificate
            else None,
            partner_signing_key=require_signing_key(
                entry.partner_certificate, f"partner certificate of contract '{contract.id}'"
            )
            if entry.partner_certificate
            else None,
        )
    return offers


def build_server(
    config: ServerConfig,
    *,
    offers: dict[str, Offer] | None = None,
    max_sessions: int = 16,
    engine: Engine = INLINE,
) -> tuple[grpc.Server, int]:
    """Create and start the server; returns it and the bound port (``listen`` may use port 0)."""
    offers = offers if offers is not None else prepare_offers(config)
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=2 * max_sessions + 4, thread_name_prefix="cleanroom"
        ),
        options=MESSAGE_OPTIONS,
        maximum_concurrent_rpcs=max_sessions,
        compression=NO_COMPRESSION,
    )
    port = _bind(server, config)
    store = StateStore(config.state)
    store.recover_crashed()  # sessions of a server that was killed: aborted, reservations freed
    session_pb2_grpc.add_CleanRoomServicer_to_server(
        CleanRoomService(
            offers,
            store,
            idle_timeout=config.idle_timeout,
            session_timeout=config.session_timeout,
            signer=signing_key_from_tls_key(config.private_key.read_bytes())
            if config.private_key
            else None,
            engine=engine,
        ),
        server,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


def _bind(server: grpc.Server, config: ServerConfig) -> int:
    """Listen on ``[server] listen``; a port in use is the user's to fix, not a traceback."""
    try:
        if config.certificate is None or config.private_key is None:
            port = server.add_insecure_port(config.listen)
        else:
            credentials = grpc.ssl_server_credentials(
                [(config.private_key.read_bytes(), config.certificate.read_bytes())],
                root_certificates=b"".join(entry.partner_certificate for entry in config.contracts),
                require_client_auth=True,
            )
            port = server.add_secure_port(config.listen, credentials)
    except RuntimeError:  # grpcio >= 1.60 raises; older releases return port 0
        port = 0
    if port == 0:
        raise InputError(
            f"{config.source}: [server] listen = {config.listen!r}: cannot listen there (the "
            "port is in use, e.g. by another cleanroom serve, or the address is not this machine's)"
        )
    return port
