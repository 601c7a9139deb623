"""Crash points for fault-injection tests of real processes.

``CLEANROOM_CRASH_AT=brand:partner_records`` makes the brand process exit abruptly (no
cleanup, like ``kill -9``) when it is about to handle that message, so a test can check
that no half-written report, spent budget or corrupt state is left behind. Unset (always,
outside those tests), this is a no-op.

``CLEANROOM_PAUSE_AT=partner:release`` instead makes the process say so on stderr and
sleep there for a minute, so a test can interrupt it (SIGINT) at that point.
"""

from __future__ import annotations

import os
import sys
import time

CRASH_EXIT_CODE = 86
_CRASH_AT = os.environ.get("CLEANROOM_CRASH_AT", "")
_PAUSE_AT = os.environ.get("CLEANROOM_PAUSE_AT", "")


def crash_point(role: str, event: str) -> None:
    if _CRASH_AT and _CRASH_AT == f"{role}:{event}":
        os._exit(CRASH_EXIT_CODE)
    if _PAUSE_AT and _PAUSE_AT == f"{role}:{event}":
        print(f"paused at {_PAUSE_AT}", file=sys.stderr, flush=True)
        time.sleep(60)
