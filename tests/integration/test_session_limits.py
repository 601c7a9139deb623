"""A partner that keeps sending, one element at a time, never trips the idle timeout; the
brand's session time limit still ends its session and frees the slot."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from support import hello_for, raw_stub, wait_for_abort

from cleanroom.privacy.calibration import load_contract
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb


def test_a_trickling_partner_is_stopped_by_the_session_time_limit(deploy):
    site = deploy(idle_timeout=5.0, session_timeout=1.0)
    channel, stub = raw_stub(site, "newsco")
    stop = threading.Event()

    def hello_then_trickle():
        yield hello_for(site.directory / "contract.toml")
        while not stop.wait(0.2):  # one 12-byte Z element every 0.2 s, never the last
            yield pb.PartnerMessage(
                double_encrypted=pb.DoubleEncryptedChunk(
                    segment=0, key=0, elements=b"\x01" * 12, last=False
                )
            )

    started = time.monotonic()
    with channel, pytest.raises(grpc.RpcError) as ended:
        for _ in stub.Session(hello_then_trickle(), timeout=60):
            pass
    stop.set()
    assert ended.value.code() is grpc.StatusCode.CANCELLED  # the watchdog cancelled the call
    assert time.monotonic() - started < 30
    abort = wait_for_abort(site.brand_store())
    assert "1 s limit" in abort["detail"]["reason"]
    contract = load_contract(site.directory / "contract.toml")
    # the brand's noisy sizes left with HelloReply: that session is paid for (privacy.md#ledger)
    assert site.brand_store().budget_remaining(contract) == pytest.approx(
        contract.ledger_total - contract.ledger_per_session
    )


def test_an_empty_chunk_that_is_not_the_last_is_refused(deploy):
    site = deploy()
    channel, stub = raw_stub(site, "newsco")

    def hello_then_nothing():
        yield hello_for(site.directory / "contract.toml")
        for _ in range(3):
            yield pb.PartnerMessage(
                double_encrypted=pb.DoubleEncryptedChunk(segment=0, key=0, last=False)
            )

    with channel, pytest.raises(grpc.RpcError) as refused:
        for _ in stub.Session(hello_then_nothing(), timeout=60):
            pass
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "empty, and not the last chunk" in refused.value.details()
