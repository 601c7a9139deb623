"""Partner side of the session, as a state machine: messages in, messages out, no I/O.

Rounds (docs/protocol.md): 0 Hello; 1 it receives E = H(id)^b per (segment, key); 2 it
returns Z = E^a, reshuffled within each group and truncated, then W = H(id_k)^a for each
of its records in a secret random order, one slot per match key (a random group element
where the record lacks the key); 3 it receives Enc(match in segment s) per record;
4 it sums the ciphertexts of its records per (attribute, segment), adds Enc(its own
noise), re-randomises, and sends the sums with its noisy base counts (spending its budget
at that moment, since those numbers describe its rows); 5 it checks and stores the
report.

Dummy matches (docs/protocol.md#dummy-matches): for every match pattern the brand can
observe, the partner mixes a differentially private number of dummy records into W whose
slots match, through the brand's published B, the dummy elements it adds to Z; so the
brand's whole matching view is DP for the partner's rows. Dummies carry no attribute, so
they are left out of every sum, and Z groups are filled up to a public size.

What the partner learns here: the brand's noisy record count per segment and padded element
count per (segment, key), and the released report (brand-noised). The ElGamal ciphertexts
are semantically secure under DDH, so it learns nothing about which records matched.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

from cleanroom.contract import PROTOCOL_VERSION, Contract
from cleanroom.crypto.batches import INLINE, BatchRunner, add_sums, check_and_sum, encrypt
from cleanroom.crypto.commutative import CommutativeCipher, x25519_fresh_keys
from cleanroom.crypto.constants import CIPHERTEXT_SIZE, ELEMENT_SIZE
from cleanroom.crypto.elgamal import ElGamalPublicKey
from cleanroom.crypto.summation import add
from cleanroom.crypto.validation import clear_torsion
from cleanroom.errors import CleanroomError, PolicyError, ProtocolError
from cleanroom.identity import ReportSigner
from cleanroom.privacy.accounting import brand_budget, group_patterns, partner_budget, patterns
from cleanroom.privacy.setdiff import pack
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.common import (
    BASE_POINT,
    ELEMENTS_PER_CHUNK,
    TRUNCATED_SIZE,
    ReportVerifier,
    Transcript,
    check_set_difference,
    chunk_sizes,
    dispatch,
    group_index,
    recorded,
    shuffled_packed,
    split_elements,
    truncate,
)
from cleanroom.protocol.list_port import EncryptedRecords, OwnPartnerList
from cleanroom.protocol.ports import SessionStore
from cleanroom.report.document import Report

_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class Phase(enum.Enum):
    HELLO_REPLY = "hello-reply"
    ELEMENTS = "brand elements"
    INDICATORS = "indicators"
    RELEASE = "release"
    DONE = "done"
    FAILED = "failed"


class PartnerSession:
    """One session against one brand. Call :meth:`hello` first, then :meth:`receive` each
    brand message in order; :attr:`report` is set once the release is checked and stored."""

    def __init__(
        self,
        contract: Contract,
        partner_list: OwnPartnerList,
        store: SessionStore,
        *,
        cipher: CommutativeCipher | None = None,
        signer: ReportSigner | None = None,
        peer_key: ReportVerifier | None = None,
        engine: BatchRunner = INLINE,
    ) -> None:
        """``signer`` signs the report as the partner and ``peer_key`` checks the brand's
        signature (both None only with --insecure); ``cipher`` is for tests."""
        self.contract = contract
        self.store = store
        self.phase = Phase.HELLO_REPLY
        self.session_id: str | None = None
        self.report: Report | None = None
        self.transcript = Transcript()
        self._engine = engine
        self._signer = signer
        self._peer_key = peer_key
        self._cipher = cipher or CommutativeCipher.generate()
        self._list = partner_list
        self._sketch = partner_list.sketch(store.sketch_key())
        self._keys = len(contract.keys)
        self._segments = len(contract.segments)
        self._records: EncryptedRecords | None = None
        self._attributes = np.zeros((0, len(contract.attributes)), dtype=bool)
        self._budget = partner_budget(contract)
        self._noise = self._budget.release
        self._brand_padding = brand_budget(contract).sizes.maximum
        self._z_padding = self._budget.sizes.maximum * group_patterns(contract)
        # per dummy record, the segment each key matches in (-1: no match)
        self._dummy_patterns: list[tuple[int, ...]] = []
        self._dummy_slots = b""
        self._z_dummies: list[list[bytes]] = []
        self._is_dummy = np.zeros(0, dtype=bool)
        self._public_key: ElGamalPublicKey | None = None
        self._brand_records: list[int] = []
        self._declared: list[int] = []
        self._received: list[int] = []
        self._z_parts: list[list[Future[bytes]]] = []
        self._groups_done = 0
        self._chunk_sizes: list[int] = []
        self._chunk_starts: list[int] = []
        self._indicator_chunks = 0
        self._pending_sums: list[Future[list[list[bytes]]]] = []
        self._sums: list[list[bytes | None]] = []
        self._base_counts: list[int] = []
        self._hello_sent = False
        self._started = False

    # -- round 0 -----------------------------------------------------------------------------

    def hello(self) -> pb.PartnerMessage:
        """Check this side's preconditions and open the session; a refusal is audited."""
        try:
            self._check_preconditions()
        except CleanroomError as refusal:
            self.store.audit(
                "refused", contract_id=self.contract.id, by="partner", reason=str(refusal)
            )
            raise
        # Before connecting: a Spark engine runs its job here, not while the brand waits.
        self._records = self._list.encrypt(self._cipher, self._engine)
        self._draw_dummies()
        self._hello_sent = True
        message = pb.PartnerMessage(
            hello=pb.Hello(
                protocol_version=PROTOCOL_VERSION,
                contract_id=self.contract.id,
                contract_sha256=self.contract.sha256,
                partner_records=len(self._is_dummy),
            )
        )
        self.transcript.partner_sent(message)
        return message

    def _draw_dummies(self) -> None:
        """Dummy records per match pattern (a truncated, shifted discrete Laplace count each),
        at secret random positions among the real records; their attributes are all 0."""
        assert self._records is not None
        s, k = self._segments, self._keys
        counts = self._budget.sizes.sample(patterns(self.contract))
        for index, count in enumerate(counts):
            pattern = tuple(int((index // (s + 1) ** j) % (s + 1)) - 1 for j in range(k))
            self._dummy_patterns += [pattern] * int(count)
        total = self._list.size + len(self._dummy_patterns)
        self._is_dummy = np.zeros(total, dtype=bool)
        chosen = secrets.SystemRandom().sample(range(total), len(self._dummy_patterns))
        self._is_dummy[chosen] = True
        attributes = self._records.attributes
        self._attributes = np.zeros((total, attributes.shape[1]), dtype=bool)
        self._attributes[~self._is_dummy] = attributes
        self._chunk_sizes = chunk_sizes(total, self.contract)
        self._chunk_starts = np.cumsum([0, *self._chunk_sizes]).tolist()

    def _make_dummies(self, brand_point: bytes) -> None:
        """For each dummy match: a fresh t, W slot X25519(t, A) = X25519(a, X25519(t, G)) and
        Z element X25519(t, X25519(a, B)), which the brand's b makes equal; a key with no
        match gets X25519(t, G), a random element like a missing key's. ``encrypt``
        validates B (canonical, not of low order) like every received element."""
        own = self._cipher.encrypt(BASE_POINT)
        theirs = self._cipher.encrypt(brand_point)
        cells = np.array(
            [
                (key, segment)
                for pattern in self._dummy_patterns
                for key, segment in enumerate(pattern)
            ],
            dtype=np.int64,
        ).reshape(-1, 2)
        matched = cells[:, 1] >= 0
        keys = element_rows(secrets.token_bytes(ELEMENT_SIZE * len(cells)))
        slots = np.empty_like(keys)
        for rows, point in ((~matched, BASE_POINT), (matched, own)):
            slots[rows] = element_rows(x25519_fresh_keys(keys[rows].tobytes(), point))
        z_elements = element_rows(x25519_fresh_keys(keys[matched].tobytes(), theirs))
        self._z_dummies = [[] for _ in range(self._segments * self._keys)]
        for (key, segment), element in zip(cells[matched].tolist(), z_elements, strict=True):
            self._z_dummies[segment * self._keys + key].append(element[:TRUNCATED_SIZE].tobytes())
        self._dummy_slots = slots.tobytes()

    def _check_preconditions(self) -> None:
        self.contract.check_not_expired()
        if self._list.size < self.contract.min_set_size:
            raise PolicyError(
                f"{self._list.source}: {self._list.size} records with a valid key, below "
                f"release.min_set_size = {self.contract.min_set_size}"
            )
        self.store.require_budget(self.contract)
        check_set_difference(self.store, self.contract, self._sketch, "partner's")

    # -- dispatch ----------------------------------------------------------------------------

    def receive(self, message: pb.BrandMessage) -> Iterable[pb.PartnerMessage]:
        """Handle one brand message; the returned messages are produced lazily, in order."""
        handlers: dict[str, tuple[Phase, Callable[[Any], Iterable[pb.PartnerMessage]]]] = {
            "hello_reply": (Phase.HELLO_REPLY, self._on_hello_reply),
            "brand_elements": (Phase.ELEMENTS, self._on_elements),
            "indicators": (Phase.INDICATORS, self._on_indicators),
            "release": (Phase.RELEASE, self._on_release),
        }
        return dispatch(
            message,
            role="partner",
            phase=self.phase,
            handlers=handlers,
            unrecorded="release",
            record=self.transcript.brand_sent,
        )

    def _sent(self, messages: Iterable[pb.PartnerMessage]) -> Iterator[pb.PartnerMessage]:
        return recorded(messages, unrecorded="release_ack", record=self.transcript.partner_sent)

    def abort(self, reason: str) -> None:
        if self.phase in (Phase.DONE, Phase.FAILED):
            return
        self.phase = Phase.FAILED
        if self._started and self.session_id is not None:
            self.store.abort_session(self.session_id, self.contract.id, reason)
        elif self._hello_sent:  # refused by the brand, or lost before the brand opened a session
            self.store.audit(
                "abort", session_id=self.session_id, contract_id=self.contract.id, reason=reason
            )

    # -- round 1 and 2 -----------------------------------------------------------------------

    def _on_hello_reply(self, reply: pb.HelloReply) -> Iterable[pb.PartnerMessage]:
        groups = self._segments * self._keys
        if not _SESSION_ID.match(reply.session_id):
            raise ProtocolError("the brand's session id is malformed")
        if len(reply.brand_records) != self._segments or len(reply.brand_elements) != groups:
            raise ProtocolError(
                "the brand's hello reply does not match the contract's segments and keys"
            )
        if len(reply.match_public_key) != ELEMENT_SIZE:
            raise ProtocolError("the brand's hello reply has no valid match public key")
        for segment, records in zip(self.contract.segments, reply.brand_records, strict=True):
            if records < self.contract.min_set_size:
                raise PolicyError(
                    f"the brand's segment '{segment}' has {records} records, below "
                    f"release.min_set_size = {self.contract.min_set_size}"
                )
        for g, elements in enumerate(reply.brand_elements):
            # Padding adds 0 .. brand_padding elements: the group is either empty or at
            # least min_set_size, or the brand's software skipped its own group check.
            if self._brand_padding < elements < self.contract.min_set_size:
                s, k = divmod(g, self._keys)
                raise PolicyError(
                    f"the brand's segment '{self.contract.segments[s]}' declared {elements}"
                    f" {self.contract.keys[k]} elements: neither empty nor release.min_set_size"
                    f" = {self.contract.min_set_size} or more"
                )
        if self.contract.overlap_only:
            if reply.elgamal_public_key:
                raise ProtocolError("an overlap-only session must not carry an ElGamal key")
        else:
            self._public_key = ElGamalPublicKey.from_bytes(reply.elgamal_public_key)
        self._make_dummies(reply.match_public_key)
        self.session_id = reply.session_id
        self._brand_records = list(reply.brand_records)
        self._declared = list(reply.brand_elements)
        self._received = [0] * groups
        self._z_parts = [[] for _ in range(groups)]
        self._hello_sent = False  # begin_session records its own refusal, abort_session the rest
        self.store.begin_session(self.session_id, self.contract, peer=self.contract.brand.name)
        self._started = True
        self.phase = Phase.ELEMENTS
        return ()

    def _on_elements(self, chunk: pb.BrandElementsChunk) -> Iterable[pb.PartnerMessage]:
        g = group_index(self.contract, chunk.segment, chunk.key)
        if self._received[g] < 0:
            raise ProtocolError(
                f"brand group (segment {chunk.segment}, key {chunk.key}) sent twice"
            )
        count = split_elements(
            chunk.elements, ELEMENT_SIZE, "brand elements chunk", last=chunk.last
        )
        if count > ELEMENTS_PER_CHUNK:
            raise ProtocolError("brand elements chunk larger than the protocol allows")
        self._received[g] += count
        if self._received[g] > self._declared[g]:
            raise ProtocolError("the brand sent more elements than it declared")
        if count:  # E^a starts on a worker while later chunks are still arriving
            self._z_parts[g].append(
                self._engine.submit(count, encrypt, self._cipher, chunk.elements)
            )
        if not chunk.last:
            return ()
        if self._received[g] != self._declared[g]:
            raise ProtocolError(
                f"the brand sent {self._received[g]} elements in group {g}, it declared {self._declared[g]}"
            )
        self._received[g] = -1
        self._groups_done += 1
        outgoing = [self._reshuffled(g)]
        if self._groups_done == len(self._declared):
            self._check_streamed_brand_size()
            # Once its records reach the brand, the brand knows the exact overlap even if it
            # aborts later: remember this list for the set-difference check from now on.
            assert self.session_id is not None
            self.store.remember_list(self.session_id, self.contract, pack(self._sketch))
            outgoing.append(self._record_chunks())
            if not self.contract.overlap_only:
                self._sums = [[None] * self._segments for _ in self.contract.attributes]
            self.phase = Phase.INDICATORS if not self.contract.overlap_only else Phase.RELEASE
        return self._sent(m for part in outgoing for m in part)

    def _check_streamed_brand_size(self) -> None:
        """Without padding, the brand's streamed elements bound each segment's record count
        from below (a record gives at most one element per key). With padding they include
        up to ``brand_padding`` elements that match nothing, exactly as junk elements from a
        dishonest brand would: the check is then on the streamed counts, and the partner's
        protection against a tiny segment is its own dummies (docs/threat-model.md).
        Refuse before any record leaves."""
        for s, segment in enumerate(self.contract.segments):
            streamed = max(self._declared[s * self._keys : (s + 1) * self._keys])
            if streamed < self.contract.min_set_size:
                raise PolicyError(
                    f"the brand streamed elements for at most {streamed} records in segment "
                    f"'{segment}', below release.min_set_size = {self.contract.min_set_size}"
                )

    def _reshuffled(self, g: int) -> Iterator[pb.PartnerMessage]:
        packed = b"".join(truncate(part.result()) for part in self._z_parts[g])
        self._z_parts[g] = []
        # The dummies matching this group, and random filler up to their public maximum.
        dummies = self._z_dummies[g]
        filler = secrets.token_bytes(TRUNCATED_SIZE * (self._z_padding - len(dummies)))
        packed = shuffled_packed(b"".join([packed, *dummies, filler]), TRUNCATED_SIZE)
        segment, key = divmod(g, self._keys)
        step = ELEMENTS_PER_CHUNK * TRUNCATED_SIZE
        starts = range(0, len(packed), step) or range(1)
        for i, start in enumerate(starts):
            yield pb.PartnerMessage(
                double_encrypted=pb.DoubleEncryptedChunk(
                    segment=segment,
                    key=key,
                    elements=packed[start : start + step],
                    last=i == len(starts) - 1,
                )
            )

    def _record_chunks(self) -> Iterator[pb.PartnerMessage]:
        """W: the real records' chunks re-cut with the dummy records at their positions.
        The records and their dummies are the brand's matching view: this session's budget
        is spent just before the first chunk leaves."""
        assert self._records is not None and self.session_id is not None
        self.store.charge(self.session_id, self.contract)
        width = self._keys * ELEMENT_SIZE
        real = iter(self._records.chunks)
        pending = bytearray()
        dummies = np.frombuffer(self._dummy_slots, dtype=np.uint8).reshape(-1, width)
        used = 0
        last = len(self._chunk_sizes) - 1
        for i, (start, size) in enumerate(
            zip(self._chunk_starts[:-1], self._chunk_sizes, strict=True)
        ):
            is_dummy = self._is_dummy[start : start + size]
            wanted = (size - int(is_dummy.sum())) * width
            while len(pending) < wanted:
                pending += next(real)
            records = np.empty((size, width), dtype=np.uint8)
            records[~is_dummy] = np.frombuffer(bytes(pending[:wanted]), dtype=np.uint8).reshape(
                -1, width
            )
            del pending[:wanted]
            taken = int(is_dummy.sum())
            records[is_dummy] = dummies[used : used + taken]
            used += taken
            yield pb.PartnerMessage(
                partner_records=pb.PartnerRecordsChunk(elements=records.tobytes(), last=i == last)
            )

    # -- round 3 and 4 -----------------------------------------------------------------------

    def _on_indicators(self, chunk: pb.IndicatorsChunk) -> Iterable[pb.PartnerMessage]:
        assert self._public_key is not None
        j = self._indicator_chunks
        if j >= len(self._chunk_sizes):
            raise ProtocolError("indicators for records that were not sent")
        start, records = self._chunk_starts[j], self._chunk_sizes[j]
        if len(chunk.ciphertexts) != records * self._segments * CIPHERTEXT_SIZE:
            raise ProtocolError(
                f"indicator chunk {j} must hold {records * self._segments} ciphertexts"
            )
        masks = self._attributes[start : start + records].T
        cells = np.frombuffer(chunk.ciphertexts, dtype=np.uint8).reshape(
            records, self._segments, CIPHERTEXT_SIZE
        )
        per_segment = [cells[:, s, :].tobytes() for s in range(self._segments)]
        self._pending_sums.append(
            self._engine.submit(records * self._segments, check_and_sum, per_segment, masks)
        )
        self._indicator_chunks += 1
        is_last = self._indicator_chunks == len(self._chunk_sizes)
        if chunk.last != is_last:
            raise ProtocolError("the brand's indicator stream ended early or ran long")
        if not is_last:
            return ()
        self.phase = Phase.RELEASE
        return self._sent(self._attribute_sums())

    def _attribute_sums(self) -> Iterator[pb.PartnerMessage]:
        assert self._public_key is not None
        key = self._public_key
        for part in self._pending_sums:
            add_sums(self._sums, part.result())
        self._pending_sums = []
        cells = len(self.contract.attributes) * self._segments
        noise = self._noise.sample(cells + len(self.contract.attributes))
        ciphertexts = []
        for a in range(len(self.contract.attributes)):
            for s in range(self._segments):
                total = self._sums[a][s]
                total = None if total is None else clear_torsion(total)
                noisy = key.encrypt(int(noise[a * self._segments + s]))
                ciphertexts.append(key.rerandomize(noisy if total is None else add(total, noisy)))
        true_base = self._attributes.sum(axis=0).astype(np.int64)
        self._base_counts = (true_base + noise[cells:]).tolist()
        # Releasing noisy numbers about this side's rows: spend the budget now, atomically.
        assert self.session_id is not None
        self.store.charge(self.session_id, self.contract)
        yield pb.PartnerMessage(
            attribute_sums=pb.AttributeSums(
                ciphertexts=b"".join(ciphertexts), base_counts=self._base_counts
            )
        )

    # -- round 5 -----------------------------------------------------------------------------

    def _on_release(self, release: pb.Release) -> Iterable[pb.PartnerMessage]:
        report = _parse_report(release.report_json)
        if report.signed_bytes() != release.report_json:
            raise ProtocolError("the brand's release is not in canonical form")
        self._check_report(report)
        if self._peer_key is not None and not self._peer_key.verify(
            release.brand_signature, release.report_json
        ):
            raise ProtocolError("the brand's signature on the report does not verify")
        assert self.session_id is not None
        signatures = {}
        if self._peer_key is not None:
            signatures["brand"] = self._peer_key.entry(release.brand_signature)
        signature = b""
        if self._signer is not None:
            signatures["partner"] = self._signer.sign(release.report_json)
            signature = bytes.fromhex(signatures["partner"]["signature"])
        self.report = self.store.commit_release(
            self.session_id, self.contract, report.signed(signatures)
        )
        self.phase = Phase.DONE
        return [
            pb.PartnerMessage(
                release_ack=pb.ReleaseAck(
                    transcript_sha256=report.transcript_sha256, partner_signature=signature
                )
            )
        ]

    def _check_report(self, report: Report) -> None:
        """The brand must release what this session computed: refuse a report that differs."""
        document = report.document
        expected = {
            "contract_id": self.contract.id,
            "contract_sha256": self.contract.sha256,
            "session_id": self.session_id,
            "transcript_sha256": self.transcript.hexdigest(),
            # the noisy total less the dummies' public mean, as the brand computes it
            "partner_size": len(self._is_dummy)
            - self._budget.sizes.shift * patterns(self.contract),
            "brand_size": dict(zip(self.contract.segments, self._brand_records, strict=True)),
        }
        for field, value in expected.items():
            if document.get(field) != value:
                raise ProtocolError(f"the brand's report disagrees with this session on '{field}'")
        cells = document.get("attributes")
        if (
            not isinstance(cells, list)
            or len(cells) != len(self.contract.attributes) * self._segments
        ):
            raise ProtocolError("the brand's report does not list every (attribute, segment) cell")
        for i, cell in enumerate(cells):
            attribute = self.contract.attributes[i // self._segments]
            if not isinstance(cell, dict) or cell.get("attribute") != attribute:
                raise ProtocolError(
                    "the brand's report lists attribute cells out of contract order"
                )
            sent = max(0, self._base_counts[i // self._segments])
            if cell.get("partner_count") not in (None, sent):
                raise ProtocolError(
                    f"the brand's report changed the partner count of '{attribute}'"
                )

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE


def _parse_report(data: bytes) -> Report:
    try:
        return Report.parse(data)
    except ValueError:
        raise ProtocolError("the brand's release is not valid JSON") from None
    except TypeError:
        raise ProtocolError("the brand's release is not a JSON object") from None


def element_rows(packed: bytes) -> np.ndarray:
    """Packed 32-byte elements as an (n, 32) byte matrix, without a copy."""
    return np.frombuffer(packed, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
