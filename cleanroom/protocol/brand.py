"""Brand side of the session, as a state machine: messages in, messages out, no I/O.

Rounds (docs/protocol.md): 0 Hello -> HelloReply; 1 the brand streams E = H(id)^b per
(segment, key), shuffled; 2 it receives Z = E^a (reshuffled by the partner, truncated)
and W = H(id_k)^a per partner record; 3 it raises W to b, matches against Z with the
contract's key priority and, for an attribute contract, returns Enc(match in segment s)
per record; 4 it receives the partner's encrypted, noised sums; 5 it decrypts, adds its
own noise, suppresses small cells, stores the report and spends budget atomically, and
releases it.

What the brand learns here (docs/threat-model.md): the partner's record count and, per W
record, which key matched in which segment; both include the partner's dummy matches, so
this whole matching view is differentially private for the partner's rows; and the
partner-noised attribute sums and base counts. It never learns which partner record
matched which of its identifiers: Z comes back reshuffled (and padded), and W entries are
in the partner's own secret order. It publishes B = X25519(b, G) so that the partner can
make dummies that match, and pads each of its own groups with elements that match nothing.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

from cleanroom import _native
from cleanroom.contract import PROTOCOL_VERSION, Contract
from cleanroom.crypto.batches import (
    INLINE,
    BatchRunner,
    encrypt,
    encrypt_indicators,
    hash_and_encrypt,
)
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.constants import CIPHERTEXT_SIZE, ELEMENT_SIZE
from cleanroom.crypto.elgamal import ElGamalPrivateKey
from cleanroom.errors import CleanroomError, ContractError, PolicyError, ProtocolError
from cleanroom.faults import crash_point
from cleanroom.identity import ReportSigner
from cleanroom.privacy.accounting import (
    brand_budget,
    group_patterns,
    overlap_offset,
    partner_budget,
    patterns,
)
from cleanroom.privacy.setdiff import pack
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.common import (
    BASE_POINT,
    ELEMENTS_PER_CHUNK,
    TRUNCATED_SIZE,
    ReportVerifier,
    Transcript,
    check_set_difference,
    dispatch,
    dummy_messages,
    group_index,
    recorded,
    records_per_chunk,
    shuffled_packed,
    split_elements,
    truncate,
)
from cleanroom.protocol.list_port import OwnBrandList
from cleanroom.protocol.ports import SessionStore
from cleanroom.report.document import Report
from cleanroom.report.release import ReleasedCounts, build_report


class Phase(enum.Enum):
    HELLO = "hello"
    DOUBLE_ENCRYPTED = "double-encrypted"
    RECORDS = "records"
    SUMS = "sums"
    ACK = "ack"
    DONE = "done"
    FAILED = "failed"


class _MatchTable:
    """Truncated Z elements of one match key, with the segment of each; looked up natively
    (a sorted table and binary search, native/src/lookup.rs)."""

    def __init__(self) -> None:
        self._parts: list[tuple[bytes, int]] = []
        self._table = _native.MatchTable(b"", b"", TRUNCATED_SIZE)

    def add(self, packed: bytes, segment: int) -> None:
        self._parts.append((packed, segment))

    def freeze(self) -> None:
        values = b"".join(p for p, _ in self._parts)
        segments = b"".join(
            np.full(len(p) // TRUNCATED_SIZE, s, dtype=np.int8).tobytes() for p, s in self._parts
        )
        self._table = _native.MatchTable(values, segments, TRUNCATED_SIZE)
        self._parts = []

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Segment index of each value, or -1 where it is not in the table."""
        return np.frombuffer(self._table.lookup(values.tobytes()), dtype=np.int8)


class BrandSession:
    """One session with one partner. Built by the server once the partner's TLS identity
    and contract are known; :meth:`receive` takes each partner message in order."""

    def __init__(
        self,
        contract: Contract,
        brand_list: OwnBrandList,
        store: SessionStore,
        *,
        peer: str,
        cipher: CommutativeCipher | None = None,
        elgamal_key: ElGamalPrivateKey | None = None,
        signer: ReportSigner | None = None,
        peer_key: ReportVerifier | None = None,
        engine: BatchRunner = INLINE,
        sketch: np.ndarray | None = None,
    ) -> None:
        """``signer`` signs the report as the brand and ``peer_key`` checks the partner's
        signature (both None only with --insecure); ``cipher`` and ``elgamal_key`` are for
        tests: sessions draw fresh keys."""
        self.contract = contract
        self.store = store
        self.peer = peer
        self.session_id = secrets.token_hex(16)
        self.phase = Phase.HELLO
        self.report: Report | None = None
        self.transcript = Transcript()
        self._engine = engine
        self._signer = signer
        self._peer_key = peer_key
        self._report_bytes = b""
        self._cipher = cipher or CommutativeCipher.generate()
        self._elgamal = (
            None if contract.overlap_only else (elgamal_key or ElGamalPrivateKey.generate())
        )
        self._budget = brand_budget(contract)
        self._partner_budget = partner_budget(contract)
        self._brand_noise = self._budget.release
        self._partner_noise = self._partner_budget.release
        self._keys = len(contract.keys)
        self._segments = len(contract.segments)
        # The server passes the sketch it computed once for this list; computing it is O(list).
        self._sketch = sketch if sketch is not None else brand_list.sketch(store.sketch_key())
        self._list = brand_list
        self._true_group_sizes = brand_list.group_sizes()
        self._true_records = brand_list.records_per_segment()
        # What the partner sees of this list: each group padded with a DP number of
        # elements that match nothing, and noisy record counts (docs/privacy.md).
        self._padding = self._budget.sizes.sample(len(self._true_group_sizes)).tolist()
        self._group_sizes = [
            size + pad for size, pad in zip(self._true_group_sizes, self._padding, strict=True)
        ]
        noisy_records = np.asarray(self._true_records) + self._brand_noise.sample(self._segments)
        self._brand_records = [max(0, int(r)) for r in noisy_records]
        # Z carries the partner's dummies for this group and filler up to their maximum.
        self._z_padding = self._partner_budget.sizes.maximum * group_patterns(contract)
        self._z_received = [0] * len(self._group_sizes)
        self._z_complete = [False] * len(self._group_sizes)
        self._tables = [_MatchTable() for _ in contract.keys]
        self._declared_records = 0
        self._records_seen = 0
        self._max_chunk_records = records_per_chunk(contract)
        self._by_segment = np.zeros(self._segments, dtype=np.int64)
        self._started = False

    # -- dispatch ----------------------------------------------------------------------------

    def receive(self, message: pb.PartnerMessage) -> Iterable[pb.BrandMessage]:
        """Handle one partner message; the returned messages are produced lazily, in order."""
        handlers: dict[str, tuple[Phase, Callable[[Any], Iterable[pb.BrandMessage]]]] = {
            "hello": (Phase.HELLO, self._on_hello),
            "double_encrypted": (Phase.DOUBLE_ENCRYPTED, self._on_double_encrypted),
            "partner_records": (Phase.RECORDS, self._on_records),
            "attribute_sums": (Phase.SUMS, self._on_sums),
            "release_ack": (Phase.ACK, self._on_ack),
        }
        return dispatch(
            message,
            role="brand",
            phase=self.phase,
            handlers=handlers,
            unrecorded="release_ack",
            record=self.transcript.partner_sent,
        )

    def _sent(self, messages: Iterable[pb.BrandMessage]) -> Iterator[pb.BrandMessage]:
        return recorded(messages, unrecorded="release", record=self.transcript.brand_sent)

    def abort(self, reason: str) -> None:
        """Record a failed session: nothing released, no budget spent."""
        if self.phase in (Phase.DONE, Phase.FAILED):
            return
        released = self.phase is Phase.ACK
        self.phase = Phase.FAILED
        if self._started and not released:
            self.store.abort_session(self.session_id, self.contract.id, reason)

    # -- round 0 -----------------------------------------------------------------------------

    def _on_hello(self, hello: pb.Hello) -> Iterable[pb.BrandMessage]:
        try:
            self._check_hello(hello)
        except CleanroomError as refusal:
            self.store.audit(
                "refused", contract_id=self.contract.id, peer=self.peer, reason=str(refusal)
            )
            raise
        self.store.begin_session(self.session_id, self.contract, self.peer)
        self._started = True
        self._declared_records = hello.partner_records
        self.phase = Phase.DOUBLE_ENCRYPTED
        reply = pb.BrandMessage(
            hello_reply=pb.HelloReply(
                session_id=self.session_id,
                brand_records=self._brand_records,
                brand_elements=self._group_sizes,
                elgamal_public_key=self._elgamal.public_key.to_bytes() if self._elgamal else b"",
                match_public_key=self._cipher.encrypt(BASE_POINT),
            )
        )
        return self._sent(self._hello_and_elements(reply))

    def _check_hello(self, hello: pb.Hello) -> None:
        contract = self.contract
        if hello.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {hello.protocol_version} is not supported (this brand speaks {PROTOCOL_VERSION})"
            )
        if hello.contract_id != contract.id or hello.contract_sha256 != contract.sha256:
            raise ContractError(
                f"contract hash mismatch for '{contract.id}': the partner holds "
                f"{hello.contract_sha256[:16]}..., the brand {contract.sha256[:16]}...; both must "
                "hold the byte-identical file (compare with 'cleanroom contract hash')"
            )
        contract.check_not_expired()
        if hello.partner_records < contract.min_set_size:
            raise PolicyError(
                f"the partner's list has {hello.partner_records} records, below release.min_set_size"
                f" = {contract.min_set_size}"
            )
        for segment, records in zip(contract.segments, self._true_records, strict=True):
            # Per segment: a tiny segment would tell the brand whether its few members
            # are in the partner's list, and the partner refuses it too.
            if records < contract.min_set_size:
                raise PolicyError(
                    f"the brand's segment '{segment}' has {records} records, below "
                    f"release.min_set_size = {contract.min_set_size}"
                )
        for g, elements in enumerate(self._true_group_sizes):
            # Per (segment, key) group too: 1,000 emails and 3 phones would otherwise tell
            # which of those 3 phones the partner holds. An empty group is allowed.
            if 0 < elements < contract.min_set_size:
                s, k = divmod(g, self._keys)
                raise PolicyError(
                    f"the brand's segment '{contract.segments[s]}' has {elements} "
                    f"{contract.keys[k]} identifiers, below release.min_set_size = "
                    f"{contract.min_set_size} (a group may be empty, not smaller)"
                )
        check_set_difference(self.store, contract, self._sketch, "brand's")
        # The budget is checked and reserved atomically by begin_session, which audits a refusal.

    def _hello_and_elements(self, reply: pb.BrandMessage) -> Iterator[pb.BrandMessage]:
        """The reply, then E. The padded sizes in the reply are this side's first noisy
        release: the budget is spent just before it leaves, and not at all if the session
        fails before it is sent (a later message from the partner failed the session)."""
        self.store.charge(self.session_id, self.contract)
        yield reply
        for segment, key, last, elements in self._padded_groups():
            yield pb.BrandMessage(
                brand_elements=pb.BrandElementsChunk(
                    segment=segment, key=key, elements=elements, last=last
                )
            )

    def _padded_groups(self) -> Iterator[tuple[int, int, bool, bytes]]:
        """The list's E groups, each with its padding shuffled in: H(random)^b elements that
        no identifier can produce, indistinguishable from the rest. Without padding the
        groups stream as the list produces them; with it, a group is held until complete."""
        groups = self._list.encrypt(self._cipher, self._engine)
        if not any(self._padding):
            yield from groups
            return
        dst = self.contract.hash_to_curve_dst()
        held: list[bytes] = []
        for segment, key, last, elements in groups:
            held.append(elements)
            if not last:
                continue
            pad = self._padding[segment * self._keys + key]
            held.append(hash_and_encrypt(self._cipher, dummy_messages(pad), dst))
            group = shuffled_packed(b"".join(held), ELEMENT_SIZE)
            held = []
            step = ELEMENTS_PER_CHUNK * ELEMENT_SIZE
            starts = range(0, len(group), step) or range(1)
            for i, start in enumerate(starts):
                yield segment, key, i == len(starts) - 1, group[start : start + step]

    # -- round 2 -----------------------------------------------------------------------------

    def _on_double_encrypted(self, chunk: pb.DoubleEncryptedChunk) -> Iterable[pb.BrandMessage]:
        g = group_index(self.contract, chunk.segment, chunk.key)
        if self._z_complete[g]:
            raise ProtocolError(
                f"double-encrypted group (segment {chunk.segment}, key {chunk.key}) sent twice"
            )
        count = split_elements(
            chunk.elements, TRUNCATED_SIZE, "double-encrypted chunk", last=chunk.last
        )
        self._z_received[g] += count
        declared = self._group_sizes[g] + self._z_padding
        if self._z_received[g] > declared:
            raise ProtocolError(f"more double-encrypted elements than the brand sent in group {g}")
        self._tables[chunk.key].add(chunk.elements, chunk.segment)
        if chunk.last:
            if self._z_received[g] != declared:
                raise ProtocolError(
                    f"group {g}: {self._z_received[g]} double-encrypted elements, expected {declared}"
                )
            self._z_complete[g] = True
            if all(self._z_complete):
                for table in self._tables:
                    table.freeze()
                self.phase = Phase.RECORDS
        return ()

    # -- round 3 -----------------------------------------------------------------------------

    def _on_records(self, chunk: pb.PartnerRecordsChunk) -> Iterable[pb.BrandMessage]:
        slots = split_elements(
            chunk.elements, ELEMENT_SIZE * self._keys, "partner records chunk", last=chunk.last
        )
        if slots > self._max_chunk_records:
            raise ProtocolError(
                f"partner records chunk of {slots} records exceeds {self._max_chunk_records}"
            )
        self._records_seen += slots
        if self._records_seen > self._declared_records:
            raise ProtocolError(
                f"the partner sent more records than the {self._declared_records} it declared"
            )
        # W^b starts on a worker now; matching waits for it on the sending side, in order.
        raised = self._engine.submit(slots * self._keys, encrypt, self._cipher, chunk.elements)
        outgoing: list[Iterable[pb.BrandMessage]] = [self._matched(raised, slots, last=chunk.last)]
        if chunk.last:
            if self._records_seen != self._declared_records:
                raise ProtocolError(
                    f"the partner sent {self._records_seen} records, it declared {self._declared_records}"
                )
            if self._records_seen < self.contract.min_set_size:
                raise PolicyError(
                    f"the partner streamed {self._records_seen} records, below release.min_set_size"
                )
            if self._elgamal is None:
                outgoing.append(self._release(None))
            else:
                self.phase = Phase.SUMS
        return self._sent(m for part in outgoing for m in part)

    def _matched(
        self, raised: Future[bytes], records: int, last: bool
    ) -> Iterator[pb.BrandMessage]:
        segment = self._match(raised.result(), records)
        if self._elgamal is not None:
            yield from self._indicators(segment, last)

    def _match(self, raised_elements: bytes, records: int) -> np.ndarray:
        """Segment of each record (-1 if unmatched): its first key, in priority order, that matches."""
        raised = truncate(raised_elements)
        values = np.frombuffer(raised, dtype=f"S{TRUNCATED_SIZE}").reshape(records, self._keys)
        segment = np.full(records, -1, dtype=np.int8)
        for k, table in enumerate(self._tables):
            hit = table.lookup(values[:, k])
            new = (segment < 0) & (hit >= 0)
            segment[new] = hit[new]
        self._by_segment += np.bincount(segment[segment >= 0], minlength=self._segments)
        return segment

    def _indicators(self, segment: np.ndarray, last: bool) -> Iterator[pb.BrandMessage]:
        assert self._elgamal is not None
        bits = np.zeros((len(segment), self._segments), dtype=np.uint8)
        matched = segment >= 0
        bits[np.flatnonzero(matched), segment[matched]] = 1
        ciphertexts = self._engine.submit(
            bits.size, encrypt_indicators, self._elgamal, bits.ravel()
        ).result()
        yield pb.BrandMessage(indicators=pb.IndicatorsChunk(ciphertexts=ciphertexts, last=last))

    # -- rounds 4 and 5 ----------------------------------------------------------------------

    def _on_sums(self, sums: pb.AttributeSums) -> Iterable[pb.BrandMessage]:
        assert self._elgamal is not None
        cells = len(self.contract.attributes) * self._segments
        if len(sums.ciphertexts) != cells * CIPHERTEXT_SIZE or len(sums.base_counts) != len(
            self.contract.attributes
        ):
            raise ProtocolError(
                f"attribute sums must hold {cells} ciphertexts and {len(self.contract.attributes)} base counts"
            )
        bound = self._records_seen + self._partner_noise.bound()
        values = [
            self._elgamal.decrypt(
                sums.ciphertexts[i * CIPHERTEXT_SIZE : (i + 1) * CIPHERTEXT_SIZE], bound
            )
            for i in range(cells)
        ]
        for count in sums.base_counts:
            if abs(count) > bound:
                raise ProtocolError("a partner base count is outside the possible range")
        noisy = np.asarray(values, dtype=np.int64).reshape(
            len(self.contract.attributes), self._segments
        )
        noisy += self._brand_noise.sample(noisy.size).reshape(noisy.shape)
        return self._sent(self._release((noisy, list(sums.base_counts))))

    def _release(
        self, attributes: tuple[np.ndarray, list[int]] | None
    ) -> Iterator[pb.BrandMessage]:
        # The matched counts include the partner's dummies: subtract their public mean.
        dummies = self._partner_budget.sizes
        offset = overlap_offset(self.contract, dummies)
        by_segment = self._by_segment - offset + self._brand_noise.sample(self._segments)
        transcript = self.transcript.hexdigest()
        counts = ReleasedCounts(
            by_segment=by_segment.tolist(),
            attribute_counts=None if attributes is None else attributes[0],
            partner_counts=None if attributes is None else attributes[1],
        )
        partner_size = self._records_seen - dummies.shift * patterns(self.contract)

        def signed(ledger_remaining: float) -> Report:
            report = build_report(
                contract=self.contract,
                session_id=self.session_id,
                transcript_sha256=transcript,
                brand_records=self._brand_records,
                partner_size=partner_size,
                counts=counts,
                brand=self._budget,
                partner=self._partner_budget,
                ledger_remaining=ledger_remaining,
            )
            if self._signer is None:
                return report
            return report.signed({"brand": self._signer.sign(report.signed_bytes())})

        released = self.store.commit_release(
            self.session_id, self.contract, signed, list_sketch=pack(self._sketch)
        )
        self.report = released
        self._report_bytes = released.signed_bytes()
        signature = b""
        if self._signer is not None:
            signature = bytes.fromhex(released.signatures["brand"]["signature"])
        crash_point("brand", "released")
        self.phase = Phase.ACK
        yield pb.BrandMessage(
            release=pb.Release(report_json=self._report_bytes, brand_signature=signature)
        )

    def _on_ack(self, ack: pb.ReleaseAck) -> Iterable[pb.BrandMessage]:
        assert self.report is not None
        self.phase = Phase.DONE
        if ack.transcript_sha256 != self.report.transcript_sha256:
            self.store.audit(
                "transcript-mismatch",
                session_id=self.session_id,
                contract_id=self.contract.id,
                partner_transcript_sha256=ack.transcript_sha256[:64],
            )
            raise ProtocolError("the partner's transcript hash differs from the brand's")
        if self._peer_key is not None:
            if not self._peer_key.verify(ack.partner_signature, self._report_bytes):
                self.store.audit(
                    "bad-signature", session_id=self.session_id, contract_id=self.contract.id
                )
                raise ProtocolError("the partner's signature on the report does not verify")
            self.store.add_signature(
                self.session_id,
                "partner",
                ack.partner_signature,
                self._peer_key.public_key.public_bytes_raw(),
            )
        self.store.audit("acknowledged", session_id=self.session_id, contract_id=self.contract.id)
        return ()

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE
