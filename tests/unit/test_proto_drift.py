"""The checked-in generated code must match the .proto files (python scripts/generate_proto.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cleanroom.protocol.common import CHUNK_BYTES, MAX_MESSAGE_BYTES, records_per_chunk

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protobuf_code_matches_the_proto_files():
    result = subprocess.run(
        [sys.executable, "scripts/generate_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_chunks_stay_under_the_message_limit(make_contract):
    contract = make_contract(keys=("email", "phone"), segments=tuple(f"s{i}" for i in range(16)))
    per_chunk = records_per_chunk(contract)
    assert per_chunk * 16 * 64 <= CHUNK_BYTES < MAX_MESSAGE_BYTES
    assert per_chunk * 2 * 32 <= CHUNK_BYTES
