"""A state database that cannot be written: one `error:` line and exit 10, never a
traceback, and a partner that paid for a report keeps it and can record it later
(``cleanroom-client recover``), also from the brand's copy. Faults are real (a read-only
file or directory) or injected SQLite errors in a real process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cleanroom_client import ConnectionLostError, UnsavedReportError
from support import brand_in_this_process, partner_args, tool

from cleanroom.brand.demo import write_demo_files
from cleanroom.faults import CRASH_EXIT_CODE
from cleanroom.identity import verify_signed_report
from cleanroom.report.document import Report
from cleanroom.store.state import StateStore

pytestmark = pytest.mark.slow
CONTRACT_ID = "acme-x-newsco-demo"


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files or directories read-only for real, also for root (which ignores mode bits:
    the immutable attribute binds it too)."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(modes[path] & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def database_files(path: Path) -> list[Path]:
    """The database and the WAL files SQLite keeps next to it: all must be frozen, or the
    write lands in a writable WAL."""
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


@pytest.fixture
def site(tmp_path):
    write_demo_files(tmp_path, brand_records=400, partner_records=600, min_set_size=20)
    contract = tmp_path / "contract.toml"
    contract.write_text(contract.read_text().replace('"discrete_gaussian"', '"none"'))
    return tmp_path


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_one_error_line(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: state database")
    for fragment in fragments:
        assert fragment in line


def test_a_read_only_partner_state_is_one_error_line_and_exit_10(site):
    StateStore(site / "partner-state.db").audit("created")
    with (
        brand_in_this_process(site) as brand,
        read_only(*database_files(site / "partner-state.db")),
    ):
        result = run(partner_args(brand.port, "--out", "report.json"), site)
    assert_one_error_line(
        result, 10, "partner-state.db", "readonly", "make the file and its directory writable"
    )
    assert not (site / "report.json").exists()


def test_a_read_only_state_directory_stops_serve_with_exit_10(site):
    (site / "state").mkdir()
    StateStore(site / "state/brand-state.db").audit("created")  # closed cleanly: no WAL left
    config = site / "brand.toml"
    config.write_text(config.read_text().replace('"brand-state.db"', '"state/brand-state.db"'))
    with read_only(site / "state"):
        result = run([tool("cleanroom"), "serve", "--config", "brand.toml"], site)
    assert_one_error_line(result, 10, "state/brand-state.db")


def test_a_release_the_partner_cannot_record_is_kept_signed_and_recovered(deploy, monkeypatch):
    """The partner's database turns read-only as the brand releases: the partner still
    acknowledges (the brand's copy carries both signatures), keeps the report, and records
    it once the database is writable again."""
    site = deploy()
    partner_db = site.directory / "partner-state.db"
    brand_db = site.directory / "brand-state.db"
    original = StateStore.commit_release
    frozen: list[contextlib.AbstractContextManager[None]] = []

    def freeze_partner_then_release(self, *args, **kwargs):
        if self.path == brand_db and not frozen:
            frozen.append(read_only(*database_files(partner_db)))
            frozen[0].__enter__()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "commit_release", freeze_partner_then_release)
    client = site.client()
    try:
        with pytest.raises(UnsavedReportError) as unsaved:
            client.run(site.directory / "audience.csv")
    finally:
        monkeypatch.undo()
        for context in frozen:
            context.__exit__(None, None, None)
    assert frozen, "the brand never released"
    message = str(unsaved.value)
    assert "readonly" in message and "could not be recorded here" in message
    report = unsaved.value.report
    assert set(report.signatures) == {"brand", "partner"}
    certificates = {
        "brand": site.directory / "certs/acme.crt",
        "partner": site.directory / "certs/newsco.crt",
    }
    verify_signed_report(report, certificates)
    brand = site.brand_store()
    assert brand.report(report.session_id) == report
    assert brand.signatures(report.session_id) == report.signatures  # the ack got through
    partner = StateStore(partner_db)
    assert partner.report(report.session_id) is None

    recovered = client.recover(report, source="memory")
    assert recovered.signatures == report.signatures
    assert partner.report(report.session_id) == report
    assert partner.session_status(report.session_id) == "released"
    assert partner.verify_records()["signatures"] == 2
    assert partner.verify_audit() == len(partner.audit_entries())
    assert [e["event"] for e in partner.audit_entries()][-1] == "recovered"


def test_a_brand_that_cannot_record_its_release_tells_the_partner(deploy, monkeypatch):
    site = deploy()
    brand_db = site.directory / "brand-state.db"
    original = StateStore.commit_release

    def disk_full(self, *args, **kwargs):
        if self.path == brand_db:
            with self._transaction():  # SQLite's own error, raised inside the transaction
                raise sqlite3.OperationalError("database or disk is full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "commit_release", disk_full)
    with pytest.raises(ConnectionLostError) as lost:
        site.client().run(site.directory / "audience.csv")
    assert str(lost.value).startswith(
        "the brand ended the session: the brand server could not write its state database"
    )
    assert "try again later" in str(lost.value)
    brand = site.brand_store()
    # charged when HelloReply left (its noisy sizes), before the failed release
    assert brand.budget_spent(CONTRACT_ID) == 1.0 and brand.latest_report_session() is None


INJECT_AT_RELEASE = """
import sqlite3, sys
from cleanroom.store import state
original = state.StateStore._append_audit
def full_at_release(self, db, event, *args):
    if event == "release" and self.path.name == "partner-state.db":
        raise sqlite3.OperationalError("database or disk is full")
    return original(self, db, event, *args)
state.StateStore._append_audit = full_at_release
from cleanroom_client.cli import main
sys.argv[0] = "cleanroom-client"
main()
"""


def test_cli_disk_full_at_release_writes_the_report_and_says_how_to_recover(site):
    with brand_in_this_process(site) as brand:
        args = [
            sys.executable,
            "-c",
            INJECT_AT_RELEASE,
            *partner_args(brand.port, "--out", "report.json")[1:],
        ]
        result = run(args, site)
    assert_one_error_line(result, 10, "database or disk is full: free space on its disk")
    assert "The signed report was written to report.json" in result.stderr
    command = re.search(r"record it with: (cleanroom-client recover .*)$", result.stderr.strip())
    assert command is not None
    report = json.loads((site / "report.json").read_text())
    assert set(report["signatures"]) == {"brand", "partner"}
    partner = StateStore(site / "partner-state.db")
    assert partner.report(report["session_id"]) is None

    recover = shlex.split(command.group(1))
    recovered = run([tool(recover[0]), *recover[1:]], site)
    assert recovered.returncode == 0, recovered.stderr
    assert StateStore(site / "partner-state.db").report(report["session_id"]).to_dict() == {
        k: v for k, v in report.items() if k != "signatures"
    }
    verified = run(
        [
            tool("cleanroom"),
            "report",
            "verify",
            "report.json",
            "--brand-cert",
            "certs/acme.crt",
            "--partner-cert",
            "certs/newsco.crt",
        ],
        site,
    )
    assert verified.returncode == 0, verified.stderr
    audit = run([tool("cleanroom"), "audit", "verify", "--state", "partner-state.db"], site)
    assert audit.returncode == 0 and json.loads(audit.stdout)["signatures_valid"] == 2
    again = run([tool(recover[0]), *recover[1:]], site)
    assert again.returncode == 0, again.stderr  # recording the same report twice is harmless


def test_a_partner_that_died_before_storing_recovers_the_brands_copy(site):
    with brand_in_this_process(site) as brand:
        crashed = run(
            partner_args(brand.port, "--out", "lost.json"),
            site,
            {"CLEANROOM_CRASH_AT": "partner:release"},
        )
    assert crashed.returncode == CRASH_EXIT_CODE
    [session_id] = [
        row[0]
        for row in sqlite3.connect(site / "partner-state.db").execute(
            "SELECT session_id FROM sessions"
        )
    ]
    exported = run(
        [
            tool("cleanroom"),
            "report",
            "export",
            "--state",
            "brand-state.db",
            "--session",
            session_id,
            "--out",
            "brand-copy.json",
        ],
        site,
    )
    assert exported.returncode == 0, exported.stderr
    assert set(json.loads((site / "brand-copy.json").read_text())["signatures"]) == {"brand"}
    keys = ["--tls-cert", "certs/newsco.crt", "--tls-key", "certs/newsco.key"]
    recover = [
        tool("cleanroom-client"),
        "recover",
        "--contract",
        "contract.toml",
        "--state",
        "partner-state.db",
        "--server-cert",
        "certs/acme.crt",
        *keys,
    ]

    tampered = json.loads((site / "brand-copy.json").read_text())
    tampered["partner_size"] += 1
    (site / "tampered.json").write_text(json.dumps(tampered))
    refused = run([*recover, "--report", "tampered.json"], site)
    assert refused.returncode == 9 and "no valid brand signature" in refused.stderr
    tampered["signatures"] = {"brand": "not a signature"}
    (site / "junk.json").write_text(json.dumps(tampered))
    junk = run([*recover, "--report", "junk.json"], site)
    assert junk.returncode == 9 and "no valid brand signature" in junk.stderr

    result = run([*recover, "--report", "brand-copy.json"], site)
    assert result.returncode == 0, result.stderr
    partner = StateStore(site / "partner-state.db")
    assert partner.session_status(session_id) == "released"
    report = Report.load(site / "brand-copy.json")
    assert set(report.signatures) == {"brand", "partner"}
    assert partner.report(session_id) == report
    assert partner.budget_spent(CONTRACT_ID) == 1  # charged once, when its sums left


def test_recover_refuses_a_session_this_state_never_ran(site, tmp_path):
    with brand_in_this_process(site) as brand:
        assert run(partner_args(brand.port, "--out", "report.json"), site).returncode == 0
    other = tmp_path / "other-state.db"
    StateStore(other).audit("created")
    result = run(
        [
            tool("cleanroom-client"),
            "recover",
            "--report",
            "report.json",
            "--contract",
            "contract.toml",
            "--state",
            str(other),
            "--server-cert",
            "certs/acme.crt",
            "--tls-cert",
            "certs/newsco.crt",
            "--tls-key",
            "certs/newsco.key",
        ],
        site,
    )
    assert result.returncode == 3 and "never ran with the state database" in result.stderr
