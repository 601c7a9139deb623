"""Random and mutated messages against both state machines and the servicer.

Whatever arrives, a session either completes or fails with a CleanroomError; it never
crashes with anything else, never hangs, and a failed session leaves no report and spends
no budget.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.elgamal import ElGamalPrivateKey
from cleanroom.demo import synthetic_lists
from cleanroom.errors import CleanroomError
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.inprocess import run_in_process
from cleanroom.protocol.lists import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.partner import PartnerSession
from cleanroom.server.service import CleanRoomService, Offer
from cleanroom.store.state import StateStore

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
    from cleanroom.contract import parse_contract
    from cleanroom.demo import contract_text

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
        st.builds(lambda r: pb.BrandMessage(abort=pb.Abort(reason=r)), st.text(max_size=50)),
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


def drive(machine, stream) -> None:
    """Feed a stream; the machine may finish, or fail with a CleanroomError, nothing else."""
    try:
        for message in stream:
            for _ in machine.receive(message):
                pass
            if machine.finished:
                return
    except CleanroomError as error:
        machine.abort(str(error))


def assert_spent_only_with_a_report(store: StateStore, contract_id: str) -> None:
    """The brand spends budget exactly when it stores (and releases) a report."""
    assert (store.epsilon_spent(contract_id) > 0) == (store.latest_report_session() is not None)


@FUZZ
@given(data=st.data())
def test_brand_survives_mutated_and_random_partner_streams(world, tmp_path, data):
    contract, brand_list, _, to_brand, _, keys = world
    stream = data.draw(
        st.one_of(
            mutations(to_brand, random_partner_message()),
            st.lists(random_partner_message(), max_size=6),
        )
    )
    store = StateStore(tmp_path / f"b{data.draw(st.integers(0, 10**9))}.db")
    brand = keys.brand_session(contract, brand_list, store)
    drive(brand, stream)
    assert_spent_only_with_a_report(store, contract.id)
    assert store.verify_audit() == len(store.audit_entries())


@FUZZ
@given(data=st.data())
def test_partner_survives_mutated_and_random_brand_streams(world, tmp_path, data):
    contract, _, partner_list, _, to_partner, keys = world
    stream = data.draw(
        st.one_of(
            mutations(to_partner, random_brand_message()),
            st.lists(random_brand_message(), max_size=6),
        )
    )
    store = StateStore(tmp_path / f"p{data.draw(st.integers(0, 10**9))}.db")
    partner = PartnerSession(contract, partner_list, store, cipher=keys.partner)
    partner.hello()
    drive(partner, stream)
    if not partner.finished:
        assert store.latest_report_session() is None


class Aborted(Exception):
    pass


class FakeContext:
    """What the servicer uses of grpc.ServicerContext, for driving it without a network."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.metadata: tuple = ()

    def auth_context(self) -> dict:
        return {}

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


@FUZZ
@given(data=st.data())
def test_servicer_maps_any_stream_to_a_status(world, tmp_path, data):
    contract, brand_list, _, to_brand, _, _ = world
    stream = data.draw(
        st.one_of(
            mutations(to_brand, random_partner_message()),
            st.lists(random_partner_message(), max_size=6),
        )
    )
    store = StateStore(tmp_path / f"s{data.draw(st.integers(0, 10**9))}.db")
    service = CleanRoomService(
        {contract.id: Offer(contract, brand_list, None)}, store, idle_timeout=5
    )
    context = FakeContext()
    try:
        for _ in itertools.islice(service.Session(iter(stream), context), 10**6):
            pass
    except Aborted:
        assert context.code is not None and context.code != grpc.StatusCode.OK
        assert dict(context.metadata).get("cleanroom-error")
    assert_spent_only_with_a_report(store, contract.id)


def test_an_unmodified_replay_reaches_the_release(world, tmp_path):
    """So the mutations above exercise every round, not just the first checks."""
    contract, brand_list, _, to_brand, _, keys = world
    store = StateStore(tmp_path / "replay.db")
    brand = keys.brand_session(contract, brand_list, store)
    drive(brand, to_brand)
    assert brand.report is not None  # released; the recorded ack names another session id
    assert store.latest_report_session() == brand.session_id
    assert any(e["event"] == "transcript-mismatch" for e in store.audit_entries())
