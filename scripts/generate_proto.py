"""Regenerate cleanroom/proto/ from proto/cleanroom/v1/*.proto.

python scripts/generate_proto.py            # rewrite the generated files
python scripts/generate_proto.py --check    # exit 1 if they drift from the .proto files
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUTPUT = ROOT / "cleanroom" / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(into: Path) -> list[Path]:
    sources = sorted(PROTO_ROOT.glob("cleanroom/v1/*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={into}",
        f"--pyi_out={into}",
        f"--grpc_python_out={into}",
        *map(str, sources),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    produced = []
    for path in sorted(into.rglob("*.py*")):
        if path.name.endswith(GENERATED_SUFFIXES):
            # protoc writes `from cleanroom.v1 import ...`; our package lives at cleanroom.proto.
            text = path.read_text()
            text = re.sub(
                r"^from cleanroom\.v1 import",
                "from cleanroom.proto.cleanroom.v1 import",
                text,
                flags=re.M,
            )
            path.write_text(text)
            produced.append(path)
    return produced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if checked-in files drift")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        produced = generate(Path(tmp))
        drift = []
        for path in produced:
            target = OUTPUT / path.relative_to(tmp)
            if check:
                if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                    drift.append(str(target.relative_to(ROOT)))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        if check and drift:
            print("generated protobuf code is out of date: " + ", ".join(drift), file=sys.stderr)
            print("run: python scripts/generate_proto.py", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
