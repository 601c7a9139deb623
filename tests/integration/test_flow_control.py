"""Both pumps over links with a finite window, as gRPC's flow control gives them: a session of
many chunks finishes. A party that stops reading while it streams stalls both sides once the
windows fill: the 20-attribute session at 10^6 (122 indicator chunks) did, each reader
waiting for room in its own outbox behind its side's long stream, each sender blocked on a
peer that had stopped reading. Small chunks show it on small lists."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator

import pytest

from cleanroom.brand.demo import synthetic_lists
from cleanroom.crypto.batches import BatchRunner
from cleanroom.lists import local
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.protocol import brand as brand_protocol
from cleanroom.protocol import common
from cleanroom.protocol import partner as partner_protocol
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.transport.pump import Pump

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}
WINDOW = 2  # messages a link holds before its sender blocks
_CLOSED = object()


class Link:
    """One direction of a stream: the sender blocks while WINDOW messages are unread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(WINDOW)

    def send_all(self, messages: Iterable[object]) -> None:
        for message in messages:
            self._queue.put(message)
        self._queue.put(_CLOSED)

    def received(self) -> Iterator[object]:
        while (message := self._queue.get()) is not _CLOSED:
            yield message


@pytest.mark.parametrize("overlap_only", [False, True])
def test_a_session_of_many_chunks_finishes_through_finite_windows(
    make_contract, stores, monkeypatch, overlap_only
):
    # 16 elements per E and Z chunk (about 60 of each), 4 records per W chunk (about 300
    # record chunks and as many indicator chunks).
    for module in (brand_protocol, partner_protocol, local):
        monkeypatch.setattr(module, "ELEMENTS_PER_CHUNK", 16)
    per_record = 3 * common.CIPHERTEXT_SIZE  # three segments
    monkeypatch.setattr(common, "CHUNK_BYTES", 4 * per_record)
    attributes = () if overlap_only else ("age_25_34", "parent")
    contract = make_contract(
        mechanism="none", min_set_size=10, min_overlap=0, attributes=attributes
    )
    assert common.records_per_chunk(contract) == 4
    lists = synthetic_lists(600, 1200, seed=8)
    engines = BatchRunner(workers=2), BatchRunner(workers=2)
    brand = BrandSession(
        contract,
        prepare_brand_list(lists.crm, BRAND_COLUMNS, contract),
        stores[0],
        peer="p",
        engine=engines[0],
    )
    partner = PartnerSession(
        contract, prepare_partner_list(lists.audience, None, contract), stores[1], engine=engines[1]
    )
    brand_pump = Pump(brand, idle_timeout=20, max_pending=6)
    partner_pump = Pump(partner, idle_timeout=20, max_pending=6)
    to_brand, to_partner = Link(), Link()
    threads = [
        threading.Thread(target=brand_pump.read, args=(to_brand.received(),), daemon=True),
        threading.Thread(target=partner_pump.read, args=(to_partner.received(),), daemon=True),
        threading.Thread(
            target=to_brand.send_all,
            args=(partner_pump.outgoing(first=[partner.hello()]),),
            daemon=True,
        ),
        threading.Thread(target=to_partner.send_all, args=(brand_pump.outgoing(),), daemon=True),
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    finally:
        for engine in engines:
            engine.close()
    assert brand_pump.error is None and partner_pump.error is None
    assert brand.report is not None and partner.report is not None
    assert brand.report.transcript_sha256 == partner.report.transcript_sha256
    assert bool(brand.report.document["attributes"]) is not overlap_only
