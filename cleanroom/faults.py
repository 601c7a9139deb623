"""Crash points for fault-injection tests of real processes.

``CLEANROOM_CRASH_AT=brand:partner_records`` makes the brand process exit abruptly (no
cleanup, like ``kill -9``) when it is about to handle that message, so a test can check
that no half-written report, spent budget or corrupt state is left behind. Unset (always,
outside those tests), this is a no-op.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 86
_CRASH_AT = os.environ.get("CLEANROOM_CRASH_AT", "")


def crash_point(role: str, event: str) -> None:
    if _CRASH_AT and _CRASH_AT == f"{role}:{event}":
        os._exit(CRASH_EXIT_CODE)
