"""How ``cleanroom serve`` waits for SIGTERM or Ctrl-C (``wait_for_stop_signal``), in
separate interpreters: signal handlers run in a process's main thread, and a regression
would deadlock rather than fail."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# SIGTERM delivered just after each C call the waiting thread makes returns (the handler
# runs there, in that thread): once after a lock acquire, the old handler, which set an
# Event the thread was entering the wait of, waited on that thread's own lock for ever.
# serve hung so about one time in ten when stopped the moment it said it was listening.
EVERY_POINT = """
import signal, sys
import cleanroom.cli_support as cli_support

cli_support.STOP_SIGNAL_POLL = 0.001
for point in range(1, 40):
    calls = 0

    def deliver_at_point(frame, event, arg):
        global calls
        if event == "c_return":
            calls += 1
            if calls == point:
                signal.raise_signal(signal.SIGTERM)

    sys.setprofile(deliver_at_point)
    said = cli_support.wait_for_stop_signal(lambda: None)
    sys.setprofile(None)
    print(point, said, flush=True)
"""

WAIT = (
    "from cleanroom.cli_support import wait_for_stop_signal\n"
    "print(wait_for_stop_signal(lambda: print('listening', flush=True)))"
)


def test_a_sigterm_at_any_point_of_the_wait_stops_it():
    try:
        result = subprocess.run(
            [sys.executable, "-c", EVERY_POINT], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"deadlocked after {hung.stdout!r}") from None
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{point} SIGTERM" for point in range(1, 40)]


@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")]
)
def test_a_signal_as_soon_as_the_server_says_it_listens_stops_it(signum, said):
    """The handler is in place before the line that a supervisor may wait for."""
    process = subprocess.Popen([sys.executable, "-c", WAIT], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "listening\n"
    process.send_signal(signum)
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"{signum.name} right after 'listening': no exit in 20 s") from None
    assert (process.returncode, out) == (0, f"{said}\n")
