"""Kill the brand server or the partner client at each round, as real processes.

Whatever round a process dies in: no half-written report file, budget spent only where the
design says a release happened, SQLite state intact with an unbroken audit chain, and the
next session runs normally.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pytest
from support import brand_in_this_process, partner_args, start_server, stop_server

from cleanroom.brand.demo import write_demo_files
from cleanroom.faults import CRASH_EXIT_CODE
from cleanroom.store.state import StateStore

pytestmark = pytest.mark.slow
CONTRACT_ID = "acme-x-newsco-demo"

# crash point -> (brand spent, partner spent, brand stored a report, partner stored a report).
# Each side spends when its first noisy view leaves (docs/privacy.md#ledger): the brand when
# HelloReply carries its padded sizes, the partner just before its records and dummies.
CASES = {
    "brand:hello": (0, 0, False, False),
    # the partner may already be streaming its records when the brand dies on its first Z
    # chunk: spent or not, the ledger must say which (checked against the audit below)
    "brand:double_encrypted": (1, (0, 1), False, False),
    "brand:partner_records": (1, 1, False, False),
    "brand:attribute_sums": (1, 1, False, False),
    "brand:released": (1, 1, True, False),  # committed, died before sending the report
    "brand:release_ack": (1, 1, True, True),  # the partner holds the report; only the ack is lost
    "partner:hello_reply": (1, 0, False, False),
    "partner:brand_elements": (1, 0, False, False),
    "partner:indicators": (1, 1, False, False),
    "partner:release": (1, 1, True, False),  # the brand released; the partner died before storing
}


@pytest.fixture
def site(tmp_path):
    write_demo_files(tmp_path, brand_records=400, partner_records=600, min_set_size=20)
    contract = tmp_path / "contract.toml"
    contract.write_text(contract.read_text().replace('"discrete_gaussian"', '"none"'))
    return tmp_path


def partner_run(site, port: int, env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        partner_args(port, "--out", "report.json", "--timeout", "20"),
        cwd=site,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def assert_state_intact(path) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    store = StateStore(path)
    assert store.verify_audit() == len(store.audit_entries())


@pytest.mark.parametrize("crash_at", list(CASES))
def test_a_crash_at_any_round_loses_nothing_and_the_next_session_runs(site, crash_at):
    brand_spent, partner_spent, brand_has_report, partner_has_report = CASES[crash_at]
    side, _ = crash_at.split(":")
    env = {"CLEANROOM_CRASH_AT": crash_at}
    if side == "brand":
        server, port = start_server(site, env)
        try:
            result = partner_run(site, port, None)
            assert server.wait(timeout=60) == CRASH_EXIT_CODE
            assert result.returncode == (0 if partner_has_report else 7), result.stderr
        finally:
            stop_server(server)
    else:  # only the partner's process dies: the brand can serve from this one
        with brand_in_this_process(site) as served:
            result = partner_run(site, served.port, env)
        assert result.returncode == CRASH_EXIT_CODE, result.stderr

    assert (site / "report.json").exists() == partner_has_report
    assert not list(site.glob(".*.partial"))
    brand, partner = StateStore(site / "brand-state.db"), StateStore(site / "partner-state.db")
    assert brand.budget_spent(CONTRACT_ID) == brand_spent
    spent = partner.budget_spent(CONTRACT_ID)
    assert spent in partner_spent if isinstance(partner_spent, tuple) else spent == partner_spent
    charges = [e for e in partner.audit_entries() if e["event"] == "budget-spent"]
    assert len(charges) == spent  # one ledger charge, one audit entry (mechanism none: 1 each)
    assert (brand.latest_report_session() is not None) == brand_has_report
    assert (partner.latest_report_session() is not None) == partner_has_report
    assert_state_intact(site / "brand-state.db")
    assert_state_intact(site / "partner-state.db")

    # the next session, with nobody crashing, runs normally. It runs the code both CLIs run at
    # start (build_server, Client.run: each side's recovery, then a session over mutual TLS) in
    # this process; test_operations.py shows the real processes recovering.
    with brand_in_this_process(site) as served:
        report = json.loads(served.client(idle_timeout=20).run(site / "audience.csv").to_json())
    # the next start closed the crashed session on both sides, each with an audit entry
    for path in (site / "brand-state.db", site / "partner-state.db"):
        with sqlite3.connect(path) as db:
            statuses = dict(db.execute("SELECT session_id, status FROM sessions"))
        db.close()
        assert "running" not in statuses.values(), (path.name, statuses)
        store = StateStore(path)
        closed = {e["session_id"] for e in store.audit_entries() if e["event"] == "abort"}
        assert {sid for sid, status in statuses.items() if status == "aborted"} <= closed
    assert set(report.pop("signatures")) == {"brand", "partner"}
    assert StateStore(site / "brand-state.db").report(report["session_id"]).to_dict() == report
    assert report["overlap"]["total"] > 0
