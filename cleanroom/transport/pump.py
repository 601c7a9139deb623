"""Moves messages between a session state machine and a full-duplex stream.

A reader thread hands each incoming message to the state machine; the messages it
produces (lazy iterators, so the heavy crypto runs as they are sent) wait in a small
bounded queue for the sending side. Each direction progresses on its own, so a party
that streams a large round never waits for the other to read, and the bounded queue
stops either side from buffering more of the other's data than a few chunks. Any
message, in or out, resets the idle timer; a peer that stalls longer than
``idle_timeout`` ends the session with :class:`ConnectionLostError`, and so does a session
that runs longer than ``session_timeout`` in all (a peer trickling one element at a time
never stalls, but must not hold a session for ever).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, Protocol

from cleanroom.errors import ConnectionLostError

_END = object()
_PEER_CLOSED = object()  # queued behind the work already received, so its errors come first


class StateMachine(Protocol):
    @property
    def finished(self) -> bool: ...

    def receive(self, message: Any) -> Iterable[Any]: ...


class Pump:
    def __init__(
        self,
        machine: StateMachine,
        *,
        idle_timeout: float,
        session_timeout: float | None = None,
        max_pending: int = 4,
        abort_message: Callable[[BaseException], Any] | None = None,
    ) -> None:
        self._machine = machine
        self._abort_message = abort_message
        self._outbox: queue.Queue[object] = queue.Queue(max_pending)
        self._idle_timeout = idle_timeout
        self._session_timeout = session_timeout
        self._started = time.monotonic()
        self._stopped = threading.Event()
        self._last_activity = time.monotonic()
        self.error: BaseException | None = None
        self._ended_cleanly = False
        self.on_error: Callable[[], None] | None = None

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _idle(self) -> bool:
        return time.monotonic() - self._last_activity > self._idle_timeout

    def fail(self, error: BaseException) -> None:
        if self._ended_cleanly:
            return  # everything was sent and the session is over: a late close is no failure
        if self.error is None:
            self.error = error
        self._stopped.set()
        if self.on_error is not None:
            self.on_error()

    def _put(self, item: object) -> None:
        while not self._stopped.is_set():
            try:
                self._outbox.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._idle():
                    self.fail(
                        ConnectionLostError(
                            f"the peer stopped reading for over {self._idle_timeout:g} s"
                        )
                    )

    def read(self, incoming: Iterable[Any]) -> None:
        """Feed every incoming message to the state machine; run on the reading thread."""
        try:
            for message in incoming:
                if self._stopped.is_set():
                    return
                self._touch()
                replies = self._machine.receive(message)
                # A message with nothing to answer must not wait for the outbox: a reader
                # stuck behind this side's own long stream stops reading, and once both
                # windows fill neither side moves (tests/integration/test_flow_control.py).
                if not (isinstance(replies, tuple) and not replies):
                    self._put(replies)
                if self._machine.finished:
                    return
            if not self._machine.finished:
                self._put(_PEER_CLOSED)
        except BaseException as exc:  # re-raised by the transport from self.error
            self.fail(exc)
        finally:
            self._put(_END)

    def start_watchdog(self, on_stall: Callable[[], object]) -> None:
        """End the session if nothing moves for ``idle_timeout``; ``on_stall`` (cancelling the
        call) frees a send that is blocked on a peer that stopped reading."""

        def watch() -> None:
            while not self._stopped.wait(0.5):
                if self._idle():
                    self.fail(
                        ConnectionLostError(
                            f"the session stalled for over {self._idle_timeout:g} s"
                        )
                    )
                elif (
                    self._session_timeout is not None
                    and time.monotonic() - self._started > self._session_timeout
                ):
                    self.fail(
                        ConnectionLostError(
                            f"the session ran longer than its {self._session_timeout:g} s limit"
                        )
                    )
                else:
                    continue
                on_stall()
                return

        threading.Thread(target=watch, daemon=True, name="cleanroom-watchdog").start()

    def start_reading(self, incoming: Iterable[Any]) -> threading.Thread:
        thread = threading.Thread(
            target=self.read, args=(incoming,), daemon=True, name="cleanroom-reader"
        )
        thread.start()
        return thread

    def outgoing(self, first: Iterable[Any] = ()) -> Generator[Any, None, None]:
        """Every message to send, in order; ends when the session is done or has failed."""
        try:
            for message in first:
                self._touch()
                yield message
            while not self._stopped.is_set():
                try:
                    item = self._outbox.get(timeout=0.2)
                except queue.Empty:
                    if self._idle():
                        self.fail(
                            ConnectionLostError(
                                f"no message from the peer for {self._idle_timeout:g} s"
                            )
                        )
                    continue
                if item is _END:
                    self._ended_cleanly = self.error is None
                    return
                if item is _PEER_CLOSED:
                    raise ConnectionLostError(
                        "the peer closed the stream before the session finished"
                    )
                assert isinstance(item, Iterable)
                for message in item:
                    self._touch()
                    yield message
        except Exception as exc:  # GeneratorExit (the stream closed) must pass through
            self.fail(exc)
        finally:
            self._stopped.set()  # also ends the watchdog
        if self.error is not None and self._abort_message is not None:
            yield self._abort_message(self.error)
