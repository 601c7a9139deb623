"""Random and mutated messages against both state machines and the servicer.

Whatever arrives, a session either completes or fails with a CleanroomError; it never
crashes with anything else, never hangs (each example runs under a time limit), and it
changes no state beyond an audit entry and the record of the session itself: every table
of the party's SQLite state but the audit log is compared before and after each example.
Ledger and reports change only when the session charged or released; any other table
only gains rows of this one session, which ends aborted (or released), with no budget
left reserved.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import state_rows

from cleanroom import errors
from cleanroom.brand.demo import synthetic_lists
from cleanroom.brand.servicer import CleanRoomService, Offer
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.elgamal import ElGamalPrivateKey
from cleanroom.errors import CleanroomError
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A contract, both prepared lists, and one honest session's messages in each direction."""
    from cleanroom.brand.demo import contract_text
    from cleanroom.privacy.calibration import parse_contract

    contract = parse_contract(
        contract_text(
            "a" * 64,
            "b" * 64,
            mechanism="none",
            min_set_size=10,
            min_overlap=0,
            attributes=("interest_travel", "parent"),
        ).encode()
    )
    lists = synthetic_lists(120, 200, seed=9)
    brand_list = prepare_brand_list(lists.crm, BRAND_COLUMNS, contract)
    partner_list = prepare_partner_list(lists.audience, None, contract)
    directory = tmp_path_factory.mktemp("fuzz")
    wire: list[tuple[str, bytes]] = []
    keys = Keys(
        CommutativeCipher.generate(), ElGamalPrivateKey.generate(), CommutativeCipher.generate()
    )
    run_in_process(
        keys.brand_session(contract, brand_list, StateStore(directory / "b.db")),
        PartnerSession(contract, partner_list, StateStore(directory / "p.db"), cipher=keys.partner),
        on_wire=lambda direction, data: wire.append((direction, data)),
    )
    to_brand = [
        pb.PartnerMessage.FromString(d) for direction, d in wire if direction == "partner->brand"
    ]
    to_partner = [
        pb.BrandMessage.FromString(d) for direction, d in wire if direction == "brand->partner"
    ]
    return contract, brand_list, partner_list, to_brand, to_partner, keys


@dataclass(frozen=True)
class Keys:
    """The honest session's keys, so a replayed stream gets as far as the honest one did."""

    brand: CommutativeCipher
    elgamal: ElGamalPrivateKey
    partner: CommutativeCipher

    def brand_session(self, contract, brand_list, store) -> BrandSession:
        return BrandSession(
            contract, brand_list, store, peer="fuzz", cipher=self.brand, elgamal_key=self.elgamal
        )


def blobs() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200), st.sampled_from([b"", b"\0" * 32, b"\xff" * 64, b"\0" * 12 * 5])
    )


def random_partner_message() -> st.SearchStrategy[pb.PartnerMessage]:
    u32 = st.integers(0, 2**32 - 1)
    return st.one_of(
        st.builds(
            lambda v, i, h, n: pb.PartnerMessage(
                hello=pb.Hello(
                    protocol_version=v, contract_id=i, contract_sha256=h, partner_records=n
                )
            ),
            u32,
            st.text(max_size=40),
            st.text(max_size=70),
            st.integers(0, 2**64 - 1),
        ),
        st.builds(
            lambda s, k, e, last: pb.PartnerMessage(
                double_encrypted=pb.DoubleEncryptedChunk(segment=s, key=k, elements=e, last=last)
            ),
            u32,
            u32,
            blobs(),
            st.booleans(),
        ),
        st.builds(
            lambda e, last: pb.PartnerMessage(
                partner_records=pb.PartnerRecordsChunk(elements=e, last=last)
            ),
            blobs(),
            st.booleans(),
        ),
        st.builds(
            lambda c, b: pb.PartnerMessage(
                attribute_sums=pb.AttributeSums(ciphertexts=c, base_counts=b)
            ),
            blobs(),
            st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
        ),
        st.builds(
            lambda t: pb.PartnerMessage(release_ack=pb.ReleaseAck(transcript_sha256=t)),
            st.text(max_size=70),
        ),
        st.builds(lambda r: pb.PartnerMessage(abort=pb.Abort(reason=r)), st.text(max_size=50)),
        st.just(pb.PartnerMessage()),
    )


def random_brand_message() -> st.SearchStrategy[pb.BrandMessage]:
    u32 = st.integers(0, 2**32 - 1)
    return st.one_of(
        st.builds(
            lambda sid, r, e, k: pb.BrandMessage(
                hello_reply=pb.HelloReply(
                    session_id=sid, brand_records=r, brand_elements=e, elgamal_public_key=k
                )
            ),
            st.sampled_from(["ab" * 16, "zz", ""]),
            st.lists(st.integers(0, 10**6), max_size=4),
            st.lists(st.integers(0, 10**6), max_size=8),
            blobs(),
        ),
        st.builds(
            lambda s, k, e, last: pb.BrandMessage(
                brand_elements=pb.BrandElementsChunk(segment=s, key=k, elements=e, last=last)
            ),
            u32,
            u32,
            blobs(),
            st.booleans(),
        ),
        st.builds(
            lambda c, last: pb.BrandMessage(
                indicators=pb.IndicatorsChunk(ciphertexts=c, last=last)
            ),
            blobs(),
            st.booleans(),
        ),
        st.builds(lambda j: pb.BrandMessage(release=pb.Release(report_json=j)), blobs()),
        st.just(pb.BrandMessage()),
    )


def mutations(messages: list, strategy: st.SearchStrategy) -> st.SearchStrategy[list]:
    """The honest stream with one change: drop, repeat, swap, corrupt bytes, or insert junk."""

    def apply(choice: int, i: int, j: int, flip: int, junk) -> list:
        stream = [type(m).FromString(m.SerializeToString()) for m in messages]
        i, j = i % len(stream), j % len(stream)
        if choice == 0:
            del stream[i]
        elif choice == 1:
            stream.insert(i, stream[i])
        elif choice == 2:
            stream[i], stream[j] = stream[j], stream[i]
        elif choice == 3:
            data = bytearray(stream[i].SerializeToString())
            data[flip % len(data)] ^= 1 << (flip % 8)
            try:
                stream[i] = type(stream[i]).FromString(bytes(data))
            except Exception:
                stream[i] = junk
        else:
            stream.insert(i, junk)
        return stream

    return st.builds(
        apply,
        st.integers(0, 4),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        strategy,
    )


# Far above any example (milliseconds): only a hang gets near it.
EXAMPLE_TIME_LIMIT = 30.0


def within_time_limit(run: Callable[[], None]) -> None:
    """Run one example on its own thread; one that has not finished in time is a hang."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True, name="fuzz-example")
    thread.start()
    thread.join(EXAMPLE_TIME_LIMIT)
    if thread.is_alive():
        pytest.fail(f"the example did not finish within {EXAMPLE_TIME_LIMIT:g} s: a hang")
    if outcome[0] is not None:
        raise outcome[0]


@pytest.fixture(scope="module")
def empty_state(tmp_path_factory) -> Path:
    """A state database with its schema, to copy: creating one costs more than an example."""
    path = tmp_path_factory.mktemp("empty-state") / "state.db"
    StateStore(path)
    return path


def fresh_store(empty_state: Path, tmp_path: Path) -> StateStore:
    """A new state database per example (Hypothesis reruns examples while shrinking)."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "state.db"
    shutil.copyfile(empty_state, path)
    return StateStore(path)


def drive(machine, stream) -> list[str]:
    """Feed a stream as the transport would: the machine may finish, or fail with a
    CleanroomError, nothing else; a stream that ends early aborts the session. Returns the
    kinds of the messages the machine sent."""
    sent: list[str] = []
    try:
        for message in stream:
            sent.extend(m.WhichOneof("body") for m in machine.receive(message))
            if machine.finished:
                return sent
        machine.abort("the stream ended early")
    except CleanroomError as error:
        machine.abort(str(error))
    return sent


def assert_only_the_session_recorded(
    store: StateStore, before: dict[str, set[tuple]], *, charged: bool, released: bool
) -> None:
    """No row lost or changed; ledger and reports gain a row only when the session charged or
    released; every other gained row is the one session's (keyed by its id), which ended
    aborted or released with no reservation left; settings untouched; the chain verifies."""
    after = state_rows(store)
    assert after.keys() == before.keys()
    for table in after:
        assert before[table] <= after[table], f"{table}: rows changed or removed"
    gained = {table: after[table] - before[table] for table in after}
    assert not gained["settings"]
    assert not gained.get("reservations"), "budget left reserved after the session ended"
    assert len(gained["ledger"]) == (1 if charged or released else 0)
    assert len(gained["reports"]) == (1 if released else 0)
    sessions = {row[0] for table, rows in gained.items() if table != "settings" for row in rows}
    assert len(sessions) <= 1, sessions
    for session_id in sessions:
        assert store.session_status(session_id) == ("released" if released else "aborted")
    assert store.verify_audit() == len(store.audit_entries())


@FUZZ
@given(data=st.data())
def test_brand_survives_mutated_and_random_partner_streams(world, empty_state, tmp_path, data):
    contract, brand_list, _, to_brand, _, keys = world
    stream = data.draw(
        st.one_of(
            mutations(to_brand, random_partner_message()),
            st.lists(random_partner_message(), max_size=6),
        )
    )
    store = fresh_store(empty_state, tmp_path)
    brand = keys.brand_session(contract, brand_list, store)
    before = state_rows(store)
    sent: list[str] = []
    within_time_limit(lambda: sent.extend(drive(brand, stream)))
    released = brand.report is not None
    # the brand spends as HelloReply, with its noisy sizes, leaves
    charged = "hello_reply" in sent
    assert_only_the_session_recorded(store, before, charged=charged, released=released)


@FUZZ
@given(data=st.data())
def test_partner_survives_mutated_and_random_brand_streams(world, empty_state, tmp_path, data):
    contract, _, partner_list, _, to_partner, keys = world
    stream = data.draw(
        st.one_of(
            mutations(to_partner, random_brand_message()),
            st.lists(random_brand_message(), max_size=6),
        )
    )
    store = fresh_store(empty_state, tmp_path)
    partner = PartnerSession(contract, partner_list, store, cipher=keys.partner)
    before = state_rows(store)
    sent: list[str] = []

    def run() -> None:
        partner.hello()
        sent.extend(drive(partner, stream))

    within_time_limit(run)
    assert_only_the_session_recorded(
        store,
        before,
        charged="partner_records" in sent,  # the partner spends as its records leave
        released=partner.report is not None,
    )


class Aborted(Exception):
    pass


class FakeContext:
    """What the servicer uses of grpc.ServicerContext, for driving it without a network;
    ``peer_certificate`` is the PEM the TLS layer would report for the client."""

    def __init__(self, peer_certificate: bytes | None) -> None:
        self.code: grpc.StatusCode | None = None
        self.metadata: tuple = ()
        self._peer = peer_certificate

    def auth_context(self) -> dict:
        return {"x509_pem_cert": [self._peer]} if self._peer else {}

    def is_active(self) -> bool:
        return True

    def add_callback(self, callback) -> bool:
        return True

    def cancel(self) -> None:
        pass

    def set_trailing_metadata(self, metadata) -> None:
        self.metadata = metadata

    def abort(self, code, details):
        self.code = code
        raise Aborted(details)


# Whom the servicer pins for the partner, and whom the TLS layer reports as the client.
IDENTITIES = {
    "unpinned (--insecure)": (None, None),
    "the pinned partner": ("newsco", "newsco"),
    "another certificate": ("newsco", "intruder"),
    "no certificate": ("newsco", None),
}


@FUZZ
@given(data=st.data())
def test_servicer_maps_any_stream_to_a_status(world, certificates, empty_state, tmp_path, data):
    contract, brand_list, _, to_brand, _, _ = world
    stream, identity = data.draw(
        st.tuples(
            st.one_of(
                mutations(to_brand, random_partner_message()),
                st.lists(random_partner_message(), max_size=6),
            ),
            st.sampled_from(sorted(IDENTITIES)),
        )
    )
    pinned, presented = IDENTITIES[identity]
    store = fresh_store(empty_state, tmp_path)
    offer = Offer(contract, brand_list, certificates[pinned][2] if pinned else None)
    service = CleanRoomService({contract.id: offer}, store, idle_timeout=5)
    context = FakeContext(certificates[presented][0].read_bytes() if presented else None)
    before = state_rows(store)
    sent: list[str] = []

    def run() -> None:
        try:
            for message in itertools.islice(service.Session(iter(stream), context), 10**6):
                sent.append(message.WhichOneof("body"))
        except Aborted:
            assert context.code is not None and context.code != grpc.StatusCode.OK
            # A cleanroom error, not a crash the servicer turned into "internal error".
            kind = dict(context.metadata).get("cleanroom-error")
            assert issubclass(getattr(errors, kind, type), CleanroomError), kind

    within_time_limit(run)
    released = "release" in sent
    charged = "hello_reply" in sent  # the brand spends as HelloReply leaves
    assert_only_the_session_recorded(store, before, charged=charged, released=released)
    if pinned and presented != pinned:
        # Refused before any data is read: no session; a Hello for this contract gets
        # PERMISSION_DENIED and a refusal in the audit log.
        assert state_rows(store) == before
        assert "session-start" not in [e["event"] for e in store.audit_entries()]
        first = stream[0] if stream else pb.PartnerMessage()
        if first.WhichOneof("body") == "hello" and first.hello.contract_id == contract.id:
            assert context.code == grpc.StatusCode.PERMISSION_DENIED
            assert store.audit_entries()[-1]["detail"]["reason"] == "certificate not pinned"


def test_an_unmodified_replay_reaches_the_release(world, tmp_path):
    """So the mutations above exercise every round, not just the first checks."""
    contract, brand_list, _, to_brand, _, keys = world
    store = StateStore(tmp_path / "replay.db")
    brand = keys.brand_session(contract, brand_list, store)
    drive(brand, to_brand)
    assert brand.report is not None  # released; the recorded ack names another session id
    assert store.latest_report_session() == brand.session_id
    assert any(e["event"] == "transcript-mismatch" for e in store.audit_entries())


def test_the_brand_spends_only_once_its_reply_is_sent(world, tmp_path):
    """The servicer reads the next message while the reply to Hello still waits to be sent;
    a failure there ends the session before the reply, and its noisy sizes, ever leave. The
    brand used to charge on receiving Hello, so such a session spent budget for nothing
    (found by the servicer fuzz test above, under load)."""
    contract, brand_list, _, to_brand, _, keys = world
    store = StateStore(tmp_path / "unsent.db")
    brand = keys.brand_session(contract, brand_list, store)
    brand.receive(to_brand[0])  # the Hello passes; its reply is produced as it is sent
    with pytest.raises(CleanroomError, match="unexpected hello"):
        brand.receive(to_brand[0])
    brand.abort("unexpected hello")
    assert store.session_status(brand.session_id) == "aborted"
    assert store.budget_spent_by(brand.session_id) == 0

    sent = StateStore(tmp_path / "sent.db")
    brand = keys.brand_session(contract, brand_list, sent)
    reply = next(iter(brand.receive(to_brand[0])))
    assert reply.WhichOneof("body") == "hello_reply"
    assert sent.budget_spent_by(brand.session_id) == contract.ledger_per_session
