"""End-to-end benchmark: brand server and partner client as separate processes, against
openmined-psi in process and the X25519 floor.

Run from the repository root, as a script (never as a test):

    python benchmarks/run.py --n 10000 --n 100000
    python benchmarks/run.py --n 1000000 --configs overlap
    python benchmarks/run.py --n 10000 --profile --skip-openmined

For each n (items per side, one match key, so n elements per side):

1. ``cleanroom serve --config brand.toml`` and ``cleanroom-client run ... --quiet``, each
   wrapped by ``/usr/bin/time -v`` and polled with psutil, over loopback gRPC with mutual
   TLS through a byte-counting TCP forwarder (so the bytes are the real TLS bytes each
   way). Two contracts: ``overlap`` (no attributes, one segment) and ``attrs20`` (20
   attributes, each true on 20% of the partner's records, one segment). The session's wall
   time runs from the client's start to its exit; the server's start-up (reading,
   normalising and SHA-256 hashing the CRM, plus imports) is timed separately, from its
   start to its "listening on HOST:PORT" line.
2. openmined-psi's cardinality flow (``reveal_intersection=False``), client and server in
   one process (a child process, so it has a timeout and its own peak RSS), on the same
   emails.
3. The primitive floor: X25519 multiplications per second (pyca cryptography, private
   key and public keys loaded once), one process and all cores at once; the session is
   reported as a multiple of 2(n+m) multiplications spread over the cores.

Prints a table and writes JSON to benchmarks/results/. The lists are written to a
temporary directory (``--workdir``) and removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import psutil  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - reported at start-up
    psutil = None

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
TIME = "/usr/bin/time"
BIN = Path(sys.executable).parent
ATTRIBUTES = tuple(f"attr_{i:02d}" for i in range(1, 21))
ATTRIBUTE_SHARE = 0.2
CONFIGS = ("overlap", "attrs20")
OPENMINED_FPR = 1e-9
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
RECORDS_RE = re.compile(r"(\d+) CRM records")

_children: list[subprocess.Popen[bytes]] = []  # every process we started, for cleanup
_source = {"root": REPO}  # where the measured code is read from (a snapshot with --snapshot)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    if _source["root"] != REPO:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_source["root"]), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    return env


def take_snapshot(destination: Path) -> Path:
    """Copy cleanroom/ and clients/cleanroom_client/ so that every process of this run
    measures the same code, however the working tree changes meanwhile. The processes get
    it first on PYTHONPATH (they run outside the repository, so it shadows the editable
    install)."""
    if destination.exists():
        shutil.rmtree(destination)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "cleanroom", destination / "cleanroom", ignore=ignore)
    shutil.copytree(
        REPO / "clients" / "cleanroom_client", destination / "cleanroom_client", ignore=ignore
    )
    return destination


# --------------------------------------------------------------------------- data


_FIRST = (
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara "
    "richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy "
    "matthew betty anthony sandra mark ashley donald kimberly steven emily paul donna andrew "
    "michelle joshua carol kenneth amanda kevin melissa brian deborah george stephanie"
).split()
_LAST = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez "
    "lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson "
    "white harris sanchez clark ramirez lewis robinson walker young allen king wright scott "
    "torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter"
).split()
_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "comcast.net",
    "example.org",
    "mail.example.com",
)
_SEPARATORS = (".", "_", "", "-")


def person_email(i: int) -> str:
    """A realistic, unique, deterministic email for person ``i`` (same on both sides)."""
    h = (i * 0x9E3779B1) & 0xFFFFFFFF
    first = _FIRST[h % len(_FIRST)]
    last = _LAST[(h >> 8) % len(_LAST)]
    sep = _SEPARATORS[(h >> 16) % len(_SEPARATORS)]
    domain = _DOMAINS[(h >> 20) % len(_DOMAINS)]
    return f"{first}{sep}{last}{i}@{domain}"


def messy(email: str, i: int) -> str:
    """About a fifth of the rows as a person types them: capitals, stray spaces."""
    r = (i * 2654435761 >> 7) % 10
    if r == 0:
        return email.upper()
    if r == 1:
        return f" {email.capitalize()}  "
    return email


def id_ranges(n: int) -> tuple[range, range]:
    """Brand people 0..n-1, partner people shifted by n/2: exactly n//2 in both."""
    shift = n - n // 2
    return range(n), range(shift, shift + n)


def write_lists(directory: Path, n: int, generator: str, seed: int = 2026) -> dict[str, Any]:
    """crm.csv (email only: every row in segment "all"), audience.csv (user_id, email) and
    audience-attrs.csv (the same plus 20 boolean attributes at 20%)."""
    import numpy as np
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.csv as pacsv  # type: ignore[import-untyped]

    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    if generator == "demo":
        from cleanroom.brand.demo import synthetic_lists

        lists = synthetic_lists(n, n, seed=seed)
        crm = pa.table(
            {
                "customer_id": lists.crm["customer_id"],
                "email": lists.crm["email"],
                "email_sha256": lists.crm["email_sha256"],
            }
        )
        audience_columns = {"user_id": lists.audience["user_id"], "email": lists.audience["email"]}
        expected_overlap = None  # messy data: some emails missing or invalid on both sides
    else:
        brand_ids, partner_ids = id_ranges(n)
        crm = pa.table(
            {
                "customer_id": [f"C{i:08d}" for i in brand_ids],
                "email": [messy(person_email(i), i) for i in brand_ids],
            }
        )
        order = rng.permutation(n)  # the partner's rows in its own order
        partner = [partner_ids[j] for j in order]
        audience_columns = {
            "user_id": [f"U{i:08d}" for i in partner],
            "email": [messy(person_email(i), i + 7) for i in partner],
        }
        expected_overlap = n // 2
    pacsv.write_csv(crm, directory / "crm.csv")
    pacsv.write_csv(pa.table(audience_columns), directory / "audience.csv")
    flags = rng.random((n, len(ATTRIBUTES))) < ATTRIBUTE_SHARE
    with_attributes = dict(audience_columns)
    for j, name in enumerate(ATTRIBUTES):
        with_attributes[name] = pa.array(flags[:, j])
    pacsv.write_csv(pa.table(with_attributes), directory / "audience-attrs.csv")
    return {
        "generator": generator,
        "seconds": round(time.perf_counter() - started, 2),
        "expected_overlap": expected_overlap,
        "attribute_share_observed": round(float(flags.mean()), 4),
        "crm_bytes": (directory / "crm.csv").stat().st_size,
        "audience_bytes": (directory / "audience.csv").stat().st_size,
        "audience_attrs_bytes": (directory / "audience-attrs.csv").stat().st_size,
    }


def openmined_items(n: int) -> tuple[list[str], list[str]]:
    """The same people as write_lists' fast generator, already normalised (lower case)."""
    brand_ids, partner_ids = id_ranges(n)
    return [person_email(i) for i in brand_ids], [person_email(i) for i in partner_ids]


# --------------------------------------------------------------------------- configs


def write_session_files(
    directory: Path, data: Path, certs: Path, fingerprints: tuple[str, str], config: str, n: int
) -> None:
    from cleanroom.brand.demo import contract_text

    directory.mkdir(parents=True, exist_ok=True)
    attributes = ATTRIBUTES if config == "attrs20" else ()
    contract = contract_text(
        fingerprints[0],
        fingerprints[1],
        contract_id=f"bench-{config}",
        segments=("all",),
        attributes=attributes,
        keys=("email",),
        min_set_size=min(1000, max(1, n // 10)),
    )
    (directory / "contract.toml").write_text(contract)
    header = (data / "crm.csv").open().readline()
    columns = (
        'email = "email", email_sha256 = "email_sha256"'
        if "email_sha256" in header
        else 'email = "email"'
    )
    (directory / "brand.toml").write_text(
        f"""[server]
listen = "127.0.0.1:0"
state = "brand-state.db"
idle_timeout = 900

[tls]
certificate = "{certs / "acme.crt"}"
private_key = "{certs / "acme.key"}"

[crm]
path = "{data / "crm.csv"}"
columns = {{ {columns} }}

[[contracts]]
path = "contract.toml"
partner_certificate = "{certs / "newsco.crt"}"
"""
    )


# --------------------------------------------------------------------------- forwarder


class Forwarder:
    """A TCP forwarder on 127.0.0.1 (port 0) that counts the bytes each way."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = 0  # partner -> brand
        self.down = 0  # brand -> partner
        self.connections = 0
        self.port = 0
        self.samples: list[tuple[float, int, int]] = []  # (perf_counter, up, down), ~4 per second
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> Forwarder:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        with contextlib.suppress(Exception):
            self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, "up"), self._pipe(up_reader, writer, "down")
            )
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        try:
            while data := await reader.read(1 << 17):
                if direction == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
                now = time.perf_counter()
                if not self.samples or now - self.samples[-1][0] >= 0.25:
                    self.samples.append((now, self.up, self.down))
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            with contextlib.suppress(Exception):
                writer.close()


def timeline(
    samples: list[tuple[float, int, int]], began: float, up: int, down: int
) -> dict[str, Any]:
    """When each direction's bytes flowed, in seconds from the client's start: the times at
    which 1%, 50% and 99% of the session's bytes had passed, and a coarse series."""
    points = [(t - began, u, d) for t, u, d in samples]
    summary: dict[str, Any] = {}
    for name, index, total in (("up", 1, up), ("down", 2, down)):
        marks = {}
        for share in (0.01, 0.5, 0.99):
            hit = next((p[0] for p in points if p[index] >= share * total), None)
            marks[f"t{int(share * 100)}"] = round(hit, 2) if hit is not None else None
        summary[name] = marks
    step = max(1, len(points) // 200)
    summary["series"] = [[round(t, 2), u, d] for t, u, d in points[::step]]
    return summary


def source_digest() -> str:
    """SHA-256 over the code being measured (cleanroom/, clients/): it changes under us."""
    import hashlib

    root = _source["root"]
    digest = hashlib.sha256()
    for path in (
        sorted(root.glob("**/*.py"))
        if root != REPO
        else sorted([*REPO.glob("cleanroom/**/*.py"), *REPO.glob("clients/**/*.py")])
    ):
        name = str(path.relative_to(root)).removeprefix("clients/")
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- processes


class Watch:
    """Polls a process tree with psutil: peak RSS (largest process and whole tree), CPU."""

    def __init__(self, pid: int, *, skip_root: bool, interval: float = 0.05) -> None:
        self.pid = pid
        self.skip_root = skip_root
        self.interval = interval
        self.peak_single = 0
        self.peak_tree = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def processes(self) -> list[Any]:
        try:
            root = psutil.Process(self.pid)
            tree = root.children(recursive=True)
            return tree if self.skip_root else [root, *tree]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """User + system seconds of the live tree and of its reaped children so far."""
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = []
            for p in self.processes():
                with contextlib.suppress(psutil.Error):
                    rss.append(p.memory_info().rss)
            if rss:
                self.peak_single = max(self.peak_single, max(rss))
                self.peak_tree = max(self.peak_tree, sum(rss))
                self.max_processes = max(self.max_processes, len(rss))


def busy_cpu_seconds() -> dict[str, float] | None:
    """Busy CPU seconds of the whole machine, and of this process (the forwarder)."""
    if psutil is None:
        return None
    t = psutil.cpu_times()
    me = psutil.Process().cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return {"busy": busy, "steal": getattr(t, "steal", 0.0), "self": me.user + me.system}


def timed_command(command: list[str], time_file: Path) -> tuple[list[str], bool]:
    if Path(TIME).exists():
        return [TIME, "-v", "-o", str(time_file), *command], True
    return command, False


def parse_time_v(path: Path) -> dict[str, Any]:
    """The useful lines of GNU time -v."""
    if not path.exists():
        return {}
    out: dict[str, Any] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "Maximum resident set size (kbytes)":
            out["max_rss_kib"] = int(value)
        elif key == "User time (seconds)":
            out["user_s"] = float(value)
        elif key == "System time (seconds)":
            out["system_s"] = float(value)
        elif key == "Percent of CPU this job got":
            out["cpu_percent"] = value
        elif key == "Exit status":
            out["exit_status"] = int(value)
        elif key.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in value.split(":")]
            seconds = 0.0
            for p in parts:
                seconds = seconds * 60 + p
            out["elapsed_s"] = seconds
    return out


def start(command: list[str], cwd: Path, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    env = child_env(COLUMNS="200", PYTHONUNBUFFERED="1", NO_COLOR="1")
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=stdout, stderr=stderr, env=env, start_new_session=True
    )
    _children.append(proc)
    return proc


def kill_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process group we started (start_new_session), even if its leader (time,
    py-spy) has already exited: a server left under it would otherwise be orphaned."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def terminate_server(proc: subprocess.Popen[bytes], wrapped: bool, timeout: float = 60) -> str:
    """SIGTERM to the server itself (not to /usr/bin/time, so it still writes its report)."""
    if proc.poll() is not None:
        return f"had already exited with {proc.returncode}"
    targets = [proc.pid]
    if wrapped and psutil is not None:
        # the server itself, below /usr/bin/time (and py-spy when profiling)
        with contextlib.suppress(psutil.Error):
            tree = psutil.Process(proc.pid).children(recursive=True)
            servers = [c.pid for c in tree if "serve" in c.cmdline() and "py-spy" not in c.name()]
            targets = servers or [c.pid for c in psutil.Process(proc.pid).children()] or targets
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    began = time.perf_counter()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        proc.wait(10)
        return f"killed: still running {timeout:g} s after SIGTERM"
    return f"exited with {proc.returncode} {time.perf_counter() - began:.1f} s after SIGTERM to {targets}"


def cleanup_all() -> None:
    for proc in _children:
        kill_tree(proc)
        with contextlib.suppress(Exception):
            proc.wait(5)


def supports_workers(executable: Path, subcommand: str) -> bool:
    try:
        result = subprocess.run(
            [str(executable), subcommand, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(COLUMNS="200"),
            cwd=tempfile.gettempdir(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--workers" in result.stdout + result.stderr


def entry_point(name: str) -> Path:
    candidate = BIN / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the project first (pip install -e .)")
    return Path(found)


# --------------------------------------------------------------------------- sessions


@dataclass
class ServerHandle:
    proc: subprocess.Popen[bytes]
    wrapped: bool
    watch: Any
    port: int
    started: float
    listening_after_s: float
    crm_records: int | None
    log_lines: list[tuple[float, str]] = field(default_factory=list)


def start_server(
    directory: Path, workers: list[str], timeout: float, profile: Path | None
) -> ServerHandle:
    command = [str(entry_point("cleanroom")), "serve", "--config", "brand.toml", *workers]
    if profile is not None:
        command = profile_command(command, profile)
    command, wrapped = timed_command(command, directory / "server.time")
    log = (directory / "server.log").open("w")
    started = time.perf_counter()
    proc = start(command, directory, log, subprocess.PIPE)
    lines: list[tuple[float, str]] = []
    found: dict[str, Any] = {}
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            now = time.perf_counter() - started
            lines.append((now, line))
            log.write(f"{now:9.3f} {line}\n")
            log.flush()
            if m := RECORDS_RE.search(line):
                found["records"] = int(m.group(1))
            if (m := LISTEN_RE.search(line)) and "port" not in found:
                found["port"] = int(m.group(2))
                found["at"] = now
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    watch = Watch(proc.pid, skip_root=wrapped).start() if psutil else None
    if not ready.wait(timeout) or "port" not in found:
        terminate_server(proc, wrapped, timeout=5)
        if watch:
            watch.stop()
        tail = "\n".join(line for _, line in lines[-15:])
        raise RuntimeError(
            f"server did not print 'listening on HOST:PORT' in {timeout:g} s:\n{tail}"
        )
    return ServerHandle(
        proc=proc,
        wrapped=wrapped,
        watch=watch,
        port=found["port"],
        started=started,
        listening_after_s=round(found["at"], 3),
        crm_records=found.get("records"),
        log_lines=lines,
    )


def run_session(
    root: Path,
    data: Path,
    certs: Path,
    fingerprints: tuple[str, str],
    config: str,
    n: int,
    *,
    timeout: float,
    workers: dict[str, list[str]],
    profile: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """One server, one client session through the forwarder; returns the measurements."""
    directory = root / f"n{n}-{config}{label}"
    if directory.exists():
        shutil.rmtree(directory)
    write_session_files(directory, data, certs, fingerprints, config, n)
    audience = data / ("audience-attrs.csv" if config == "attrs20" else "audience.csv")
    result: dict[str, Any] = {
        "n": n,
        "config": config,
        "ok": False,
        "loadavg_before": os.getloadavg(),
        "source_sha256_16": source_digest(),
    }
    server: ServerHandle | None = None
    client: subprocess.Popen[bytes] | None = None
    try:
        server = start_server(
            directory,
            workers["server"],
            timeout=max(120.0, n * 1e-3),
            profile=directory / "server.pyspy" if profile else None,
        )
        result["server_startup_s"] = server.listening_after_s
        result["crm_records"] = server.crm_records
        with Forwarder("127.0.0.1", server.port) as forwarder:
            command = [
                str(entry_point("cleanroom-client")),
                "run",
                "--server",
                f"127.0.0.1:{forwarder.port}",
                "--contract",
                "contract.toml",
                "--audience",
                str(audience),
                "--out",
                "report.json",
                "--tls-cert",
                str(certs / "newsco.crt"),
                "--tls-key",
                str(certs / "newsco.key"),
                "--server-cert",
                str(certs / "acme.crt"),
                "--state",
                "partner-state.db",
                "--timeout",
                "900",
                "--quiet",
                *workers["client"],
            ]
            if profile:
                command = profile_command(command, directory / "client.pyspy")
            command, wrapped = timed_command(command, directory / "client.time")
            server_cpu_before = server.watch.cpu_seconds() if server.watch else None
            machine_before = busy_cpu_seconds()
            out = (directory / "client.stdout").open("wb")
            err = (directory / "client.stderr").open("wb")
            began = time.perf_counter()
            client = start(command, directory, out, err)
            client_watch = Watch(client.pid, skip_root=wrapped).start() if psutil else None
            try:
                code = client.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_tree(client)
                client.wait(10)
                raise RuntimeError(f"the client did not finish in {timeout:g} s") from None
            finally:
                wall = time.perf_counter() - began
                if client_watch:
                    client_watch.stop()
                out.close()
                err.close()
            server_cpu_after = server.watch.cpu_seconds() if server.watch else None
            machine_after = busy_cpu_seconds()
            time.sleep(0.2)  # let the last TLS close frames through the forwarder
            result.update(
                wall_s=round(wall, 3),
                items_per_s=round(2 * n / wall, 1),
                bytes_up=forwarder.up,
                bytes_down=forwarder.down,
                connections=forwarder.connections,
                timeline=timeline(forwarder.samples, began, forwarder.up, forwarder.down),
            )
        if server_cpu_before is not None and server_cpu_after is not None:
            result["server_session_cpu_s"] = round(server_cpu_after - server_cpu_before, 2)
        client_time = parse_time_v(directory / "client.time")
        result["client"] = {
            "exit_code": code,
            "time_v": client_time,
            "psutil_peak_rss_largest": client_watch.peak_single if client_watch else None,
            "psutil_peak_rss_tree": client_watch.peak_tree if client_watch else None,
            "processes": client_watch.max_processes if client_watch else None,
        }
        if client_time:
            result["client_cpu_s"] = round(
                client_time.get("user_s", 0) + client_time.get("system_s", 0), 2
            )
        if machine_before and machine_after and server_cpu_before is not None:
            # CPU the rest of the machine used meanwhile: other users' work, the contention
            ours = (result.get("client_cpu_s") or 0) + result.get("server_session_cpu_s", 0)
            ours += machine_after["self"] - machine_before["self"]
            other = machine_after["busy"] - machine_before["busy"] - ours
            result["other_cpu_s"] = round(max(0.0, other), 1)
            result["other_cores_avg"] = round(max(0.0, other) / wall, 2)
            result["steal_s"] = round(machine_after["steal"] - machine_before["steal"], 1)
        if code != 0:
            tail = (directory / "client.stderr").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the client exited with {code}:\n{tail}")
        report = json.loads((directory / "report.json").read_text())
        result["report"] = {
            "partner_size": report.get("partner_size"),
            "brand_size": report.get("brand_size"),
            "overlap_total_noisy": report.get("overlap", {}).get("total"),
            "attribute_cells": sum(len(a.get("segments", a)) for a in report.get("attributes", []))
            if isinstance(report.get("attributes"), list)
            else None,
        }
        result["ok"] = True
        result["loadavg_after"] = os.getloadavg()
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            kill_tree(client)
        if server is not None:
            stopped = terminate_server(server.proc, server.wrapped)
            kill_tree(server.proc)  # anything left in its process group
            if server.watch:
                server.watch.stop()
            result["server"] = {
                "time_v": parse_time_v(directory / "server.time"),
                "psutil_peak_rss_largest": server.watch.peak_single if server.watch else None,
                "psutil_peak_rss_tree": server.watch.peak_tree if server.watch else None,
                "processes": server.watch.max_processes if server.watch else None,
                "log_tail": [line for _, line in server.log_lines[-5:]],
                "stop": stopped,
            }
    for side in ("client", "server"):
        info = result.get(side, {})
        kib = info.get("time_v", {}).get("max_rss_kib")
        peak = kib * 1024 if kib else info.get("psutil_peak_rss_largest")
        result[f"{side}_peak_rss_mib"] = round(peak / 2**20, 1) if peak else None
        tree = info.get("psutil_peak_rss_tree")
        result[f"{side}_peak_rss_tree_mib"] = round(tree / 2**20, 1) if tree else None
    return result


# --------------------------------------------------------------------------- profiling


def profile_command(command: list[str], output: Path) -> list[str]:
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    return [py_spy, "record", "--rate", "200", "--subprocesses", "--format", "raw",
            "--output", str(output), "--", *command]  # fmt: skip


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def summarize_profile(path: Path, top: int = 60) -> dict[str, Any]:
    """Top functions of a py-spy raw (collapsed) profile, by inclusive and by self samples."""
    if not path.exists():
        return {"error": f"{path.name} not written"}
    inclusive: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = []
        for frame in stack.split(";"):
            if frame.startswith(("process ", "thread ")):
                continue  # py-spy's per-process (--subprocesses) and per-thread roots
            m = _FRAME.match(frame)
            name = frame
            if m:
                file = m.group("file")
                for marker in ("site-packages/", "/work/main/", "lib/python3"):
                    if marker in file:
                        file = file.split(marker, 1)[1]
                name = f"{m.group('func')} ({file})"
            names.append(name)
        for name in set(names):
            inclusive[name] += count
        if names:
            own[names[-1]] += count

    def ranked(table: dict[str, int]) -> list[dict[str, Any]]:
        best = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [{"function": k, "samples": v, "share": round(v / total, 3)} for k, v in best]

    return {"samples": total, "rate_hz": 200, "inclusive": ranked(inclusive), "self": ranked(own)}


def interesting(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The project's own functions (cleanroom, cleanroom_client), not the CLI and gRPC plumbing."""
    own = ("(cleanroom/", "(clients/cleanroom_client/", "(cleanroom_client/")
    skip = ("cli.py)", "Pump.outgoing", "Pump.read", "_observed")
    return [
        r
        for r in rows
        if any(o in r["function"] for o in own) and not any(k in r["function"] for k in skip)
    ]


# --------------------------------------------------------------------------- baselines


def _x25519_rate(count: int = 2048, repeats: int = 5) -> float:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()  # loaded once
    peers = [X25519PrivateKey.generate().public_key() for _ in range(count)]
    exchange = key.exchange
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for peer in peers:
            exchange(peer)
        best = min(best, time.perf_counter() - began)
    return count / best


def _hash_to_curve_rate(count: int = 2048, repeats: int = 3) -> float:
    from cleanroom.crypto.hash_to_curve import hash_to_curve_batch

    messages = [b"email:" + secrets.token_bytes(32) for _ in range(count)]
    dst = b"cleanroom-benchmark-run"
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        hash_to_curve_batch(messages, dst)
        best = min(best, time.perf_counter() - began)
    return count / best


def floor_rates(cores: int) -> dict[str, Any]:
    single = _x25519_rate()
    with ProcessPoolExecutor(cores) as pool:
        parallel = sum(pool.map(_x25519_rate, [2048] * cores))
    return {
        "x25519_per_s_one_core": round(single),
        "x25519_per_s_all_cores": round(parallel),
        "hash_to_curve_per_s_one_core": round(_hash_to_curve_rate()),
        "cores": cores,
    }


def openmined_worker(n: int) -> None:
    """Child process: openmined-psi cardinality flow in process; prints JSON."""
    import private_set_intersection.python as psi  # type: ignore[import-untyped]

    brand, partner = openmined_items(n)
    server = psi.server.CreateWithNewKey(False)
    client = psi.client.CreateWithNewKey(False)
    t0 = time.perf_counter()
    setup = server.CreateSetupMessage(OPENMINED_FPR, len(partner), brand)
    t1 = time.perf_counter()
    request = client.CreateRequest(partner)
    t2 = time.perf_counter()
    response = server.ProcessRequest(request)
    t3 = time.perf_counter()
    size = client.GetIntersectionSize(setup, response)
    t4 = time.perf_counter()
    print(
        json.dumps(
            {
                "version": psi.__version__,
                "n": n,
                "fpr": OPENMINED_FPR,
                "data_structure": "GCS (default)",
                "create_setup_message_s": round(t1 - t0, 3),
                "create_request_s": round(t2 - t1, 3),
                "process_request_s": round(t3 - t2, 3),
                "get_intersection_size_s": round(t4 - t3, 3),
                "total_s": round(t4 - t0, 3),
                "intersection_size": size,
                "expected": n // 2,
                "setup_bytes": setup.ByteSize(),
                "request_bytes": request.ByteSize(),
                "response_bytes": response.ByteSize(),
            }
        )
    )


def run_openmined(n: int, timeout: float, workdir: Path) -> dict[str, Any]:
    try:
        importlib.metadata.version("openmined-psi")
    except importlib.metadata.PackageNotFoundError:
        return {
            "skipped": "openmined-psi is not installed: pip install --no-deps openmined-psi "
            "(--no-deps: its metadata pins protobuf<7, which would downgrade cleanroom's)"
        }
    command, _ = timed_command(
        [sys.executable, str(Path(__file__).resolve()), "--openmined-worker", str(n)],
        workdir / f"openmined-{n}.time",
    )
    proc = start(command, workdir, subprocess.PIPE, subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        proc.wait(10)
        return {"error": f"did not finish in {timeout:g} s"}
    if proc.returncode != 0:
        return {"error": err.decode(errors="replace")[-2000:]}
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    timing = parse_time_v(workdir / f"openmined-{n}.time")
    kib = timing.get("max_rss_kib")
    result["peak_rss_mib"] = round(kib / 1024, 1) if kib else None
    result["cpu_s"] = round(timing.get("user_s", 0) + timing.get("system_s", 0), 2)
    return result


def free_port() -> int:
    """A port that was free a moment ago (spu's link needs its listening ports up front)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _import_spu_psi() -> Any:
    """spu's PSI bindings without ``spu/__init__`` (which imports jax, unused here and not
    installed: ``pip install --no-deps spu``)."""
    import importlib.util
    import types

    if "spu" not in sys.modules:
        spec = importlib.util.find_spec("spu")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("spu is not installed: pip install --no-deps spu")
        package = types.ModuleType("spu")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["spu"] = package
    import spu.libspu as libspu  # type: ignore[import-not-found]
    import spu.psi as psi  # type: ignore[import-not-found]

    return libspu, psi


def spu_worker(rank: int) -> None:
    """Child process: one party of spu's two-party ECDH PSI (curve25519) over its brpc link.
    Arguments come in SPU_HOSTS (JSON list, this party's own address at its rank), SPU_INPUT
    and SPU_OUTPUT; prints JSON."""
    libspu, psi = _import_spu_psi()
    desc = libspu.link.Desc()
    for i, host in enumerate(json.loads(os.environ["SPU_HOSTS"])):
        desc.add_party(f"party{i}", host)
    desc.recv_timeout_ms = 3_600_000
    desc.connect_retry_times = 600
    desc.connect_retry_interval_ms = 100
    began = time.perf_counter()
    link = libspu.link.create_brpc(desc, rank)
    config = psi.PsiExecuteConfig(
        protocol_conf=psi.PsiProtocolConfig(
            protocol=psi.PsiProtocol.PROTOCOL_ECDH,
            receiver_rank=0,
            broadcast_result=False,
            ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519),
        ),
        input_params=psi.InputParams(
            type=psi.SourceType.SOURCE_TYPE_FILE_CSV,
            path=os.environ["SPU_INPUT"],
            selected_keys=["email"],
            keys_unique=True,
        ),
        output_params=psi.OutputParams(
            type=psi.SourceType.SOURCE_TYPE_FILE_CSV,
            path=os.environ["SPU_OUTPUT"],
            disable_alignment=True,
        ),
    )
    report = psi.psi_execute(config, link)
    elapsed = time.perf_counter() - began
    link.stop_link()
    print(
        json.dumps(
            {
                "rank": rank,
                "seconds": round(elapsed, 3),
                "intersection_count": report.intersection_count,
                "original_count": report.original_count,
            }
        )
    )


def run_spu(n: int, timeout: float, workdir: Path) -> dict[str, Any]:
    """spu's ECDH PSI, two processes on loopback, on the same normalised emails as
    openmined-psi. Each party's link traffic passes a counting forwarder."""
    try:
        spu_version = importlib.metadata.version("spu")
    except importlib.metadata.PackageNotFoundError:
        return {"skipped": "spu is not installed: pip install --no-deps spu"}
    directory = workdir / f"spu-{n}"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    brand, partner = openmined_items(n)
    inputs = []
    for rank, items in enumerate((brand, partner)):  # rank 0 (receiver): the brand's list
        path = directory / f"party{rank}.csv"
        path.write_text("email\n" + "\n".join(items) + "\n")
        inputs.append(path)
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    with Forwarder("127.0.0.1", ports[0]) as to_0, Forwarder("127.0.0.1", ports[1]) as to_1:
        views = (  # each party listens on its own port and reaches the other through a forwarder
            [f"127.0.0.1:{ports[0]}", f"127.0.0.1:{to_1.port}"],
            [f"127.0.0.1:{to_0.port}", f"127.0.0.1:{ports[1]}"],
        )
        began = time.perf_counter()
        for rank in (0, 1):
            command, _ = timed_command(
                [sys.executable, str(Path(__file__).resolve()), "--spu-worker", str(rank)],
                directory / f"party{rank}.time",
            )
            env = {
                "SPU_HOSTS": json.dumps(views[rank]),
                "SPU_INPUT": str(inputs[rank]),
                "SPU_OUTPUT": str(directory / f"out{rank}.csv"),
                "TMPDIR": str(directory),
            }
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=directory,
                    stdout=(directory / f"party{rank}.out").open("wb"),
                    stderr=(directory / f"party{rank}.err").open("wb"),
                    env=dict(os.environ, **env),
                    start_new_session=True,
                )
            )
            _children.append(procs[-1])
        try:
            codes = [p.wait(timeout) for p in procs]
        except subprocess.TimeoutExpired:
            for p in procs:
                kill_tree(p)
            return {"error": f"did not finish in {timeout:g} s"}
        wall = time.perf_counter() - began
        time.sleep(0.2)
        traffic = {"0_to_1": to_1.up + to_0.down, "1_to_0": to_0.up + to_1.down}
    for log in directory.glob("party*.[oe][ur][tr]"):  # spu leaves a trace file in /tmp per run
        for match in re.finditer(
            r"Trace has been written to (\S+?)\.?$", log.read_text(errors="replace"), re.M
        ):
            Path(match.group(1)).unlink(missing_ok=True)
    if any(codes):
        tail = (directory / f"party{codes.index(next(c for c in codes if c))}.err").read_text(
            errors="replace"
        )[-1500:]
        return {"error": f"exit codes {codes}: {tail}"}
    parties = []
    for rank in (0, 1):
        timing = parse_time_v(directory / f"party{rank}.time")
        printed = (directory / f"party{rank}.out").read_text(errors="replace").splitlines()
        out = json.loads(next(line for line in reversed(printed) if line.startswith('{"rank"')))
        parties.append(
            {
                **out,
                "cpu_s": round(timing.get("user_s", 0) + timing.get("system_s", 0), 2),
                "peak_rss_mib": round(timing["max_rss_kib"] / 1024, 1)
                if "max_rss_kib" in timing
                else None,
            }
        )
    return {
        "version": spu_version,
        "protocol": "ECDH-PSI 2PC, CURVE_25519, receiver party 0 (the brand's list)",
        "wall_s": round(wall, 3),
        "parties": parties,
        "intersection_size": parties[0]["intersection_count"],
        "expected": n // 2,
        "bytes": traffic,
        "cpu_s": round(sum(p["cpu_s"] for p in parties), 2),
    }


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for package in ("cleanroom", "cryptography", "pynacl", "grpcio", "protobuf", "openmined-psi"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    git: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--", "cleanroom", "clients"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
        git["uncommitted_files_in_cleanroom_and_clients"] = len(changed)
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1) if psutil else None,
        "loadavg_at_start": os.getloadavg(),
        "versions": versions,
        "git": git,
    }


def add_ratios(entry: dict[str, Any]) -> None:
    n = entry["n"]
    floor = entry.get("floor") or {}
    cores = floor.get("cores") or os.cpu_count() or 1
    rate = floor.get("x25519_per_s_one_core")
    openmined = entry.get("openmined") or {}
    spu = entry.get("spu") or {}
    by_config = {s["config"]: s for s in entry["sessions"] if s.get("ok")}
    for session in entry["sessions"]:
        if not session.get("ok"):
            continue
        wall = session["wall_s"]
        multiplications = 2 * (n + n)
        ratios: dict[str, Any] = {}
        if rate:
            floor_s = multiplications / (rate * cores)
            ratios["floor_s"] = round(floor_s, 3)
            ratios["x_floor"] = round(wall / floor_s, 2)
            parallel = floor.get("x25519_per_s_all_cores")
            if parallel:
                ratios["x_floor_measured_parallel"] = round(wall / (multiplications / parallel), 2)
            h2c = floor.get("hash_to_curve_per_s_one_core")
            if h2c:
                # what the protocol must compute at least: 2(n+m) X25519 and n+m hash-to-curve
                protocol_s = (multiplications / rate + 2 * n / h2c) / cores
                ratios["protocol_floor_s"] = round(protocol_s, 3)
                ratios["x_protocol_floor"] = round(wall / protocol_s, 2)
        if openmined.get("total_s"):
            ratios["x_openmined"] = round(wall / openmined["total_s"], 3)
            ratios["openmined_speedup"] = round(openmined["total_s"] / wall, 3)
        if spu.get("wall_s"):
            ratios["x_spu"] = round(wall / spu["wall_s"], 3)
            startup = session.get("server_startup_s") or 0
            ratios["x_spu_with_server_startup"] = round((wall + startup) / spu["wall_s"], 3)
        if session["config"] == "attrs20" and "overlap" in by_config:
            base = by_config["overlap"]["wall_s"]
            ratios["attrs_added_fraction"] = round(wall / base - 1, 3)
        session["ratios"] = ratios


def target_checks(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 10's targets, each with the figures of this run that decide it."""
    checks: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, higher_is_better: bool) -> None:
        if value is None:
            checks.append({"target": name, "measured": None, "met": None})
            return
        met = value >= limit if higher_is_better else value <= limit
        checks.append({"target": name, "measured": round(value, 3), "limit": limit, "met": met})

    for entry in entries:
        n = entry["n"]
        by_config = {s["config"]: s for s in entry["sessions"] if s.get("ok")}
        overlap = by_config.get("overlap")
        ratios = (overlap or {}).get("ratios", {})
        if n >= 10**6:
            add(
                f"{n}: overlap >= 15x faster than openmined-psi",
                ratios.get("openmined_speedup"),
                15,
                True,
            )
            add(f"{n}: overlap within 2.5x of spu", ratios.get("x_spu"), 2.5, False)
            for side in ("client", "server"):
                rss = (overlap or {}).get(f"{side}_peak_rss_tree_mib") or (overlap or {}).get(
                    f"{side}_peak_rss_mib"
                )
                add(f"{n}: peak RSS {side} <= 600 MiB", rss, 600, False)
        elif n >= 10**5:
            add(f"{n}: overlap within 3x of spu", ratios.get("x_spu"), 3, False)
        attrs = by_config.get("attrs20", {}).get("ratios", {}).get("attrs_added_fraction")
        if "attrs20" in by_config:
            add(f"{n}: 20 attributes add <= 40%", attrs, 0.40, False)
    return checks


def print_table(entries: list[dict[str, Any]]) -> None:
    header = (
        f"{'n':>9} {'config':8} {'wall s':>8} {'items/s':>9} {'startup s':>9} {'cli RSS':>8} "
        f"{'srv RSS':>8} {'up MB':>8} {'down MB':>8} {'cpu s':>7} {'x openm':>8} {'x spu':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    for entry in entries:
        for s in entry["sessions"]:
            if not s.get("ok"):
                print(f"{entry['n']:>9} {s['config']:8} FAILED: {s.get('error', '')[:120]}")
                continue
            r = s.get("ratios", {})
            print(
                f"{s['n']:>9} {s['config']:8} {s['wall_s']:>8.2f} {s['items_per_s']:>9.0f} "
                f"{s.get('server_startup_s', float('nan')):>9.2f} "
                f"{s.get('client_peak_rss_mib') or 0:>7.0f}M {s.get('server_peak_rss_mib') or 0:>7.0f}M "
                f"{s['bytes_up'] / 1e6:>8.2f} {s['bytes_down'] / 1e6:>8.2f} "
                f"{(s.get('client_cpu_s') or 0) + (s.get('server_session_cpu_s') or 0):>7.1f} "
                f"{r.get('x_openmined', float('nan')):>8.3f} {r.get('x_spu', float('nan')):>7.2f}"
            )
        om = entry.get("openmined") or {}
        if om.get("total_s"):
            print(
                f"{entry['n']:>9} {'openmined':8} {om['total_s']:>8.2f} {2 * entry['n'] / om['total_s']:>9.0f} "
                f"{'':>9} {om.get('peak_rss_mib') or 0:>7.0f}M  (in process; setup "
                f"{om['create_setup_message_s']:.2f} request {om['create_request_s']:.2f} process "
                f"{om['process_request_s']:.2f} size {om['get_intersection_size_s']:.2f})"
            )
        elif om:
            print(f"{entry['n']:>9} openmined {om.get('skipped') or om.get('error', '')[:150]}")
        sp = entry.get("spu") or {}
        if sp.get("wall_s"):
            p0, p1 = sp["parties"]
            print(
                f"{entry['n']:>9} {'spu':8} {sp['wall_s']:>8.2f} {2 * entry['n'] / sp['wall_s']:>9.0f} "
                f"{'':>9} {p1.get('peak_rss_mib') or 0:>7.0f}M {p0.get('peak_rss_mib') or 0:>7.0f}M "
                f"{sp['bytes']['1_to_0'] / 1e6:>8.2f} {sp['bytes']['0_to_1'] / 1e6:>8.2f} "
                f"{sp['cpu_s']:>7.1f}  (two processes, ECDH curve25519; intersection "
                f"{sp['intersection_size']})"
            )
        elif sp:
            print(f"{entry['n']:>9} spu      {sp.get('skipped') or sp.get('error', '')[:150]}")
        f = entry.get("floor") or {}
        if f:
            print(
                f"{entry['n']:>9} floor    X25519 {f['x25519_per_s_one_core']:,}/s one core, "
                f"{f['x25519_per_s_all_cores']:,}/s on {f['cores']} cores; hash_to_curve "
                f"{f['hash_to_curve_per_s_one_core']:,}/s one core"
            )
    print()
    print("wall s: client start to exit; items/s = 2n / wall; startup s: server start to "
          "'listening' (CRM read, normalised, SHA-256; imports); RSS: peak of the largest process; "
          "up = partner->brand, down = brand->partner (TLS bytes; spu: party 1 -> party 0 and back); "
          "cpu s: client + server during the session; x openm: wall / openmined-psi in-process "
          "time; x spu: wall / spu's two-process wall")  # fmt: skip


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="items per side (repeatable)")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}"
    )
    parser.add_argument("--repeat", type=int, default=1, help="sessions per (n, config); best kept")
    parser.add_argument(
        "--generator",
        choices=("fast", "demo"),
        default="fast",
        help="fast: user emails with exactly n/2 in both (default); demo: cleanroom.brand.demo.synthetic_lists",
    )
    parser.add_argument("--skip-openmined", action="store_true")
    parser.add_argument("--skip-spu", action="store_true")
    parser.add_argument("--skip-sessions", action="store_true")
    parser.add_argument(
        "--openmined-max-n", type=int, default=10**6, help="skip openmined-psi above this n"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one session per config with py-spy on both sides (first --n only)",
    )
    parser.add_argument("--no-workers", action="store_true", help="do not pass --workers")
    parser.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="where each side's own list is prepared and encrypted (spark: local mode)",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the working tree's code as it is at each moment, not a copy taken at start",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per session")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--openmined-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spu-worker", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.openmined_worker is not None:
        openmined_worker(args.openmined_worker)
        return 0
    if args.spu_worker is not None:
        spu_worker(args.spu_worker)
        return 0
    if psutil is None:
        print("warning: psutil is missing (pip install psutil): no RSS polling, no CPU figures")
    sizes = args.n or [10_000]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown config(s): {', '.join(sorted(unknown))}")
    cores = os.cpu_count() or 1
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cleanroom-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.no_snapshot:
        _source["root"] = take_snapshot(workdir / "src")
    workers: dict[str, list[str]] = {"server": [], "client": []}
    if not args.no_workers:
        if supports_workers(entry_point("cleanroom"), "serve"):
            workers["server"] = ["--workers", str(cores)]
        if supports_workers(entry_point("cleanroom-client"), "run"):
            workers["client"] = ["--workers", str(cores)]
    if args.engine == "spark":
        for side in workers.values():
            side += ["--engine", "spark"]
    info = machine()
    print(
        f"{info['cpu_model']}, {info['nproc']} cores, Python {info['python']}; "
        f"--workers: server {workers['server'] or 'not supported'}, "
        f"client {workers['client'] or 'not supported'}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"run-{stamp}.json"
    document: dict[str, Any] = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "workers": workers,
        "code": {
            "snapshot": not args.no_snapshot,
            "source_sha256_16": source_digest(),
        },
        "generator": args.generator,
        "entries": [],
    }

    def save() -> None:
        document["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        out.write_text(json.dumps(document, indent=2) + "\n")

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        from cleanroom.identity import init_certificate

        certs = workdir / "certs"
        if certs.exists():
            shutil.rmtree(certs)
        _, _, brand_fp = init_certificate(certs, "acme")
        _, _, partner_fp = init_certificate(certs, "newsco")
        fingerprints = (brand_fp, partner_fp)
        for index, n in enumerate(sizes):
            entry: dict[str, Any] = {"n": n, "sessions": []}
            document["entries"].append(entry)
            print(f"\n== n = {n:,} per side")
            print("floor: measuring X25519 ...", flush=True)
            entry["floor"] = floor_rates(cores)
            if not args.skip_sessions:
                data = workdir / f"data-{n}"
                entry["lists"] = write_lists(data, n, args.generator)
                print(f"lists written in {entry['lists']['seconds']} s", flush=True)
                timeout = args.timeout or 300 + 0.005 * n
                for config in configs:
                    runs = []
                    for attempt in range(args.repeat):
                        print(f"session {config} (run {attempt + 1}/{args.repeat}) ...", flush=True)
                        session = run_session(
                            workdir, data, certs, fingerprints, config, n,
                            timeout=timeout, workers=workers,
                        )  # fmt: skip
                        status = f"{session['wall_s']:.2f} s" if session["ok"] else session["error"]
                        print(f"  {status}", flush=True)
                        runs.append(session)
                        entry.setdefault("runs", []).append(session)  # saved as it happens
                        save()
                    good = [s for s in runs if s["ok"]]
                    best = min(good, key=lambda s: s["wall_s"]) if good else runs[-1]
                    if len(good) > 1:
                        best["wall_s_all_runs"] = [s["wall_s"] for s in good]
                        best["wall_s_median"] = round(statistics.median(best["wall_s_all_runs"]), 3)
                    entry["sessions"].append(best)
                if args.profile and index == 0:
                    entry["profiles"] = {}
                    for config in configs:
                        print(f"profiling {config} with py-spy ...", flush=True)
                        session = run_session(
                            workdir, data, certs, fingerprints, config, n,
                            timeout=timeout * 3, workers=workers, profile=True, label="-profile",
                        )  # fmt: skip
                        directory = workdir / f"n{n}-{config}-profile"
                        profiles = {
                            side: summarize_profile(directory / f"{side}.pyspy")
                            for side in ("client", "server")
                        }
                        for side in ("client", "server"):
                            raw = directory / f"{side}.pyspy"
                            if raw.exists():
                                shutil.copy(
                                    raw, RESULTS / f"profile-{stamp}-n{n}-{config}-{side}.txt"
                                )
                        entry["profiles"][config] = {
                            "wall_s_under_profiler": session.get("wall_s"),
                            "error": session.get("error"),
                            **profiles,
                        }
                        save()
            if not args.skip_spu:
                print("spu ECDH PSI, two processes ...", flush=True)
                entry["spu"] = run_spu(n, timeout=600 + 0.01 * n, workdir=workdir)
                save()
            if not args.skip_openmined:
                if n > args.openmined_max_n:
                    entry["openmined"] = {
                        "skipped": f"n > --openmined-max-n {args.openmined_max_n}"
                    }
                else:
                    print("openmined-psi in process ...", flush=True)
                    entry["openmined"] = run_openmined(n, timeout=600 + 0.01 * n, workdir=workdir)
            add_ratios(entry)
            save()
        print_table(document["entries"])
        document["targets"] = target_checks(document["entries"])
        print("\ntargets (issue 10):")
        for check in document["targets"]:
            verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
            print(f"  {check['target']}: {check.get('measured')} -> {verdict}")
        for entry in document["entries"]:
            for config, profile in (entry.get("profiles") or {}).items():
                for side in ("client", "server"):
                    p = profile.get(side) or {}
                    if "inclusive" not in p:
                        continue
                    print(
                        f"\nprofile n={entry['n']} {config} {side} ({p['samples']} samples at 200 Hz)"
                    )
                    print("  by inclusive samples:")
                    for row in interesting(p["inclusive"])[:10]:
                        print(f"    {row['share']:6.1%}  {row['function']}")
                    print("  by self samples:")
                    for row in p["self"][:8]:
                        print(f"    {row['share']:6.1%}  {row['function']}")
        print(f"\nwrote {out}")
        return 0 if all(s.get("ok") for e in document["entries"] for s in e["sessions"]) else 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        cleanup_all()
        save()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep or args.workdir is not None:
            print(f"work directory kept: {workdir}")


if __name__ == "__main__":
    sys.exit(main())
