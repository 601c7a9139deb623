"""What both state machines share: sizes on the wire, the transcript, element encoding,
the per-message dispatch, the peer's report signature and the set-difference check."""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import Message

from cleanroom import _native
from cleanroom.contract import Contract
from cleanroom.crypto.constants import CIPHERTEXT_SIZE, ELEMENT_SIZE
from cleanroom.crypto.signing import verify_report_signature
from cleanroom.errors import PolicyError, ProtocolError
from cleanroom.faults import crash_point
from cleanroom.identifiers.digests import DIGEST_SIZE
from cleanroom.privacy.setdiff import difference, unpack
from cleanroom.protocol.ports import SessionStore

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
ELEMENTS_PER_CHUNK = CHUNK_BYTES // ELEMENT_SIZE

# Z elements are only compared, never exponentiated again, so 12 bytes suffice: the chance
# that any of n partner slots collides with any of m brand elements is at most
# n * m / 2**96 (below 1.3e-11 even at 10^9 x 10^9). See docs/protocol.md.
TRUNCATED_SIZE = 12

#: The X25519 base point G (u = 9, RFC 7748): the brand publishes B = X25519(b, G) and the
#: partner A = X25519(a, G) only enters its dummies (docs/protocol.md#dummy-matches).
BASE_POINT = bytes([9]) + bytes(31)


def records_per_chunk(contract: Contract) -> int:
    """Partner records per W chunk, so W and the matching indicator chunk both fit the limit."""
    per_record = max(len(contract.keys) * ELEMENT_SIZE, len(contract.segments) * CIPHERTEXT_SIZE)
    return max(1, min(8192, CHUNK_BYTES // per_record))


def chunk_sizes(records: int, contract: Contract) -> list[int]:
    """Records in each W chunk (and so in each indicator chunk); one empty chunk for none."""
    per_chunk = records_per_chunk(contract)
    full, rest = divmod(records, per_chunk)
    return [per_chunk] * full + ([rest] if rest or not full else [])


def group_index(contract: Contract, segment: int, key: int) -> int:
    if not (0 <= segment < len(contract.segments) and 0 <= key < len(contract.keys)):
        raise ProtocolError(f"unknown group (segment {segment}, key {key})")
    return segment * len(contract.keys) + key


_DUMMY = "dummy"


def element_message(key: str, digest: bytes) -> bytes:
    """The hash-to-curve input: the match key and the identifier's SHA-256 digest."""
    return key.encode() + b":" + digest


def element_messages(key: str, digests: np.ndarray) -> list[bytes]:
    """:func:`element_message` of every row of an (n, 32) uint8 digest matrix, built in one
    buffer instead of n concatenations."""
    prefix = np.frombuffer(key.encode() + b":", dtype=np.uint8)
    width = len(prefix) + DIGEST_SIZE
    matrix = np.empty((len(digests), width), dtype=np.uint8)
    matrix[:, : len(prefix)] = prefix
    matrix[:, len(prefix) :] = digests
    return pieces(matrix.tobytes(), width)


def dummy_message() -> bytes:
    """A hash-to-curve input no identifier can produce: fills a record's missing key slot."""
    return dummy_messages(1)[0]


def dummy_messages(count: int) -> list[bytes]:
    """Hash-to-curve inputs no identifier can produce (``dummy:`` and 32 random bytes from
    the OS): they fill the key slots a record lacks."""
    random = np.frombuffer(os.urandom(DIGEST_SIZE * count), dtype=np.uint8)
    return element_messages(_DUMMY, random.reshape(count, DIGEST_SIZE))


def pieces(packed: bytes, size: int) -> list[bytes]:
    """Packed fixed-size values (elements, truncated elements, records) one by one."""
    return [packed[i : i + size] for i in range(0, len(packed), size)]


def random_permutation(count: int) -> np.ndarray:
    """A uniformly random permutation of ``range(count)``: native Fisher-Yates on a CSPRNG
    seeded by the OS."""
    return np.frombuffer(_native.permutation(count), dtype="<u8")


def split_elements(packed: bytes, size: int, what: str, *, last: bool) -> int:
    """The number of elements in a streamed chunk. Only a group's last chunk may be empty:
    a peer streaming empty chunks would otherwise hold the session open forever."""
    if len(packed) % size:
        raise ProtocolError(
            f"{what}: {len(packed)} bytes is not a whole number of {size}-byte elements"
        )
    if not packed and not last:
        raise ProtocolError(f"{what}: empty, and not the last chunk of its stream")
    return len(packed) // size


def shuffled_packed(packed: bytes, size: int) -> bytes:
    """The ``size``-byte items of ``packed`` in a secret random order (native Fisher-Yates on
    a CSPRNG seeded by the OS)."""
    return _native.shuffle_packed(packed, size)


def truncate(packed: bytes) -> bytes:
    """The first TRUNCATED_SIZE bytes of each ELEMENT_SIZE-byte element."""
    if len(packed) % ELEMENT_SIZE:
        raise ProtocolError(f"{len(packed)} bytes is not a whole number of elements")
    rows = np.frombuffer(packed, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
    return rows[:, :TRUNCATED_SIZE].tobytes()


class Transcript:
    """SHA-256 over every message of rounds 0-4, one running hash per direction.

    The two directions interleave differently on each side of a full-duplex stream, but
    each direction's order is fixed, so both parties compute the same digest.
    """

    def __init__(self) -> None:
        self._to_brand = hashlib.sha256(b"partner->brand")
        self._to_partner = hashlib.sha256(b"brand->partner")

    @staticmethod
    def _update(running: hashlib._Hash, message: Message) -> None:
        data = message.SerializeToString(deterministic=True)
        running.update(len(data).to_bytes(8, "big"))
        running.update(data)

    def partner_sent(self, message: Message) -> None:
        self._update(self._to_brand, message)

    def brand_sent(self, message: Message) -> None:
        self._update(self._to_partner, message)

    def hexdigest(self) -> str:
        return hashlib.sha256(
            b"cleanroom-transcript-v1" + self._to_brand.digest() + self._to_partner.digest()
        ).hexdigest()


_Out = TypeVar("_Out", bound=Message)
_Result = TypeVar("_Result")

#: The two roles, each the other's peer.
PEER = {"brand": "partner", "partner": "brand"}


def dispatch(
    message: Message,
    *,
    role: str,
    phase: enum.Enum,
    handlers: Mapping[str, tuple[enum.Enum, Callable[[Any], _Result]]],
    unrecorded: str,
    record: Callable[[Message], None],
) -> _Result:
    """Hand one peer message to the handler of its ``oneof`` body, in the phase that expects
    it. The peer's Abort, a body this role does not take and a message out of turn end the
    session with a :class:`ProtocolError`; every message but the ``unrecorded`` kind (the
    release and its acknowledgement, which carry the transcript hash) enters the transcript."""
    kind = message.WhichOneof("body")
    crash_point(role, str(kind))
    if kind == "abort":
        reason = getattr(message, "abort").reason  # noqa: B009 - a oneof field, not typed on Message
        raise ProtocolError(f"the {PEER[role]} aborted the session: {reason[:200]}")
    if kind not in handlers:
        raise ProtocolError(f"empty or unknown {PEER[role]} message")
    expected, handler = handlers[kind]
    if phase is not expected:
        raise ProtocolError(f"unexpected {kind} message while waiting for {phase.value}")
    if kind != unrecorded:
        record(message)
    return handler(getattr(message, kind))


def recorded(
    messages: Iterable[_Out], *, unrecorded: str, record: Callable[[Message], None]
) -> Iterator[_Out]:
    """The outgoing messages, each entering the transcript as it leaves (but ``unrecorded``)."""
    for message in messages:
        if message.WhichOneof("body") != unrecorded:
            record(message)
        yield message


@dataclass(frozen=True)
class ReportVerifier:
    """The peer's pinned report-signing key and the role it signs as (cleanroom.crypto.signing)."""

    public_key: Ed25519PublicKey
    role: str

    def verify(self, signature: bytes, report_bytes: bytes) -> bool:
        return verify_report_signature(self.public_key, signature, report_bytes, role=self.role)

    def entry(self, signature: bytes) -> dict[str, str]:
        """The signature entry stored with the report, as :class:`cleanroom.identity.ReportSigner` makes it."""
        return {
            "public_key": self.public_key.public_bytes_raw().hex(),
            "signature": signature.hex(),
        }


def check_set_difference(
    store: SessionStore, contract: Contract, sketch: np.ndarray, whose: str
) -> None:
    """Apply ``release.set_difference_min`` / ``set_difference_action`` before anything is
    sent (cleanroom/privacy/setdiff.py).

    The exact difference goes only to this party's audit log; the refusal the peer may see
    says nothing about how much the list changed.
    """
    for session_id, blob in store.recent_sketches(contract.id):
        changed = difference(sketch, unpack(blob))
        if 0 < changed < contract.set_difference_min:
            store.audit(
                "set-difference",
                contract_id=contract.id,
                earlier_session=session_id,
                records_changed=changed,
                action=contract.set_difference_action,
            )
            if contract.set_difference_action == "refuse":
                raise PolicyError(
                    f"the {whose} list differs from an earlier session's list under contract "
                    f"'{contract.id}' by fewer than release.set_difference_min = "
                    f"{contract.set_difference_min} records; comparing the two results could reveal "
                    "those records, so the session is refused (details in the audit log); "
                    "run with that earlier list unchanged, or with one that differs from it by "
                    f"at least {contract.set_difference_min} records"
                )
            return
