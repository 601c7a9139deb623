"""docs/tutorial.md, run as a reader would: every command of its ``bash`` blocks in order, its
two TOML files written with the fingerprints pasted in, the server in the background. Every
sample output it shows (an unlabelled block after a command, or "prints `…`" after one) must
be what the command printed, up to line wrapping, the port the OS chose, the parts written
``…`` and the numbers that carry noise; the exact figures of its report table must be the
report's."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import stop_server

pytestmark = pytest.mark.slow

TUTORIAL = Path(__file__).parents[2] / "docs" / "tutorial.md"
DOCUMENTED_PORT = "50051"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
# Numbers drawn afresh in every session, each with the words that introduce it.
NOISY = [
    re.compile(r"(expected index of this audience \([^)]*\): )\d+"),
    re.compile(r"(model: segment \S+, )\d+"),  # attributes clear of the noise
    re.compile(r"(report sha256 )[0-9a-f]{64}"),  # a hash of the noisy report
]


def flat(text: str) -> str:
    """Whitespace collapsed, so line wrapping and table padding do not matter."""
    return " ".join(text.split())


def without_noise(text: str) -> str:
    for pattern in NOISY:
        text = pattern.sub(r"\1<noise>", text)
    return text


def shown_in(documented: str, printed: str) -> bool:
    """*documented* (``…`` matching anything) appears in *printed*."""
    pieces = [re.escape(part) for part in flat(without_noise(documented)).split("…")]
    return re.search(".*?".join(pieces), flat(without_noise(printed))) is not None


def steps(text: str) -> list[tuple[str, str, str]]:
    """(language, body, the prose after the block up to the next one) for every fenced block,
    with the prose before the first block attached to nothing."""
    blocks = list(FENCE.finditer(text))
    found = []
    for i, block in enumerate(blocks):
        end = blocks[i + 1].start() if i + 1 < len(blocks) else len(text)
        found.append((block[1], block[2], text[block.end() : end]))
    return found


class Reader:
    """Runs the tutorial's commands in one directory, with this interpreter's tools on PATH."""

    def __init__(self, root: Path) -> None:
        self.cwd = root
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "COLUMNS": "200",
        }
        self.port: str | None = None  # the server's, once it listens
        self.stdout = ""
        self.server: subprocess.Popen[str] | None = None

    def run(self, script: str) -> str:
        if self.port:
            script = script.replace(f":{DOCUMENTED_PORT}", f":{self.port}")
        result = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
        self.stdout = result.stdout
        printed = result.stdout + result.stderr
        return printed.replace(f":{self.port}", f":{DOCUMENTED_PORT}") if self.port else printed

    def serve(self, command: str) -> str:
        """Start the server in the background; what it printed until it listens."""
        self.server = subprocess.Popen(
            command.split(),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.server.stdout is not None
        printed = []
        for line in self.server.stdout:
            printed.append(line)
            match = re.search(r"listening on [\d.]+:(\d+)", line)
            if match:
                self.port = match[1]
                return "".join(printed).replace(f":{self.port}", f":{DOCUMENTED_PORT}")
        raise AssertionError(f"the server exited: {''.join(printed)}")


def test_the_tutorial_runs_and_shows_what_its_commands_print(tmp_path):
    text = TUTORIAL.read_text()
    reader = Reader(tmp_path)
    fingerprints: list[str] = []
    printed = before = ""
    try:
        for language, body, after in steps(text):
            if language == "bash":
                lines = [
                    line
                    for line in body.splitlines()
                    if not line.startswith(("python3 -m venv", "source "))
                ]
                script = "\n".join(lines)
                if script.startswith("cleanroom serve"):
                    printed = reader.serve(script)
                else:
                    printed = reader.run(script)
                if script.startswith("cleanroom certs init"):
                    fingerprints.append(reader.stdout.strip())
                if "cd tutorial" in script:
                    reader.cwd = reader.cwd / "tutorial"
                for claim in re.findall(r"^prints `([^`]+)`", after, re.MULTILINE):
                    assert shown_in(claim, printed), f"{script}\nprinted:\n{printed}"
            elif language == "toml":
                target = re.findall(r"`(brand/[\w-]+\.toml)`", before)[-1]
                (reader.cwd / target).write_text(as_pasted(body, fingerprints))
            elif language == "":
                assert shown_in(body, printed), f"documented:\n{body}\nprinted:\n{printed}"
            before = after
        check_report_table(text, reader)
    finally:
        if reader.server is not None:
            stop_server(reader.server)
            assert reader.server.stdout is not None
            reader.server.stdout.close()


def as_pasted(body: str, fingerprints: list[str]) -> str:
    """The reader's copy of a TOML file: both fingerprints pasted, the expiry in the future,
    and port 0 (the OS chooses; the tests never use a fixed port)."""
    assert len(fingerprints) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", f) for f in fingerprints)
    body = body.replace("<fingerprint printed in Terminal A>", fingerprints[0])
    body = body.replace("<fingerprint printed in Terminal B>", fingerprints[1])
    next_year = datetime.date.today() + datetime.timedelta(days=365)
    body = re.sub(
        r"^expires = (\d{4}-\d\d-\d\d)$",
        lambda m: m[0] if m[1] > next_year.isoformat() else f"expires = {next_year}",
        body,
        flags=re.MULTILINE,
    )
    return body.replace(f":{DOCUMENTED_PORT}", ":0")


def check_report_table(text: str, reader: Reader) -> None:
    """The table under "Read the report": exact figures equal the report's, noisy ones
    ("about N") lie within the report's 99.9% interval of N."""
    report = json.loads((reader.cwd / "partner" / "report.json").read_text())
    intervals = report["privacy"]["interval_999"]
    brand_segments = len(report["brand_size"])
    # each row: the report's figures and the half-width of their noise
    figures = {
        "Brand customers": (
            [sum(report["brand_size"].values())],
            brand_segments * intervals["brand_size"],
        ),
        "Partner audience": ([report["partner_size"]], intervals["partner_size"]),
        "Matched users": ([report["overlap"]["total"]], intervals["overlap_total"]),
    }
    for line, (actual, half_width) in figures.items():
        row = re.search(rf"^\| {re.escape(line)} \| ([^|]+) \| ([^|]+) \|$", text, re.MULTILINE)
        assert row, f"the tutorial's report table has no row {line!r}"
        documented = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", row[1])]
        documented = documented[: len(actual)]
        if row[2].strip().startswith("exact"):
            assert documented == actual, line
        else:
            assert row[1].startswith("about"), line
            for shown, value in zip(documented, actual, strict=True):
                assert abs(shown - value) <= half_width + 0.05 * shown, line
