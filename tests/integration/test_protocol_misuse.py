"""Protocol misuse against the real servicer: a gRPC server with mutual TLS on port 0 and a
hand-driven partner stream built from a real PartnerSession's messages, then broken.

For each case: the documented status (docs/reference/exit-codes.md#over-the-wire), the
error class in the ``cleanroom-error`` trailing metadata where the servicer sets one, an
``abort`` or ``refused`` audit entry, and no change to any other table of the brand's state
(reports, reservations, list sketches) except that the sessions table gains this
session's row, marked aborted, and the ledger this session's charge (made when HelloReply
left). The cases and their statuses are listed in
docs/protocol.md#misuse-and-the-status-it-ends-with.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import grpc
import pytest
from support import Deployment, deploy_site, state_rows

from cleanroom.brand.config import load_server_config
from cleanroom.brand.servicer import build_server
from cleanroom.crypto.batches import INLINE_BELOW, BatchRunner
from cleanroom.lists.local import prepare_partner_list
from cleanroom.privacy.calibration import load_contract
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.proto.cleanroom.v1 import session_pb2_grpc
from cleanroom.protocol import brand as brand_module
from cleanroom.protocol.partner import PartnerSession, Phase
from cleanroom.store.state import StateStore
from cleanroom.transport.grpc import ERROR_METADATA

# A client-side deadline well past any honest answer (milliseconds here), so a server that
# never answers fails the test with DEADLINE_EXCEEDED instead of hanging it.
CALL_TIMEOUT = 30
POINT_SIZE = 32
# X25519 u-coordinates: 0 has order 2 (low order); 2^255 - 1 is not canonical (u >= p).
LOW_ORDER_U = bytes(32)
NON_CANONICAL_U = b"\xff" * 31 + b"\x7f"
# An edwards25519 encoding whose y = 2 has no x on the curve.
OFF_CURVE_POINT = (2).to_bytes(32, "little")


@pytest.fixture(scope="module")
def site(tmp_path_factory, certificates) -> Iterator[Deployment]:
    """One brand server for the module: every case starts its own session on it (and each
    spends budget once its HelloReply left, hence the large total)."""
    deployed = deploy_site(tmp_path_factory.mktemp("misuse"), certificates, epsilon_total=1000.0)
    yield deployed
    deployed.server.stop(grace=None)


@pytest.fixture(scope="module")
def pooled_site(tmp_path_factory, certificates) -> Iterator[Deployment]:
    """A brand server whose engine raises large W chunks on worker processes, as `serve
    --workers 2` does: the CryptoError then surfaces on the sending side a while after the
    chunk was read."""
    directory = tmp_path_factory.mktemp("pooled")
    inline = deploy_site(directory, certificates, epsilon_total=1000.0)
    inline.server.stop(grace=None)
    engine = BatchRunner(workers=2)
    server, port = build_server(load_server_config(directory / "brand.toml"), engine=engine)
    yield Deployment(directory, port, server)
    server.stop(grace=None)
    engine.close()


@pytest.fixture(scope="module")
def prepared(site):
    """The partner's contract and audience, prepared once."""
    contract = load_contract(site.directory / "contract.toml")
    return contract, prepare_partner_list(site.directory / "audience.csv", None, contract)


@pytest.fixture
def partner_kit(prepared, tmp_path):
    """What honest PartnerSessions need, with this test's own partner state (where the
    sessions the brand aborts stay running)."""
    return *prepared, StateStore(tmp_path / "partner-state.db")


class PartnerEnd:
    """The partner's end of one Session call, driven by hand to send what the library never would."""

    def __init__(self, site: Deployment) -> None:
        certs = site.directory / "certs"
        credentials = grpc.ssl_channel_credentials(
            (certs / "acme.crt").read_bytes(),
            (certs / "newsco.key").read_bytes(),
            (certs / "newsco.crt").read_bytes(),
        )
        self._channel = grpc.secure_channel(
            site.address, credentials, options=[("grpc.ssl_target_name_override", "acme")]
        )
        stub = session_pb2_grpc.CleanRoomStub(self._channel)
        self.sent: list[pb.PartnerMessage] = []
        self._outbox: queue.Queue[pb.PartnerMessage | None] = queue.Queue()
        self._call = stub.Session(self._requests(), timeout=CALL_TIMEOUT)

    def _requests(self) -> Iterator[pb.PartnerMessage]:
        while (message := self._outbox.get()) is not None:
            yield message

    def send(self, *messages: pb.PartnerMessage) -> None:
        for message in messages:
            self.sent.append(message)
            self._outbox.put(message)

    def half_close(self) -> None:
        self._outbox.put(None)

    def receive(self) -> pb.BrandMessage:
        return next(self._call)

    def outcome(self) -> grpc.RpcError:
        """Read to the end of the call, which must end with an error status."""
        with pytest.raises(grpc.RpcError) as ended:
            for _ in self._call:
                pass
        return ended.value

    def close(self) -> None:
        self.half_close()
        self._channel.close()


@pytest.fixture
def open_end(site):
    """Open hand-driven calls on demand; each is closed at the end of the test."""
    ends: list[PartnerEnd] = []

    def open_(on: Deployment | None = None) -> PartnerEnd:
        ends.append(PartnerEnd(on or site))
        return ends[-1]

    yield open_
    for end in ends:
        end.close()


def start(
    open_end, partner_kit, site: Deployment | None = None, declared: int | None = None
) -> tuple[PartnerEnd, PartnerSession, str]:
    """An honest Hello (declaring ``declared`` records if given) and the brand's reply: the
    brand has recorded the session as started."""
    contract, partner_list, store = partner_kit
    partner = PartnerSession(contract, partner_list, store)
    end = open_end(site)
    hello = partner.hello()
    if declared is not None:
        hello.hello.partner_records = declared
    end.send(hello)
    reply = end.receive()
    assert reply.WhichOneof("body") == "hello_reply"
    list(partner.receive(reply))
    return end, partner, reply.hello_reply.session_id


def round_two(end: PartnerEnd, partner: PartnerSession) -> tuple[list, list]:
    """The honest partner's Z chunks and W chunks, computed from the brand's whole round 1."""
    outgoing: list[pb.PartnerMessage] = []
    while partner.phase is Phase.ELEMENTS:
        outgoing.extend(partner.receive(end.receive()))
    z = [m for m in outgoing if m.WhichOneof("body") == "double_encrypted"]
    w = [m for m in outgoing if m.WhichOneof("body") == "partner_records"]
    assert z and w and len(z) + len(w) == len(outgoing)
    return z, w


def copy(message: pb.PartnerMessage) -> pb.PartnerMessage:
    return pb.PartnerMessage.FromString(message.SerializeToString())


def wait_for_audit(store: StateStore, session_id: str, event: str) -> dict:
    """The entry the servicer writes once it sees the call fail; gRPC can answer the client first
    when it refuses a message itself, so poll (the bound only stops a broken server hanging)."""
    deadline = time.monotonic() + CALL_TIMEOUT
    while time.monotonic() < deadline:
        found = [
            e
            for e in store.audit_entries()
            if e["event"] == event and e["session_id"] == session_id
        ]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no '{event}' audit entry for session {session_id}")


def assert_status(error: grpc.RpcError, code: grpc.StatusCode, error_class: str | None) -> None:
    assert error.code() == code, (error.code(), error.details())
    assert dict(error.trailing_metadata() or ()).get(ERROR_METADATA) == error_class


def assert_aborted_without_release(
    store: StateStore, before: dict[str, set[tuple]], session_id: str, reason: str | None = None
) -> None:
    """An abort entry, this session's row marked aborted, its budget spent (the brand
    charges when HelloReply, with its noisy sizes, leaves: docs/privacy.md#ledger), and
    nothing else changed."""
    entry = wait_for_audit(store, session_id, "abort")
    if reason is not None:
        assert reason in entry["detail"]["reason"]
    after = state_rows(store)
    assert store.session_status(session_id) == "aborted"
    for table in ("sessions", "ledger"):
        others = {row for row in after[table] if row[0] != session_id}
        assert others == before[table]
    assert [row[0] for row in after["ledger"] - before["ledger"]] == [session_id]
    assert {n: r for n, r in after.items() if n not in ("sessions", "ledger")} == {
        n: r for n, r in before.items() if n not in ("sessions", "ledger")
    }
    assert store.report(session_id) is None
    assert store.verify_audit() == len(store.audit_entries())


def test_a_message_before_hello_is_refused_without_starting_a_session(site, open_end):
    store = site.brand_store()
    before, audit_before = state_rows(store), len(store.audit_entries())
    end = open_end()
    end.send(pb.PartnerMessage(partner_records=pb.PartnerRecordsChunk(elements=b"", last=True)))
    assert_status(end.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert state_rows(store) == before
    new = store.audit_entries()[audit_before:]
    assert [e["event"] for e in new] == ["refused"]
    assert "must start with Hello" in new[0]["detail"]["reason"]


def test_records_before_the_double_encrypted_round_abort(site, open_end, partner_kit):
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    z, w = round_two(end, partner)
    end.send(*z[:-1], *w)  # one Z group still missing when W starts
    assert_status(end.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(store, before, session_id, "unexpected partner_records")


@pytest.mark.parametrize("repeated", ["hello", "last double-encrypted chunk"])
def test_a_repeated_message_aborts(site, open_end, partner_kit, repeated):
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    if repeated == "hello":
        end.send(copy(end.sent[0]))
        reason = "unexpected hello"
    else:
        z, _ = round_two(end, partner)
        end.send(*z, copy(z[-1]))
        reason = "unexpected double_encrypted"  # every group is complete: W is due
    assert_status(end.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(store, before, session_id, reason)


def test_a_repeated_group_aborts(site, open_end, partner_kit):
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    z, _ = round_two(end, partner)
    end.send(z[0], copy(z[0]))  # group (0, 0) again while others are still due
    assert_status(end.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(store, before, session_id, "sent twice")


@pytest.mark.parametrize("round_", ["double-encrypted", "partner records"])
def test_a_truncated_chunk_aborts(site, open_end, partner_kit, round_):
    """Packed bytes that are not a whole number of elements (12-byte Z, 32-byte W slots)."""
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    z, w = round_two(end, partner)
    if round_ == "double-encrypted":
        broken = copy(z[0])
        broken.double_encrypted.elements = broken.double_encrypted.elements[:-1]
        end.send(broken)
    else:
        broken = copy(w[0])
        broken.partner_records.elements = broken.partner_records.elements[:-1]
        end.send(*z, broken)
    assert_status(end.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(
        store,
        before,
        session_id,
        "is not a whole number of 12-byte"
        if round_ == "double-encrypted"
        else "is not a whole number of 64-byte",
    )


@pytest.mark.parametrize("round_", ["double-encrypted", "partner records"])
def test_more_elements_than_declared_abort(site, open_end, partner_kit, round_):
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    z, w = round_two(end, partner)
    if round_ == "double-encrypted":
        # One more element than the brand sent in group (0, 0).
        longer = copy(z[0])
        longer.double_encrypted.elements += longer.double_encrypted.elements[:12]
        end.send(longer)
        reason = "more double-encrypted elements than the brand sent"
    else:
        # Every declared record, the last chunk not marked last, then one record more.
        unfinished = copy(w[-1])
        unfinished.partner_records.last = False
        record = unfinished.partner_records.elements[: 2 * POINT_SIZE]
        extra = pb.PartnerMessage(partner_records=pb.PartnerRecordsChunk(elements=record))
        end.send(*z, *w[:-1], unfinished, extra)
        reason = "more records than the"
    assert_status(end.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(store, before, session_id, reason)


@pytest.mark.parametrize("point", [LOW_ORDER_U, NON_CANONICAL_U], ids=["low-order", "u>=p"])
@pytest.mark.parametrize("half_close", [False, True], ids=["held-open", "half-closed"])
def test_an_invalid_point_in_the_records_aborts_with_the_opaque_crypto_status(
    pooled_site, open_end, partner_kit, point, half_close
):
    """The brand raises W to its key on a worker and learns the point is bad on the sending
    side; a client half-closing right after the bad chunk must not turn that CryptoError into
    a lost connection."""
    store = pooled_site.brand_store()
    before = state_rows(store)
    records = INLINE_BELOW  # 2 keys per record: twice the slots a worker is started for
    end, partner, session_id = start(open_end, partner_kit, pooled_site, declared=records)
    z, w = round_two(end, partner)
    honest = b"".join(m.partner_records.elements for m in w)
    slots = (honest * (records * 2 * POINT_SIZE // len(honest) + 1))[: records * 2 * POINT_SIZE]
    bad = pb.PartnerMessage(
        partner_records=pb.PartnerRecordsChunk(elements=slots[:-POINT_SIZE] + point, last=True)
    )
    end.send(*z, bad)
    if half_close:
        end.half_close()
    error = end.outcome()
    assert_status(error, grpc.StatusCode.INTERNAL, "CryptoError")
    assert error.details() == "invalid cryptographic element received from the peer"
    assert_aborted_without_release(store, before, session_id, "invalid cryptographic element")


def test_an_attribute_sum_off_the_curve_aborts_with_the_opaque_crypto_status(
    site, open_end, partner_kit
):
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    z, w = round_two(end, partner)
    end.send(*z, *w)
    sums: list[pb.PartnerMessage] = []
    while not sums:
        sums.extend(partner.receive(end.receive()))
    bad = copy(sums[0])
    bad.attribute_sums.ciphertexts = OFF_CURVE_POINT + bad.attribute_sums.ciphertexts[POINT_SIZE:]
    end.send(bad)
    error = end.outcome()
    assert_status(error, grpc.StatusCode.INTERNAL, "CryptoError")
    assert_aborted_without_release(store, before, session_id, "invalid cryptographic element")


def test_an_oversized_message_is_refused_and_the_session_aborted(site, open_end, partner_kit):
    store = site.brand_store()
    before = state_rows(store)
    end, _, session_id = start(open_end, partner_kit)
    end.send(pb.PartnerMessage(double_encrypted=pb.DoubleEncryptedChunk(elements=bytes(5 << 20))))
    # The server refuses it itself, so the status and the audit say why.
    error = end.outcome()
    assert_status(error, grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert "byte limit" in error.details()
    assert_aborted_without_release(store, before, session_id, "exceeds the 4259840 byte limit")


def test_a_message_over_grpcs_own_limit_still_aborts_the_session(site, open_end, partner_kit):
    store = site.brand_store()
    before = state_rows(store)
    end, _, session_id = start(open_end, partner_kit)
    end.send(pb.PartnerMessage(double_encrypted=pb.DoubleEncryptedChunk(elements=bytes(9 << 20))))
    # gRPC refuses it before the servicer sees it: no cleanroom-error metadata.
    assert_status(end.outcome(), grpc.StatusCode.RESOURCE_EXHAUSTED, None)
    assert_aborted_without_release(store, before, session_id, "stream was cancelled")


@pytest.mark.parametrize("round_", ["double-encrypted", "partner records"])
def test_a_stream_of_empty_non_final_chunks_is_refused(site, partner_kit, open_end, round_):
    """Empty chunks that never end a group would keep a session alive forever without progress."""
    store = site.brand_store()
    before = state_rows(store)
    end, partner, session_id = start(open_end, partner_kit)
    z, _ = round_two(end, partner)
    if round_ == "double-encrypted":
        empty = pb.PartnerMessage(double_encrypted=pb.DoubleEncryptedChunk(elements=b""))
    else:
        end.send(*z)
        empty = pb.PartnerMessage(partner_records=pb.PartnerRecordsChunk(elements=b""))
    ended = threading.Event()

    def keep_sending() -> None:
        while not ended.wait(0.001):
            end.send(empty)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        error = end.outcome()
    finally:
        ended.set()
        sender.join()
    assert_status(error, grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(store, before, session_id, "empty")


def test_a_second_session_reusing_a_live_session_id_is_refused(
    site, open_end, partner_kit, monkeypatch
):
    """Session ids are the brand's draw, so a collision is forced here; the live session it
    would hijack keeps its row untouched."""
    store = site.brand_store()
    before = state_rows(store)
    first, _, reused = start(open_end, partner_kit)
    running = state_rows(store)
    monkeypatch.setattr(brand_module, "secrets", SimpleNamespace(token_hex=lambda _: reused))
    contract, partner_list, partner_store = partner_kit
    second = open_end()
    second.send(PartnerSession(contract, partner_list, partner_store).hello())
    assert_status(second.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    refusal = store.audit_entries()[-1]
    assert refusal["event"] == "refused" and refusal["session_id"] == reused
    assert "already used" in refusal["detail"]["reason"]
    assert state_rows(store) == running
    assert store.session_status(reused) == "running"
    monkeypatch.undo()
    first.send(pb.PartnerMessage(abort=pb.Abort(reason="test over")))
    assert_status(first.outcome(), grpc.StatusCode.INVALID_ARGUMENT, "ProtocolError")
    assert_aborted_without_release(store, before, reused, "the partner aborted the session")
