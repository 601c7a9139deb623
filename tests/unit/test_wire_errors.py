"""The one table between cleanroom's errors and gRPC statuses (cleanroom/transport/grpc.py),
and what importing the library does to its host process."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import grpc
import pytest

from cleanroom import errors
from cleanroom.transport.grpc import WIRE_ERRORS, error_class, wire_error

Status = grpc.StatusCode

# The wire contract (docs/reference/exit-codes.md#over-the-wire): a code once sent keeps its
# spelling and its status, whatever the class comes to be called.
DOCUMENTED = {
    "AuthenticationError": Status.PERMISSION_DENIED,
    "CryptoError": Status.INTERNAL,
    "ProtocolError": Status.INVALID_ARGUMENT,
    "ContractError": Status.FAILED_PRECONDITION,
    "PolicyError": Status.FAILED_PRECONDITION,
    "ConnectionLostError": Status.DEADLINE_EXCEEDED,
    "InputError": Status.INTERNAL,
    "IntegrityError": Status.INTERNAL,
    "StorageError": Status.INTERNAL,
    "CleanroomError": Status.INTERNAL,
}

ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.CleanroomError)
]


def test_the_codes_and_statuses_are_the_documented_ones():
    assert {row.code: row.status for row in WIRE_ERRORS} == DOCUMENTED
    assert len({row.code for row in WIRE_ERRORS}) == len(WIRE_ERRORS)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_goes_out_and_comes_back_as_itself(cls):
    error = cls() if cls is errors.CryptoError else cls("x")
    assert error_class(wire_error(error).code) is cls


def test_a_subclass_travels_as_its_nearest_documented_class():
    class ShuttingDown(errors.ConnectionLostError):
        pass

    row = wire_error(ShuttingDown("stopping"))
    assert (row.code, row.status) == ("ConnectionLostError", Status.DEADLINE_EXCEEDED)
    assert wire_error(errors.CryptoError()).status is Status.INTERNAL  # not ProtocolError's


def test_anything_else_is_an_internal_error_and_unknown_codes_mean_nothing():
    row = wire_error(RuntimeError("a bug"))
    assert (row.code, row.status) == ("CleanroomError", Status.INTERNAL)
    assert error_class("Interrupted") is None  # in cleanroom.errors, but no code
    assert error_class("os") is None and error_class(None) is None and error_class(b"x") is None


def run_python(code: str, **env: str) -> str:
    defaults = ("GRPC_VERBOSITY", "OPENBLAS_NUM_THREADS")
    environment = {k: v for k, v in os.environ.items() if k not in defaults} | env
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=environment,
    )
    return result.stdout.strip()


def test_importing_the_library_sets_no_environment_variable():
    code = (
        "import os\nbefore = dict(os.environ)\n"
        "import cleanroom_client, cleanroom_client.client, cleanroom_client.cli\n"
        "from cleanroom_client import Client\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))"
    )
    assert run_python(code) == "[]"


def test_the_command_lines_set_their_defaults_before_the_libraries_load():
    """gRPC's log off and one OpenBLAS thread, both read once when the library loads, and
    each left to a user who set it."""
    code = (
        "import os, sys\nfrom cleanroom.cli_support import program, run_app\n"
        "app = program('probe', 'A probe.')\n"
        "@app.command()\ndef probe() -> None:\n"
        "    print(os.environ.get('GRPC_VERBOSITY'), os.environ.get('OPENBLAS_NUM_THREADS'),"
        " 'grpc' in sys.modules, 'numpy' in sys.modules)\n"
        "try:\n    run_app(app, ['probe'])\nexcept SystemExit:\n    pass\n"
    )
    assert run_python(code) == "NONE 1 False False"
    users = run_python(code, GRPC_VERBOSITY="DEBUG", OPENBLAS_NUM_THREADS="4")
    assert users == "DEBUG 4 False False"
