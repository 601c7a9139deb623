"""DESIGN §2: the protocol state machines import no grpc, so they run without a network.

Checked in a fresh interpreter: this test process has long since imported grpc through
other tests, so ``sys.modules`` here would prove nothing.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import cleanroom.protocol

PROTOCOL_MODULES = sorted(
    f"cleanroom.protocol.{info.name}" for info in pkgutil.iter_modules(cleanroom.protocol.__path__)
)


def imported_after(modules: list[str]) -> set[str]:
    """The module names a fresh interpreter holds after importing ``modules``."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(result.stdout))


def test_the_protocol_package_has_the_modules_this_test_expects():
    assert {"cleanroom.protocol.brand", "cleanroom.protocol.partner"} <= set(PROTOCOL_MODULES)


def test_importing_the_protocol_imports_no_grpc():
    loaded = imported_after(["cleanroom.protocol", *PROTOCOL_MODULES])
    assert set(PROTOCOL_MODULES) <= loaded
    grpc_modules = sorted(name for name in loaded if name == "grpc" or name.startswith("grpc."))
    assert grpc_modules == []


def test_the_check_sees_grpc_when_it_is_imported():
    """The same probe does report grpc, so an empty answer above means something."""
    assert "grpc" in imported_after(["cleanroom.brand.servicer"])
