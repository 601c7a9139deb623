"""The pump between a session state machine and a stream: which error ends a session, and
the limits that stop a peer from holding one open."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import pytest

from cleanroom.errors import ConnectionLostError, CryptoError
from cleanroom.transport.pump import Pump


class Machine:
    """Answers each message with a lazy reply that fails when sent if the message is 'bad'."""

    finished = False

    def receive(self, message: str) -> Iterable[str]:
        def reply() -> Iterator[str]:
            if message == "bad":
                raise CryptoError()
            yield f"ack {message}"

        return reply()


def run(pump: Pump, incoming: Iterable[str]) -> list[str]:
    pump.start_reading(incoming)
    return list(pump.outgoing())


def test_an_error_in_work_already_received_wins_over_the_peer_closing_its_stream():
    pump = Pump(Machine(), idle_timeout=30)
    sent = run(pump, ["one", "bad"])  # the peer half-closes right after the bad chunk
    assert sent == ["ack one"]
    assert isinstance(pump.error, CryptoError)


def test_a_peer_closing_early_is_a_lost_connection():
    pump = Pump(Machine(), idle_timeout=30)
    assert run(pump, ["one", "two"]) == ["ack one", "ack two"]
    assert isinstance(pump.error, ConnectionLostError)
    assert "closed the stream" in str(pump.error)


def test_a_peer_that_never_stalls_is_still_stopped_by_the_session_limit():
    keep_going = threading.Event()

    def trickle() -> Iterator[str]:
        while not keep_going.wait(0.1):  # a message every 0.1 s: never idle
            yield "drip"

    pump = Pump(Machine(), idle_timeout=30, session_timeout=1.0)
    cancelled = threading.Event()
    pump.start_watchdog(on_stall=cancelled.set)
    pump.start_reading(trickle())
    sent = []
    for message in pump.outgoing():
        sent.append(message)
    keep_going.set()
    assert cancelled.is_set() and sent
    assert isinstance(pump.error, ConnectionLostError)
    assert "1 s limit" in str(pump.error)


@pytest.mark.parametrize("session_timeout", [None, 60.0])
def test_an_idle_peer_is_stopped_by_the_idle_timeout(session_timeout):
    silent = threading.Event()

    def nothing() -> Iterator[str]:
        silent.wait(10)
        return
        yield

    pump = Pump(Machine(), idle_timeout=0.5, session_timeout=session_timeout)
    cancelled = threading.Event()
    pump.start_watchdog(on_stall=cancelled.set)
    pump.start_reading(nothing())
    assert list(pump.outgoing()) == []
    silent.set()
    assert isinstance(pump.error, ConnectionLostError)
    assert "0.5 s" in str(pump.error)
