"""The brand's gRPC server. Translation only: authenticate, pick the contract, pump
messages through a BrandSession, and map errors to status codes.

A failed session ends with the status and the stable error code (``cleanroom-error``
trailing metadata) that the one table in :mod:`cleanroom.transport.grpc` gives its error,
so the client can exit with the documented code (docs/reference/exit-codes.md). That
status is the brand's only way to abort: it sends no Abort message (docs/protocol.md).

Every stream ends with exactly one log line saying how (released, refused before a session
opened, or aborted) and why, and one count in the metrics (:mod:`observability`). A stream
that sends no first message within ``[server] hello_timeout`` is refused, so silent
streams cannot hold the server's session slots.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cleanroom.brand.config import DEFAULT_HELLO_TIMEOUT, ServerConfig
from cleanroom.brand.observability import UNKNOWN_CONTRACT, SessionMetrics, reason_label
from cleanroom.contract import Contract
from cleanroom.crypto.batches import INLINE, BatchRunner
from cleanroom.crypto.signing import signing_key_from_tls_key
from cleanroom.errors import (
    AuthenticationError,
    CleanroomError,
    ConnectionLostError,
    ContractError,
    InputError,
    ProtocolError,
    StorageError,
)
from cleanroom.identity import ReportSigner, fingerprint_of_pem, require_signing_key
from cleanroom.lists.local import prepare_brand_list
from cleanroom.lists.spark import SparkList, prepare_brand_list_spark
from cleanroom.lists.tables import CsvDialect
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.proto.cleanroom.v1 import session_pb2_grpc
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.common import ReportVerifier
from cleanroom.protocol.list_port import OwnBrandList
from cleanroom.store.state import StateStore
from cleanroom.transport.grpc import (
    GRPC_RECEIVE_LIMIT,
    MESSAGE_LIMIT,
    abort_call,
    add_health_service,
    add_session_service,
    new_server,
    server_credentials,
)
from cleanroom.transport.pump import Pump

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("cleanroom.server")

# Seconds a stopping server gives its running calls to end, then their handlers to return.
SHUTDOWN_GRACE = 5.0


class HelloTimeout(ConnectionLostError):
    """A stream sent no first message within ``[server] hello_timeout``."""


class ShuttingDown(ConnectionLostError):
    """The brand server was asked to stop (SIGTERM or Ctrl-C) during the session."""


def _incoming(
    requests: Iterator[pb.PartnerMessage], context: grpc.ServicerContext
) -> Iterator[pb.PartnerMessage]:
    """The partner's messages, each within the size limit; a broken stream says so. A
    stream gRPC cancelled (over its size limit, a dropped connection) may end like a
    half-close, so an ending on an inactive call counts as cancelled."""
    while True:
        try:
            message = next(requests)
        except StopIteration:
            if not context.is_active():
                raise _stream_cancelled() from None
            return
        except grpc.RpcError:
            raise _stream_cancelled() from None
        size = message.ByteSize()
        if size > MESSAGE_LIMIT:
            raise ProtocolError(
                f"a {message.WhichOneof('body') or 'empty'} message of {size} bytes exceeds "
                f"the {MESSAGE_LIMIT} byte limit"
            )
        yield message


def _stream_cancelled() -> ConnectionLostError:
    """All the server learns when gRPC ends a stream under it (the reader and the call's
    end callback both see it, in either order, so both say the same)."""
    return ConnectionLostError(
        "the partner's stream was cancelled (the partner stopped, its connection dropped, "
        f"or it sent a message over gRPC's {GRPC_RECEIVE_LIMIT >> 20} MiB limit)"
    )


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
        hello_timeout: float = DEFAULT_HELLO_TIMEOUT,
        signer: Ed25519PrivateKey | None = None,
        engine: BatchRunner = INLINE,
        metrics: SessionMetrics | None = None,
    ) -> None:
        self.offers = offers
        self.engine = engine
        key = store.sketch_key()
        self.sketches = {cid: o.brand_list.sketch(key) for cid, o in offers.items()}
        self.store = store
        self.idle_timeout = idle_timeout
        self.session_timeout = session_timeout
        self.hello_timeout = hello_timeout
        self.signer = signer
        self.metrics = metrics or SessionMetrics()
        self._pumps: set[Pump] = set()
        self._pumps_lock = threading.Lock()
        self._stopping: ShuttingDown | None = None
        self._handlers = 0  # Session calls whose handler has not returned yet
        self._handler_returned = threading.Condition()

    def budget_left(self) -> Iterator[tuple[str, float]]:
        for contract_id, offer in self.offers.items():
            yield contract_id, self.store.budget_remaining(offer.contract)

    def end_sessions(self, reason: str) -> None:
        """End every running session with ``reason`` (the partner is told; the log says so)
        and any that opens from now on; :func:`shut_down` calls it before stopping the server."""
        self._stopping = ShuttingDown(f"the brand server is shutting down ({reason})")
        with self._pumps_lock:
            pumps = list(self._pumps)
        for pump in pumps:
            pump.fail(self._stopping)

    def _peer_fingerprint(self, context: grpc.ServicerContext) -> str | None:
        # A list of PEM certificates, the peer's first (grpc's stubs say bytes).
        certificates = cast(list[bytes], context.auth_context().get("x509_pem_cert") or [])
        return fingerprint_of_pem(certificates[0]) if certificates else None

    def _first_message(
        self, incoming: Iterator[pb.PartnerMessage], context: grpc.ServicerContext
    ) -> pb.PartnerMessage:
        """The stream's first message, within ``hello_timeout``: a stream that stays silent
        would otherwise hold one of the server's session slots for as long as it likes."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            context.cancel()

        timer = threading.Timer(self.hello_timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            first = next(incoming, None)
            if first is None:
                raise ConnectionLostError("the partner closed the stream before its first message")
        except CleanroomError as error:
            refusal: CleanroomError = error
            if expired.is_set():  # the cancelled stream may read as closed or as cancelled
                refusal = HelloTimeout(
                    f"no first message within {self.hello_timeout:g} s ([server] hello_timeout)"
                )
            self.store.audit("refused", reason=str(refusal), peer=self._peer_fingerprint(context))
            raise refusal from None
        finally:
            timer.cancel()
        return first

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

    def wait_for_handlers(self, timeout: float) -> int:
        """Wait until every Session handler has returned (its outcome recorded and logged);
        returns how many are still running after ``timeout`` seconds."""
        with self._handler_returned:
            self._handler_returned.wait_for(lambda: self._handlers == 0, timeout)
            return self._handlers

    def Session(
        self, request_iterator: Iterator[pb.PartnerMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.BrandMessage]:
        with self._handler_returned:
            self._handlers += 1
        try:
            yield from self._session(request_iterator, context)
        finally:
            with self._handler_returned:
                self._handlers -= 1
                self._handler_returned.notify_all()

    def _session(
        self, request_iterator: Iterator[pb.PartnerMessage], context: grpc.ServicerContext
    ) -> Iterator[pb.BrandMessage]:
        started = time.monotonic()
        session: BrandSession | None = None
        pump: Pump | None = None
        error: BaseException | None = None
        counted = False  # in cleanroom_sessions_started
        self.metrics.running.inc()
        try:
            incoming = _incoming(request_iterator, context)
            first = self._first_message(incoming, context)
            offer = self._offer_for(first, context)
            session = BrandSession(
                offer.contract,
                offer.brand_list,
                self.store,
                peer=offer.contract.partner.name,
                signer=None if self.signer is None else ReportSigner(self.signer, "brand"),
                peer_key=None
                if offer.partner_signing_key is None
                else ReportVerifier(offer.partner_signing_key, "partner"),
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
            context.add_callback(lambda: on_stream_end(self._stopping or _stream_cancelled()))
            with self._pumps_lock:
                self._pumps.add(pump)
            if self._stopping is not None:
                pump.fail(self._stopping)
            pump.start_watchdog(on_stall=context.cancel)
            pump.start_reading(itertools.chain([first], incoming))
            log.info(
                "%s: %s connected, session %s",
                offer.contract.id,
                offer.contract.partner.name,
                session.session_id,
                extra={
                    "event": "session-start",
                    "contract_id": offer.contract.id,
                    "session_id": session.session_id,
                    "partner": offer.contract.partner.name,
                },
            )
            with contextlib.closing(pump.outgoing()) as outgoing:  # closed also on GeneratorExit
                for message in outgoing:
                    if not counted and message.WhichOneof("body") == "hello_reply":
                        counted = True  # the Hello passed: the session is open
                        self.metrics.started.labels(offer.contract.id).inc()
                    yield message
            if pump.error is not None:
                raise pump.error
        except CleanroomError as failure:
            error = failure
            self._fail(context, session, failure)
        except GeneratorExit:  # the stream was torn down under us: no status can be sent
            error = (pump.error if pump else None) or self._stopping or _stream_cancelled()
            raise
        except Exception as failure:
            log.exception("session failed")  # a bug: the traceback is for the maintainers
            error = failure
            self._fail(context, session, failure)
        finally:
            if pump is not None:
                with self._pumps_lock:
                    self._pumps.discard(pump)
            if session is not None and not session.finished and session.report is None:
                error = (
                    error
                    or (pump.error if pump else None)
                    or ConnectionLostError("the stream ended before the session finished")
                )
                _abort(session, error)
            self.metrics.running.dec()
            self._record(session, error, time.monotonic() - started, counted)

    def _fail(
        self, context: grpc.ServicerContext, session: BrandSession | None, error: BaseException
    ) -> None:
        if session is not None and session.report is None:
            _abort(session, error)
        if not context.is_active():
            return
        abort_call(context, error, _public_reason(error))

    def _record(
        self,
        session: BrandSession | None,
        error: BaseException | None,
        seconds: float,
        counted: bool,
    ) -> None:
        """The stream's one log line and its count in the metrics: released, refused before
        a session opened (at the first message, or by the Hello checks), or aborted."""
        specific = (
            "hello_timeout"
            if isinstance(error, HelloTimeout)
            else "shutdown"
            if isinstance(error, ShuttingDown)
            else None
        )
        reason = _log_reason(error)
        fields = {"duration_s": round(seconds, 3), "reason": reason}
        if session is None:
            self.metrics.refused.labels(UNKNOWN_CONTRACT, reason_label(error, specific)).inc()
            self.metrics.duration.labels(UNKNOWN_CONTRACT, "refused").observe(seconds)
            log.warning(
                "refused a partner before any session: %s",
                reason,
                extra={"event": "session-end", "outcome": "refused", **fields},
            )
            return
        contract_id, session_id = session.contract.id, session.session_id
        fields |= {"contract_id": contract_id, "session_id": session_id}
        if session.report is not None:
            outcome = "released"
            self.metrics.released.labels(contract_id).inc()
            self.metrics.partner_records.labels(contract_id).observe(session.report.partner_size)
            if error is None:
                message = f"{contract_id}: session {session_id} released its report"
            else:
                message = (
                    f"{contract_id}: session {session_id} released its report, but the partner "
                    f"did not acknowledge it (the brand's copy lacks its signature): {reason}"
                )
        elif self._opened(session_id):
            outcome = "aborted"
            self.metrics.aborted.labels(contract_id, reason_label(error, specific)).inc()
            message = f"{contract_id}: session {session_id} aborted, nothing released: {reason}"
        else:
            outcome = "refused"
            self.metrics.refused.labels(contract_id, reason_label(error, specific)).inc()
            message = f"{contract_id}: session {session_id} refused: {reason}"
        if outcome != "refused" and not counted:  # opened, but failed before its reply left
            self.metrics.started.labels(contract_id).inc()
        self.metrics.duration.labels(contract_id, outcome).observe(seconds)
        level = logging.INFO if error is None else logging.WARNING
        log.log(
            level,
            "%s (%.1f s)",
            message,
            seconds,
            extra={"event": "session-end", "outcome": outcome, **fields},
        )

    def _opened(self, session_id: str) -> bool:
        """Whether a failed session had opened (its Hello passed, budget reserved)."""
        try:
            return self.store.session_status(session_id) is not None
        except StorageError:
            return False


def _abort(session: BrandSession, error: BaseException | None) -> None:
    """Record the abort; if the state database is what fails, the next start ends the
    session (``recover_crashed``) and the log line already says why."""
    try:
        session.abort(_log_reason(error))
    except StorageError as failure:
        log.error("%s: session %s: %s", session.contract.id, session.session_id, failure)


def _log_reason(error: BaseException | None) -> str:
    if error is None:
        return "completed"
    if isinstance(error, CleanroomError):
        return str(error)
    return f"internal error ({type(error).__name__}; the traceback is logged above)"


def _public_reason(error: BaseException) -> str:
    """What the partner is told: the error, but never the brand's storage details."""
    if isinstance(error, StorageError):
        return "the brand server could not write its state database; nothing was released"
    return str(error) if isinstance(error, CleanroomError) else "internal error"


def prepare_offers(
    config: ServerConfig, spark: SparkSession | None = None, scratch: str | None = None
) -> dict[str, Offer]:
    """Prepare the CRM once per contract's rules (profile, keys, segments): in this process's
    memory, or, given a Spark session, as a persisted Spark frame (:mod:`cleanroom.lists.spark`).
    The caller :func:`close_offers` them; if one fails, those already prepared are closed."""
    offers: dict[str, Offer] = {}
    try:
        _prepare_each_offer(config, spark, scratch, offers)
    except BaseException:
        close_offers(offers)
        raise
    return offers


def close_offers(offers: dict[str, Offer]) -> None:
    """Free what the prepared CRMs hold outside this process's memory: a Spark list's cached
    frame and scratch directory."""
    for offer in offers.values():
        if isinstance(offer.brand_list, SparkList):
            offer.brand_list.close()


def _prepare_each_offer(
    config: ServerConfig, spark: SparkSession | None, scratch: str | None, offers: dict[str, Offer]
) -> None:
    """Into ``offers`` as each is made, so a failure leaves none unaccounted for; the partner
    certificate is checked first, before the costly preparation."""
    for entry in config.contracts:
        contract = entry.contract
        certificate = entry.partner_certificate
        partner_fingerprint = fingerprint_of_pem(certificate) if certificate else None
        signing_key = (
            require_signing_key(certificate, f"partner certificate of contract '{contract.id}'")
            if certificate
            else None
        )
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
            partner_fingerprint=partner_fingerprint,
            partner_signing_key=signing_key,
        )


def build_server(
    config: ServerConfig,
    *,
    offers: dict[str, Offer] | None = None,
    max_sessions: int = 16,
    engine: BatchRunner = INLINE,
    metrics: SessionMetrics | None = None,
) -> tuple[grpc.Server, int]:
    """Create and start the server; returns it and the bound port (``listen`` may use port 0).

    ``metrics`` collects the session counts (serve it with :meth:`SessionMetrics.serve`).
    Stop the server with :func:`shut_down`; :func:`service_of` gives its session service."""
    offers = offers if offers is not None else prepare_offers(config)
    server = new_server(max_sessions)
    port = _bind(server, config)
    store = StateStore(config.state)
    for session_id in store.recover_crashed():  # of a killed server: aborted, reservations freed
        log.warning("session %s was left running by a server that stopped: aborted", session_id)
    service = CleanRoomService(
        offers,
        store,
        idle_timeout=config.idle_timeout,
        session_timeout=config.session_timeout,
        hello_timeout=config.hello_timeout,
        signer=signing_key_from_tls_key(config.private_key.read_bytes())
        if config.private_key
        else None,
        engine=engine,
        metrics=metrics,
    )
    if metrics is not None:
        metrics.watch_budget(service.budget_left)
    add_session_service(server, service)
    server.cleanroom_service = service  # type: ignore[attr-defined]
    serving = add_health_service(server)
    server.start()
    serving()
    return server, port


def shut_down(server: grpc.Server, reason: str) -> None:
    """Stop as ``cleanroom serve`` does on SIGTERM or Ctrl-C: each running session ends with
    ``reason`` (its partner told), the server stops, and this returns once every session's
    handler has recorded and logged its outcome, so the state database is final. gRPC's own
    stop returns when the calls are over, which can be before a handler whose partner went
    away has written its abort."""
    service = service_of(server)
    service.end_sessions(reason)
    server.stop(SHUTDOWN_GRACE).wait()
    still_running = service.wait_for_handlers(SHUTDOWN_GRACE)
    if still_running:
        log.warning(
            "%d session(s) still ending %g s after the server stopped; the next start aborts"
            " any left running",
            still_running,
            SHUTDOWN_GRACE,
        )


def service_of(server: grpc.Server) -> CleanRoomService:
    """The session service :func:`build_server` registered on ``server``."""
    service: CleanRoomService = server.cleanroom_service  # type: ignore[attr-defined]
    return service


def _bind(server: grpc.Server, config: ServerConfig) -> int:
    """Listen on ``[server] listen``; a port in use is the user's to fix, not a traceback."""
    try:
        if config.certificate is None or config.private_key is None:
            port = server.add_insecure_port(config.listen)
        else:
            credentials = server_credentials(
                config.certificate.read_bytes(),
                config.private_key.read_bytes(),
                [entry.partner_certificate for entry in config.contracts],
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
