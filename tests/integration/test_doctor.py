"""`cleanroom doctor`: the native core's version, the active X25519 path and why, threads."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from support import tool

from cleanroom import _native


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("cleanroom"), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_doctor_reports_version_path_and_threads() -> None:
    done = doctor("--format", "json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["native_core"] == _native.__version__
    assert facts["threads"] == os.cpu_count()
    assert facts["x25519_path"] == _native.x25519_path()[0]
    assert _native.x25519_path()[1] in facts["x25519_reason"]
    table = doctor("--workers", "3")
    assert table.returncode == 0, table.stderr
    assert "threads       3" in table.stdout
    assert f"cleanroom._native {_native.__version__}" in table.stdout
    assert f"dalek backend {facts['dalek_backend']}" in table.stdout


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="dalek's vector backends are x86-64")
def test_dalek_uses_the_fastest_backend_this_cpu_has() -> None:
    """The repository's .cargo/config.toml compiles dalek's AVX-512 IFMA backend in; a build
    that lost it would silently run received elements at the AVX2 speed (1.5x slower)."""
    flags = cpu_flags()
    if {"avx512ifma", "avx512vl"} <= flags:
        expected = "avx512ifma"
    elif "avx2" in flags:
        expected = "avx2"
    else:
        expected = "serial"
    assert _native.dalek_backend() == expected


def test_doctor_says_when_the_portable_path_is_forced() -> None:
    done = doctor("--format", "json", env={"CLEANROOM_X25519": "portable"})
    facts = json.loads(done.stdout)
    assert facts["x25519_path"] == "portable"
    assert "CLEANROOM_X25519=portable" in facts["x25519_reason"]


def test_doctor_refuses_a_negative_thread_count() -> None:
    done = doctor("--workers", "-1")
    assert done.returncode == 3
    assert "--workers" in done.stderr


def test_without_the_intel_wheels_x25519_runs_portable_with_the_same_bytes(tmp_path) -> None:
    """Where libcrypto_mb.so is missing (or the CPU lacks IFMA) nothing fails: the portable
    path is active, says why, and gives the bytes the multi-buffer path gives."""
    script = (
        "import sys\n"
        "from cleanroom import _native\n"
        f"print(_native.load_crypto_mb({str(tmp_path)!r}))\n"
        "import cleanroom.crypto.native\n"
        "from cleanroom.crypto.commutative import CommutativeCipher\n"
        "from cleanroom.crypto.hash_to_curve import hash_to_curve_batch\n"
        "points = hash_to_curve_batch([bytes([i]) for i in range(100)], b'dst')\n"
        "print(CommutativeCipher(bytes(range(32))).encrypt(points).hex())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    status, encrypted = done.stdout.splitlines()
    assert status.startswith("('portable', 'libcrypto_mb.so not found in")
    from cleanroom.crypto.commutative import CommutativeCipher
    from cleanroom.crypto.hash_to_curve import hash_to_curve_batch

    points = hash_to_curve_batch([bytes([i]) for i in range(100)], b"dst")
    assert bytes.fromhex(encrypted) == CommutativeCipher(bytes(range(32))).encrypt(points)
