"""What the brand's operator sees, with real servers and processes: silent streams cannot
hold the session slots, crashed sessions are closed at the next start, every stream ends
with one log line giving the true reason, and metrics and JSON logs on request."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from support import Deployment, hello_for, partner_args, raw_stub, tool

from cleanroom.brand.config import load_server_config
from cleanroom.brand.demo import write_demo_files
from cleanroom.brand.servicer import build_server, service_of, shut_down
from cleanroom.faults import CRASH_EXIT_CODE
from cleanroom.privacy.calibration import load_contract
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.brand import BrandSession
from cleanroom.store.state import StateStore
from cleanroom.transport.grpc import ERROR_METADATA

CONTRACT_ID = "acme-x-newsco-demo"


class LiveServer:
    """``cleanroom serve`` as a real process, its stderr collected line by line."""

    def __init__(self, directory: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.process = subprocess.Popen(
            [tool("cleanroom"), "serve", "--config", "brand.toml", *extra],
            cwd=directory,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for(r"listening on [\d.]+:(\d+)").group(1))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_for(self, pattern: str, seconds: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the server ignored SIGTERM for 30 s") from None
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return "".join(self.lines)


@pytest.fixture
def site(tmp_path):
    write_demo_files(tmp_path, brand_records=400, partner_records=600, min_set_size=20)
    contract = tmp_path / "contract.toml"
    contract.write_text(contract.read_text().replace('"discrete_gaussian"', '"none"'))
    return tmp_path


def run_partner(directory: Path, port: int, *extra: str, env: dict[str, str] | None = None):
    return subprocess.run(
        partner_args(port, "--timeout", "20", *extra),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


# -- 1. silent streams ------------------------------------------------------------------------


def test_silent_streams_cannot_hold_the_slots_and_a_real_partner_still_gets_a_session(
    deploy, caplog
):
    site = deploy()
    config = site.directory / "silent.toml"
    config.write_text(
        (site.directory / "brand.toml")
        .read_text()
        .replace("idle_timeout =", "hello_timeout = 1.0\nidle_timeout =")
    )
    server, port = build_server(load_server_config(config), max_sessions=2)
    limited = Deployment(site.directory, port, server)
    release = threading.Event()
    outcomes: list[grpc.StatusCode] = []

    def silent_stream() -> None:
        channel, stub = raw_stub(limited, "newsco")

        def nothing():
            release.wait(60)
            yield from ()

        with channel:
            try:
                for _ in stub.Session(nothing(), timeout=60):
                    pass
            except grpc.RpcError as error:
                outcomes.append(error.code())

    caplog.set_level(logging.WARNING, logger="cleanroom.server")
    try:
        streams = [threading.Thread(target=silent_stream) for _ in range(3)]  # 2 slots
        for stream in streams:
            stream.start()
        for stream in streams:
            stream.join(timeout=30)
        assert not any(stream.is_alive() for stream in streams)
        # one found both slots taken; the server cut the two silent ones off itself
        assert sorted(code.name for code in outcomes) == [
            "CANCELLED",
            "CANCELLED",
            "RESOURCE_EXHAUSTED",
        ]
        report = limited.client().run(site.directory / "audience.csv")
    finally:
        release.set()
        shut_down(server, "the test is over")  # every stream's outcome recorded and logged
    assert report.overlap is not None and report.overlap > 0
    refusals = [
        entry
        for entry in site.brand_store().audit_entries()
        if entry["event"] == "refused"
        and "no first message within 1 s" in entry["detail"]["reason"]
    ]
    assert len(refusals) == 2 and all(entry["detail"]["peer"] for entry in refusals)
    logged = [r.getMessage() for r in caplog.records]
    assert (
        logged.count(
            "refused a partner before any session: no first message within 1 s ([server] hello_timeout)"
        )
        == 2
    )
    metrics = service_of(server).metrics.registry
    assert (
        metrics.get_sample_value(
            "cleanroom_sessions_refused_total", {"contract": "-", "reason": "hello_timeout"}
        )
        == 2
    )


def test_a_hello_timeout_that_is_not_a_number_of_seconds_is_refused(site):
    config = site / "brand.toml"
    config.write_text(config.read_text().replace("[server]", '[server]\nhello_timeout = "soon"'))
    result = subprocess.run(
        [tool("cleanroom"), "serve", "--config", "brand.toml"],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "[server] hello_timeout: must be a number of seconds greater than 0" in result.stderr


# -- 3. crashed sessions ----------------------------------------------------------------------


def test_a_partner_killed_after_its_budget_was_charged_is_aborted_at_the_next_start(site):
    server = LiveServer(site)
    try:
        crashed = run_partner(
            site, server.port, "--out", "lost.json", env={"CLEANROOM_CRASH_AT": "partner:release"}
        )
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
        partner = StateStore(site / "partner-state.db")
        [(session_id, status)] = sessions(partner)
        assert status == "running"  # the killed process could not close it
        assert partner.budget_spent(CONTRACT_ID) == 1  # its noisy sums had left
        again = run_partner(site, server.port, "--out", "next.json")
        assert again.returncode == 0, again.stderr
    finally:
        log = server.stop()
    partner = StateStore(site / "partner-state.db")
    statuses = dict(sessions(partner))
    assert statuses[session_id] == "aborted"
    assert sorted(statuses.values()) == ["aborted", "released"]
    [abort] = [
        e
        for e in partner.audit_entries()
        if e["event"] == "abort" and e["session_id"] == session_id
    ]
    assert "after its budget was spent" in abort["detail"]["reason"]
    assert partner.budget_spent(CONTRACT_ID) == 2  # the spent epsilon stays counted
    assert partner.verify_audit() == len(partner.audit_entries())
    # 4. the brand released that session; its log says so, not "failed"
    assert re.search(
        rf"session {session_id} released its report, but the partner did not acknowledge it", log
    )


def test_a_brand_killed_mid_session_is_aborted_at_its_next_start_and_the_partner_told_why(site):
    server = LiveServer(site, env={"CLEANROOM_CRASH_AT": "brand:partner_records"})
    try:
        result = run_partner(site, server.port, "--out", "report.json")
        assert server.process.wait(timeout=60) == CRASH_EXIT_CODE
    finally:
        server.stop()
    assert result.returncode == 7
    assert "cannot reach" not in result.stderr
    assert re.search(r"stopped answering in the middle of session [0-9a-f]{32}", result.stderr)
    brand = StateStore(site / "brand-state.db")
    [(session_id, status)] = sessions(brand)
    assert status == "running"
    restarted = LiveServer(site)
    log = restarted.stop()
    assert f"session {session_id} was left running by a server that stopped: aborted" in log
    assert dict(sessions(StateStore(site / "brand-state.db"))) == {session_id: "aborted"}


def sessions(store: StateStore) -> list[tuple[str, str]]:
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT session_id, status FROM sessions ORDER BY started_at").fetchall()
    db.close()
    return rows


# -- 4. one true log line per stream ----------------------------------------------------------


def open_session(server: LiveServer, first: pb.PartnerMessage | None = None):
    """A hand-driven partner on the real server: Hello (or ``first``), then whatever the test sends."""
    channel, stub = raw_stub(
        SimpleNamespace(directory=server.directory, address=server.address), "newsco"
    )
    outgoing: list[pb.PartnerMessage] = [first or hello_for(server.directory / "contract.toml")]
    more = threading.Event()
    done = threading.Event()

    def requests():
        yield outgoing[0]
        while not done.is_set():
            if more.wait(0.1):
                more.clear()
                yield outgoing[-1]

    def send(message: pb.PartnerMessage) -> None:
        outgoing.append(message)
        more.set()

    call = stub.Session(requests(), timeout=120)
    return channel, call, send, done


def drain(call) -> grpc.RpcError:
    """Read every brand message until the call ends; return how it ended."""
    try:
        for _ in call:
            pass
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call ended without an error")


def test_sigterm_mid_session_tells_the_partner_and_logs_the_abort(site):
    server = LiveServer(site)
    channel, call, _, done = open_session(server)
    try:
        first = next(call)
        assert first.WhichOneof("body") == "hello_reply"
        session_id = first.hello_reply.session_id
        ended: list[grpc.RpcError] = []
        reader = threading.Thread(target=lambda: ended.append(drain(call)))
        reader.start()
        server.process.send_signal(signal.SIGTERM)
        reader.join(timeout=60)
        log = server.stop()
    finally:
        done.set()
        channel.close()
    [error] = ended
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details() == "the brand server is shutting down (SIGTERM)"
    assert dict(error.trailing_metadata())[ERROR_METADATA] == "ConnectionLostError"
    assert re.search(
        rf"session {session_id} aborted, nothing released: the brand server is shutting down \(SIGTERM\)",
        log,
    )
    [abort] = [
        e
        for e in StateStore(site / "brand-state.db").audit_entries()
        if e["event"] == "abort" and e["session_id"] == session_id
    ]
    assert abort["detail"]["reason"] == "the brand server is shutting down (SIGTERM)"


def test_the_server_has_recorded_every_session_once_its_stop_returns(deploy, monkeypatch, caplog):
    """gRPC's stop returns as soon as the calls are over, which can be before the handler of
    a partner that just went away has written its abort; ``shut_down`` (what ``serve`` runs
    on SIGTERM or Ctrl-C) returns only once every handler has recorded and logged its
    outcome. The abort is made slow here, as a loaded machine makes it."""
    site = deploy()
    aborting = threading.Event()
    abort = BrandSession.abort

    def abort_slowly(session: BrandSession, reason: str) -> None:
        aborting.set()
        time.sleep(0.5)
        abort(session, reason)

    monkeypatch.setattr(BrandSession, "abort", abort_slowly)
    caplog.set_level(logging.INFO, logger="cleanroom.server")
    channel, stub = raw_stub(site, "newsco")
    gone = threading.Event()

    def hello_then_wait():
        yield hello_for(site.directory / "contract.toml")
        gone.wait(30)

    with channel:
        call = stub.Session(hello_then_wait(), timeout=60)
        session_id = next(call).hello_reply.session_id
        call.cancel()  # the partner goes away
        assert aborting.wait(30)  # its call is over; its handler is still recording
        shut_down(site.server, "the test is over")
    gone.set()
    store = site.brand_store()
    assert store.session_status(session_id) == "aborted"
    [abort_entry] = [e for e in store.audit_entries() if e["event"] == "abort"]
    assert abort_entry["session_id"] == session_id
    assert "the partner's stream was cancelled" in abort_entry["detail"]["reason"]
    assert f"session {session_id} aborted, nothing released" in caplog.text


def test_an_oversized_first_message_is_refused_with_its_size_and_no_traceback(site):
    server = LiveServer(site)
    oversized = pb.PartnerMessage(double_encrypted=pb.DoubleEncryptedChunk(elements=bytes(5 << 20)))
    channel, call, _, done = open_session(server, first=oversized)
    try:
        error = drain(call)
        server.wait_for("refused a partner before any session")
    finally:
        done.set()
        channel.close()
        log = server.stop()
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "exceeds the 4259840 byte limit" in error.details()
    assert re.search(
        r"refused a partner before any session: a double_encrypted message of \d+ bytes "
        r"exceeds the 4259840 byte limit",
        log,
    )
    assert "Traceback" not in log and "internal error" not in log


def test_a_5_mib_chunk_after_hello_is_logged_as_the_abort_reason(site):
    server = LiveServer(site)
    channel, call, send, done = open_session(server)
    try:
        session_id = next(call).hello_reply.session_id
        send(pb.PartnerMessage(double_encrypted=pb.DoubleEncryptedChunk(elements=bytes(5 << 20))))
        error = drain(call)
        server.wait_for(f"session {session_id} aborted")
    finally:
        done.set()
        channel.close()
        log = server.stop()
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(
        rf"session {session_id} aborted, nothing released: a double_encrypted message of "
        r"\d+ bytes exceeds the 4259840 byte limit",
        log,
    )
    assert len(re.findall(rf"session {session_id} (aborted|released|refused)", log)) == 1


# -- 6. metrics and JSON logs -----------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """Every sample of a Prometheus text page, by its name and labels as written."""
    with urllib.request.urlopen(url, timeout=30) as page:  # noqa: S310 - loopback http
        assert page.headers["Content-Type"].startswith("text/plain")
        text = page.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_on_an_opt_in_port_and_json_logs(site):
    server = LiveServer(site, "--metrics-listen", "127.0.0.1:0", "--log-format", "json")
    try:
        url = server.wait_for(r"metrics on (http://127\.0\.0\.1:\d+/metrics)").group(1)
        released = run_partner(site, server.port, "--out", "report.json")
        assert released.returncode == 0, released.stderr
        (site / "edited.toml").write_text((site / "contract.toml").read_text() + "# edited\n")
        refused = run_partner(site, server.port, "--out", "x.json", "--contract", "edited.toml")
        assert refused.returncode == 4
        server.wait_for('"outcome": "refused"')
        samples = scrape(url)
    finally:
        log = server.stop()
    contract = load_contract(site / "contract.toml")
    label = f'contract="{CONTRACT_ID}"'
    assert samples[f"cleanroom_sessions_started_total{{{label}}}"] == 1
    assert samples[f"cleanroom_sessions_released_total{{{label}}}"] == 1
    assert samples[f'cleanroom_sessions_refused_total{{{label},reason="contract"}}'] == 1
    assert samples[f"cleanroom_budget_remaining_epsilon{{{label}}}"] == pytest.approx(
        contract.epsilon_total - contract.epsilon_per_session
    )
    assert samples[f'cleanroom_session_duration_seconds_count{{{label},outcome="released"}}'] == 1
    report = json.loads((site / "report.json").read_text())
    assert samples[f"cleanroom_session_partner_records_sum{{{label}}}"] == report["partner_size"]
    assert samples["cleanroom_sessions_running"] == 0

    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    ends = [e for e in entries if e.get("event") == "session-end"]
    assert [e["outcome"] for e in ends] == ["released", "refused"]
    assert ends[0]["session_id"] == report["session_id"] and ends[0]["contract_id"] == CONTRACT_ID
    assert "contract hash mismatch" in ends[1]["reason"]
    assert all(e["time"].endswith("Z") and e["level"] in ("info", "warning") for e in entries)


def test_metrics_are_off_unless_asked_for(site):
    server = LiveServer(site)
    log = server.stop()
    assert "metrics on" not in log


def test_metrics_and_json_logs_can_be_set_in_brand_toml(site):
    config = site / "brand.toml"
    config.write_text(
        config.read_text().replace(
            "[server]", '[server]\nmetrics_listen = "127.0.0.1:0"\nlog_format = "json"'
        )
    )
    server = LiveServer(site)
    try:
        url = server.wait_for(r"metrics on (http://127\.0\.0\.1:\d+/metrics)").group(1)
        samples = scrape(url)
    finally:
        log = server.stop()
    contract = load_contract(site / "contract.toml")
    assert samples[f'cleanroom_budget_remaining_epsilon{{contract="{CONTRACT_ID}"}}'] == (
        pytest.approx(contract.epsilon_total)
    )
    assert all(json.loads(line)["level"] for line in log.splitlines() if line.strip())


def test_a_bad_metrics_address_is_refused_naming_the_option(site):
    result = subprocess.run(
        [tool("cleanroom"), "serve", "--config", "brand.toml", "--metrics-listen", "9464"],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "--metrics-listen: expected HOST:PORT, e.g. 127.0.0.1:9464, not '9464'" in result.stderr


def test_a_metrics_port_in_use_is_refused_naming_the_setting(site):
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        config = site / "brand.toml"
        config.write_text(
            config.read_text().replace("[server]", f'[server]\nmetrics_listen = "127.0.0.1:{port}"')
        )
        result = subprocess.run(
            [tool("cleanroom"), "serve", "--config", "brand.toml"],
            cwd=site,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    assert f"[server] metrics_listen = '127.0.0.1:{port}': cannot listen there" in result.stderr
    assert "Traceback" not in result.stderr
