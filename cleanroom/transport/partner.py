"""The partner's side of a session over gRPC: the runner the client library and the demo share.

:class:`PartnerClient` checks the connection settings and the pinned certificates, prepares
the audience, opens the call, pumps a :class:`~cleanroom.protocol.partner.PartnerSession`
through it and turns the brand's status back into the error it stood for (through the one
table in :mod:`cleanroom.transport.grpc`). ``cleanroom_client.Client`` is the library's
face of it; the ``cleanroom-client`` command line and ``cleanroom demo`` run it directly.
Errors name each setting as the caller knows it (:class:`SettingNames`): the library's
parameters, or the command line's flags.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import grpc
import pyarrow as pa

from cleanroom.cli_support import check_engine, check_seconds, check_workers
from cleanroom.contract import Contract
from cleanroom.crypto.batches import BatchRunner
from cleanroom.crypto.constants import CIPHERTEXT_SIZE, ELEMENT_SIZE
from cleanroom.crypto.signing import signing_key_from_tls_key, verify_report_signature
from cleanroom.errors import (
    AuthenticationError,
    CleanroomError,
    ConnectionLostError,
    ContractError,
    CryptoError,
    InputError,
    IntegrityError,
    Interrupted,
    ProtocolError,
    StorageError,
)
from cleanroom.faults import crash_point
from cleanroom.identity import (
    ReportSigner,
    check_pinned,
    load_certificate,
    load_key_pair,
    require_distinct_signing_keys,
    require_signing_key,
    server_name,
)
from cleanroom.lists.local import PartnerList, TableSource, prepare_partner_list
from cleanroom.lists.spark import SparkPartnerList, prepare_partner_list_spark, start_spark
from cleanroom.lists.tables import CsvDialect, is_dataframe
from cleanroom.privacy.calibration import load_contract
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.common import ReportVerifier
from cleanroom.protocol.partner import PartnerSession
from cleanroom.report.document import Report, dumps
from cleanroom.store.state import StateStore
from cleanroom.transport.grpc import (
    DEFAULT_IDLE_TIMEOUT,
    ERROR_METADATA,
    SessionCall,
    channel_credentials,
    check_health,
    error_class,
    is_loopback,
    open_channel,
    open_session,
)
from cleanroom.transport.pump import Pump

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

DEFAULT_STATE = "partner-state.db"
DEFAULT_CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class SettingNames:
    """How error messages name each setting: the library's parameters or the CLI's flags."""

    certificate: str
    private_key: str
    server_certificate: str
    insecure: str
    idle_timeout: str
    connect_timeout: str
    workers: str
    engine: str
    spark_scratch: str


#: The library's names: the parameters of :class:`PartnerClient`.
PARAMETERS = SettingNames(
    certificate="certificate",
    private_key="private_key",
    server_certificate="server_certificate",
    insecure="insecure=True",
    idle_timeout="idle_timeout",
    connect_timeout="connect_timeout",
    workers="workers",
    engine="engine",
    spark_scratch="spark_scratch",
)

Progress = Callable[[str, int, int | None], None]
"""Called as ``progress(phase, amount, total)`` as a session moves: ``amount`` more of
``total`` brand elements received, own records sent, or records aggregated."""

RECEIVING, SENDING, AGGREGATING = "receiving brand data", "sending our records", "aggregating"

#: The abort reason recorded on both sides when the partner's user presses Ctrl-C.
INTERRUPTED = "the partner interrupted the session (Ctrl-C)"
#: Seconds a Ctrl-C waits for the brand to take our Abort and end the call.
ABORT_GRACE = 1.0


class _SessionProgress:
    """Turns the messages of one session into progress calls with known totals."""

    def __init__(self, progress: Progress, contract: Contract, records: int) -> None:
        self._progress = progress
        self._record_size = ELEMENT_SIZE * len(contract.keys)
        self._indicator_size = CIPHERTEXT_SIZE * len(contract.segments)
        self._records = records
        self._brand_elements: int | None = None

    def received(self, message: pb.BrandMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "hello_reply":
            self._brand_elements = sum(message.hello_reply.brand_elements)
        elif kind == "brand_elements":
            count = len(message.brand_elements.elements) // ELEMENT_SIZE
            self._progress(RECEIVING, count, self._brand_elements)
        elif kind == "indicators":
            count = len(message.indicators.ciphertexts) // self._indicator_size
            self._progress(AGGREGATING, count, self._records)

    def sending(self, messages: Iterator[pb.PartnerMessage]) -> Iterator[pb.PartnerMessage]:
        for message in messages:
            if message.WhichOneof("body") == "partner_records":
                count = len(message.partner_records.elements) // self._record_size
                self._progress(SENDING, count, self._records)
            yield message


class UnsavedReportError(StorageError):
    """The brand released a report this party checked and signed, but this party's state
    database could not record it. :attr:`report` holds it with both signatures: write it
    to a file, and once the database is writable run ``cleanroom-client recover``."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


class _PartnerStore(StateStore):
    """The partner's state, holding on to a released report that could not be written.

    The brand has spent its budget and stored the report by the time it reaches us (and
    ours was spent when our noisy sums left), so a failed write must not lose it: the
    session still acknowledges the release, and the caller gets the report to keep."""

    unsaved: StorageError | None = None

    def commit_release(
        self,
        session_id: str,
        contract: Contract,
        release: Report | Callable[[float], Report],
        list_sketch: bytes | None = None,
    ) -> Report:
        assert not callable(release)  # the partner stores the report the brand released
        try:
            return super().commit_release(session_id, contract, release, list_sketch)
        except StorageError as error:
            self.unsaved = error
            return release


def _abort(session: PartnerSession, error: BaseException) -> None:
    """Record the abort; if the state database is what failed, the next start records it
    (``recover_crashed``), and the error the user sees stays the first one."""
    try:
        session.abort(str(error))
    except StorageError:
        pass


class PartnerClient:
    """A partner's connection settings for one contract; :meth:`run` runs one session.

    The settings are those of ``cleanroom_client.Client`` (its docstring says what each
    means); ``names`` says how errors name them: :data:`PARAMETERS`, or the CLI's flags."""

    def __init__(
        self,
        server: str,
        *,
        contract: str | os.PathLike[str] | Contract,
        names: SettingNames,
        certificate: str | os.PathLike[str] | None = None,
        private_key: str | os.PathLike[str] | None = None,
        server_certificate: str | os.PathLike[str] | None = None,
        state: str | os.PathLike[str] = DEFAULT_STATE,
        insecure: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        workers: int | None = None,
        engine: str = "local",
        spark_scratch: str | None = None,
    ) -> None:
        self.server = server
        self.names = names
        self.idle_timeout = check_seconds(idle_timeout, names.idle_timeout)
        self.connect_timeout = check_seconds(connect_timeout, names.connect_timeout)
        self.workers = check_workers(workers, names.workers)
        self.engine = check_engine(engine, spark_scratch, names.engine, names.spark_scratch)
        self.spark_scratch = spark_scratch
        self.contract = (
            contract if isinstance(contract, Contract) else load_contract(Path(contract))
        )
        self.insecure = insecure
        self.state = Path(state)
        if insecure:
            if not is_loopback(server):
                raise InputError(
                    f"{names.insecure} is only allowed for a loopback server, not {server}"
                )
            self._credentials = None
            self._server_name = None
            self._signer = None
            self._brand_key = None
        else:
            if certificate is None or private_key is None or server_certificate is None:
                raise InputError(
                    f"mutual TLS needs {names.certificate}, {names.private_key} and "
                    f"{names.server_certificate} (or {names.insecure} on loopback)"
                )
            check_pinned(
                certificate, self.contract.partner.certificate_sha256, "partner", "your certificate"
            )
            own, own_key = load_key_pair(
                certificate, private_key, names.certificate, names.private_key
            )
            brand = check_pinned(
                server_certificate,
                self.contract.brand.certificate_sha256,
                "brand",
                "server certificate",
            )
            self._server_name = server_name(
                load_certificate(server_certificate, "server certificate")
            )
            self._signer = signing_key_from_tls_key(own_key)
            self._brand_key = require_signing_key(brand, f"server certificate {server_certificate}")
            require_signing_key(own, f"your certificate {certificate}")
            require_distinct_signing_keys(
                self._brand_key,
                self._signer.public_key(),
                f"{names.server_certificate} {server_certificate}",
            )
            self._credentials = channel_credentials(own, own_key, brand)

    def prepare(
        self,
        audience: TableSource | SparkDataFrame,
        columns: Mapping[str, str] | None = None,
        *,
        dialect: CsvDialect | None = None,
    ) -> PartnerList | SparkPartnerList:
        """Read, validate and hash the audience on this side (no network). ``dialect``
        (:func:`cleanroom.lists.tables.csv_dialect`) gives a CSV file's delimiter and encoding; by
        default the file is UTF-8 and its delimiter is detected."""
        crash_point("partner", "prepare")
        if self.engine == "spark":
            if dialect is not None and dialect != CsvDialect(style=dialect.style):
                raise InputError(
                    f"{dialect.setting('delimiter')} and {dialect.setting('encoding')} are "
                    "for the local engine; Spark reads comma-separated UTF-8 CSV files"
                )
            if is_dataframe(audience) or isinstance(audience, pa.Table):
                raise InputError(
                    "the Spark engine reads a path, table:NAME or a Spark DataFrame; "
                    "a pandas DataFrame or Arrow table is for the local engine"
                )
            spark_source = cast("str | os.PathLike[str] | SparkDataFrame", audience)
            return prepare_partner_list_spark(
                start_spark("cleanroom-client"),
                os.fspath(spark_source) if isinstance(spark_source, os.PathLike) else spark_source,
                columns,
                self.contract,
                self.spark_scratch,
            )
        return prepare_partner_list(audience, columns, self.contract, dialect)  # type: ignore[arg-type]

    def run(
        self,
        audience: TableSource | SparkDataFrame | PartnerList | SparkPartnerList,
        columns: Mapping[str, str] | None = None,
        *,
        dialect: CsvDialect | None = None,
        progress: Progress | None = None,
    ) -> Report:
        """Run one session and return the released report (also stored in the state DB)."""
        prepared = (
            audience
            if isinstance(audience, PartnerList | SparkPartnerList)
            else self.prepare(audience, columns, dialect=dialect)
        )
        try:
            return self._run(prepared, progress)
        finally:
            if isinstance(prepared, SparkPartnerList) and prepared is not audience:
                prepared.close()

    def _run(self, prepared: PartnerList | SparkPartnerList, progress: Progress | None) -> Report:
        store = _PartnerStore(self.state)
        store.recover_crashed()  # earlier runs that were killed: aborted, reservations freed
        engine = BatchRunner(self.workers)
        session = PartnerSession(
            self.contract,
            prepared,
            store,
            signer=None if self._signer is None else ReportSigner(self._signer, "partner"),
            peer_key=None if self._brand_key is None else ReportVerifier(self._brand_key, "brand"),
            engine=engine,
        )
        try:
            hello = session.hello()
            watcher = (
                None
                if progress is None
                else _SessionProgress(progress, self.contract, prepared.size)
            )
            self._exchange(session, hello, watcher, max_pending=2 * engine.workers + 2)
        except ConnectionLostError as exc:
            if session.report is None:
                _abort(session, exc)
                raise
            # The report was verified and stored before the brand went away; only the
            # brand's record of our acknowledgement may be missing.
        except KeyboardInterrupt:
            session.abort(INTERRUPTED)  # first: from here on no budget can be spent
            raise Interrupted(_interruption(session, store)) from None
        except BaseException as exc:
            _abort(session, exc)
            raise
        finally:
            engine.close()
        assert session.report is not None
        report = Report(
            session.report.document,
            input_quality=prepared.quality,
            signatures=session.report.signatures,
        )
        if store.unsaved is not None:
            raise UnsavedReportError(
                f"{store.unsaved}; the brand released session {report.session_id} and "
                "spent its budget on it, but the report could not be recorded here",
                report,
            )
        return report

    def recover(self, report: Report, source: str = "a report file") -> Report:
        """Record in this party's state a released report it lacks: one that could not be
        written when it arrived (:class:`UnsavedReportError`), or the brand's copy of a
        session whose client died before storing it (``cleanroom report export``).

        The report must be for this contract and for a session this state database ran, and
        must carry the brand's valid signature (made as the brand, with the pinned key); this
        party adds its own. The session's budget is charged if it was not yet."""
        data = report.to_dict()
        if (data.get("contract_id"), data.get("contract_sha256")) != (
            self.contract.id,
            self.contract.sha256,
        ):
            raise ContractError(
                f"{source}: the report is for contract '{data.get('contract_id')}' "
                f"({str(data.get('contract_sha256'))[:16]}...), not '{self.contract.id}' "
                f"({self.contract.sha256[:16]}...)"
            )
        signatures: dict[str, dict[str, str]] = {}
        if self._brand_key is not None:
            held = report.signatures if isinstance(report.signatures, dict) else {}
            found = held.get("brand")
            entry: dict[str, str] = found if isinstance(found, dict) else {}
            try:
                valid = entry.get("public_key") == self._brand_key.public_bytes_raw().hex() and (
                    verify_report_signature(
                        self._brand_key,
                        bytes.fromhex(entry.get("signature", "")),
                        dumps(data),
                        role="brand",
                    )
                )
            except (TypeError, ValueError):  # not hex, not a string
                valid = False
            if not valid:
                raise IntegrityError(
                    f"{source}: no valid brand signature by the key {self.names.server_certificate} "
                    "carries: "
                    "the report was altered, or it is not the brand's"
                )
            signatures["brand"] = entry
        store = StateStore(self.state)
        session_id = report.session_id
        if store.session_status(session_id) is None:
            raise InputError(
                f"{source}: session {session_id} never ran with the state database {self.state}"
            )
        stored = store.report(session_id)
        if stored is not None:
            if stored != Report(data):
                raise IntegrityError(
                    f"{source}: {self.state} holds a different report for session {session_id}"
                )
        else:
            if self._signer is not None:
                signatures["partner"] = ReportSigner(self._signer, "partner").sign(dumps(data))
            store.commit_release(session_id, self.contract, Report(data, signatures=signatures))
            store.audit(
                "recovered", session_id=session_id, contract_id=self.contract.id, source=source
            )
        return Report(data, signatures=store.signatures(session_id))

    @property
    def _tls(self) -> bool:
        return self._credentials is not None

    def _wait_for_server(self, channel: grpc.Channel) -> None:
        """Insist on an answer within ``connect_timeout``: a hung or silent endpoint would
        otherwise hold the partner until gRPC's own handshake timeout, then look like a
        certificate problem. Not waiting for readiness, a refused certificate fails at once."""
        try:
            serving = check_health(channel, self.connect_timeout)
        except grpc.RpcError as error:
            raise translate(
                error,
                self.server,
                names=self.names,
                tls=self._tls,
                connect_timeout=self.connect_timeout,
            ) from None
        if not serving:
            raise ConnectionLostError(f"the brand server at {self.server} is not serving yet")

    def _exchange(
        self,
        session: PartnerSession,
        hello: pb.PartnerMessage,
        watcher: _SessionProgress | None,
        max_pending: int,
    ) -> None:
        pump = Pump(
            session,
            idle_timeout=self.idle_timeout,
            max_pending=max_pending,
            abort_message=lambda error: pb.PartnerMessage(
                abort=pb.Abort(
                    reason=INTERRUPTED if isinstance(error, KeyboardInterrupt) else str(error)[:500]
                )
            ),
        )
        with open_channel(self.server, self._credentials, self._server_name) as channel:
            self._wait_for_server(channel)
            outgoing = pump.outgoing(first=[hello])
            call = open_session(channel, outgoing if watcher is None else watcher.sending(outgoing))
            ended = threading.Event()
            call.add_done_callback(lambda _: ended.set())
            pump.on_error = lambda: _cancel_later(call)
            pump.start_watchdog(on_stall=call.cancel)
            try:
                pump.read(call if watcher is None else _observed(call, watcher))
                if pump.error is None:
                    # Wait for the brand to close the call: it has then recorded our acknowledgement.
                    for _ in call:
                        raise ProtocolError("the brand sent a message after the release")
            except grpc.RpcError as error:
                pump.fail(self._translate(error, session))
            if pump.error is not None:
                if isinstance(pump.error, grpc.RpcError):
                    raise self._translate(pump.error, session) from None
                if isinstance(pump.error, KeyboardInterrupt):
                    session.abort(INTERRUPTED)  # first: from here on no budget can be spent
                    ended.wait(ABORT_GRACE)  # then let the brand read our Abort and end the call
                raise pump.error

    def _translate(self, error: grpc.RpcError, session: PartnerSession) -> CleanroomError:
        return translate(
            error, self.server, names=self.names, tls=self._tls, session=session.session_id
        )


def _interruption(session: PartnerSession, store: StateStore) -> str:
    """What a Ctrl-C left behind: the session's fate and whether budget was spent, and why."""
    session_id = session.session_id
    if session_id is None or store.session_status(session_id) is None:
        return "before the session started: no privacy budget was spent"
    spent = store.budget_spent_by(session_id)
    unit = session.contract.ledger_unit
    if session.report is not None:
        return (
            f"after session {session_id} had finished: it spent {unit} {spent:g}, and its "
            f"report is stored in {store.path}; `cleanroom report export --state {store.path} "
            f"--session {session_id} --out report.json` writes it"
        )
    if not spent:
        return (
            f"during session {session_id}: it was aborted and no privacy budget was spent "
            "(budget is spent only once this side's records and dummy matches leave, and they "
            "had not)"
        )
    return (
        f"during session {session_id}: it was aborted, but {unit} {spent:g} of contract "
        f"'{session.contract.id}' was spent because this side's records and dummy matches "
        f"had already left for the brand ({store.budget_remaining(session.contract):g} left)"
    )


def _observed(
    call: Iterator[pb.BrandMessage], watcher: _SessionProgress
) -> Iterator[pb.BrandMessage]:
    for message in call:
        watcher.received(message)
        yield message


def _cancel_later(call: SessionCall, delay: float = 5.0) -> None:
    """Give an Abort message time to reach the brand, then drop the call."""
    timer = threading.Timer(delay, call.cancel)
    timer.daemon = True
    timer.start()


# How gRPC's C core reports each way a connection fails before the first message.
_REFUSED_BY_US = "certificate_verify_failed"  # the server's certificate is not the pinned one
_TLS_ALERT = re.compile(r"alert_(bad_certificate|unknown_ca|certificate_\w+|handshake_failure)")
# TLS 1.3: the server checks our certificate after the client finished its side, then closes.
_CLOSED_AFTER_HANDSHAKE = re.compile(r"failed to connect.*: socket closed\s*$")
_NOT_TLS = "wrong_version_number"


def translate(
    error: grpc.RpcError,
    server: str,
    *,
    names: SettingNames,
    tls: bool = True,
    connect_timeout: float | None = None,
    session: str | None = None,
) -> CleanroomError:
    """The brand's status back into the error it stood for, with the brand's message.

    ``tls``: whether the channel uses mutual TLS; ``connect_timeout`` is given while waiting
    for the server's first answer; ``session`` once the brand has opened a session, when a
    lost connection means the server went away mid-session, not that it cannot be reached."""
    assert isinstance(error, grpc.Call)
    details = error.details() or "no details"
    cls = error_class(dict(error.trailing_metadata() or ()).get(ERROR_METADATA))
    if cls is StorageError:  # the brand's disk, not ours: try again once it is fixed
        return ConnectionLostError(f"the brand ended the session: {details}; try again later")
    if cls is ConnectionLostError:
        return ConnectionLostError(f"the brand ended the session: {details}")
    if cls is not None and cls is not CryptoError:
        return cls(f"the brand refused: {details}")
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE and session is not None:
        return ConnectionLostError(
            f"the brand server at {server} stopped answering in the middle of session {session} "
            f"(its process ended or the connection dropped; nothing more was released): {details}"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return _unavailable(details, server, tls, names)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and connect_timeout is not None:
        return ConnectionLostError(
            f"no answer from the brand server at {server} within {connect_timeout:g} s "
            f"({names.connect_timeout}): is it running, and is this its address and port?"
        )
    if (
        code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
        and connect_timeout is not None
    ):
        return ProtocolError(f"{server} is not a cleanroom brand server ({details})")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "concurrent" in details.lower():
        return ConnectionLostError(
            f"the brand server at {server} is busy; try again later ({details})"
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return AuthenticationError(f"the brand refused: {details}")
    if code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ConnectionLostError(f"the session with {server} was interrupted: {details}")
    if code == grpc.StatusCode.INTERNAL and cls is CryptoError:
        return CryptoError()
    return ProtocolError(f"the brand ended the session ({code.name}): {details}")


def _unavailable(details: str, server: str, tls: bool, names: SettingNames) -> CleanroomError:
    """Exit 5 only for a certificate that one side's TLS refused; the rest is connectivity."""
    lowered = details.lower()
    if not tls:
        hint = " (a TLS server closes plain connections)" if "socket closed" in lowered else ""
        return ConnectionLostError(f"cannot reach the brand server at {server}{hint}: {details}")
    if _REFUSED_BY_US in lowered:
        return AuthenticationError(
            f"the server at {server} presented a certificate other than "
            f"{names.server_certificate}, the one "
            f"the contract pins for the brand: is this the brand's address? ({details})"
        )
    if _TLS_ALERT.search(lowered) or _CLOSED_AFTER_HANDSHAKE.search(lowered):
        return AuthenticationError(
            f"the brand server at {server} refused your certificate: its config does not pin "
            f"{names.certificate} for any contract it serves ({details})"
        )
    if _NOT_TLS in lowered:
        return ConnectionLostError(
            f"the server at {server} does not speak TLS: is the brand running --insecure, "
            f"or another program on that port? ({details})"
        )
    return ConnectionLostError(f"cannot reach the brand server at {server}: {details}")
