"""Ctrl-C of ``cleanroom-client run`` at each phase, as a real process receiving SIGINT.

Whatever the phase: exit 130, one line saying what became of the session and whether any
budget was spent (and why), a real abort reason in the audit log, no report file, and a
ledger that agrees with the line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from cleanroom_client.client import INTERRUPTED
from support import brand_in_this_process, partner_args

from cleanroom.brand.demo import write_demo_files
from cleanroom.privacy.calibration import parse_contract
from cleanroom.store.state import StateStore

pytestmark = pytest.mark.slow
CONTRACT_ID = "acme-x-newsco-demo"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("interrupt")
    write_demo_files(directory, brand_records=400, partner_records=600, min_set_size=20)
    with brand_in_this_process(directory) as brand:  # the partner's process is under test
        yield directory, brand.port


# Runs a command with SIGINT at its default action. A suite started as a background job
# (`pytest &`) hands its children an ignored SIGINT, which exec keeps, and Python then
# installs no KeyboardInterrupt handler: the partner would sleep through the Ctrl-C.
DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def interrupt_at(directory, port, pause_at: str, out: str) -> tuple[int, list[str]]:
    """Run the partner, wait until it pauses at ``pause_at``, send SIGINT; (exit, stderr lines)."""
    partner = subprocess.Popen(
        [sys.executable, "-c", DEFAULT_SIGINT, *partner_args(port, "--out", out)],
        cwd=directory,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLEANROOM_PAUSE_AT": pause_at},
    )
    assert partner.stderr is not None
    try:
        first = partner.stderr.readline()
        assert first.strip() == f"paused at {pause_at}", first + partner.stderr.read()
        partner.send_signal(signal.SIGINT)
        code = partner.wait(timeout=60)
        rest = partner.stderr.read()
    finally:
        if partner.poll() is None:
            partner.kill()
            partner.wait()
        partner.stderr.close()
    return code, [line for line in rest.splitlines() if line.strip()]


def brand_abort_reason(directory, seen: int, wait: float = 15.0) -> str:
    """The reason of the brand's next abort entry after the first ``seen`` ones."""
    brand = StateStore(directory / "brand-state.db")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        aborts = [e for e in brand.audit_entries()[seen:] if e["event"] == "abort"]
        if aborts:
            return str(aborts[0]["detail"]["reason"])
        time.sleep(0.2)
    raise AssertionError("the brand recorded no abort")


@pytest.mark.parametrize(
    ("pause_at", "opened", "sessions_spent"),
    [
        ("partner:hello_reply", False, 0),  # the brand answered; no session here yet
        ("partner:brand_elements", True, 0),  # our records (and dummies) not yet sent
        ("partner:indicators", True, 1),  # our records and dummies left: budget spent
        ("partner:release", True, 1),
    ],
)
def test_ctrl_c_says_what_happened_and_spends_nothing_after(site, pause_at, opened, sessions_spent):
    directory, port = site
    contract = parse_contract((directory / "contract.toml").read_bytes())
    store = StateStore(directory / "partner-state.db")
    before = store.budget_spent(CONTRACT_ID) if store.path.exists() else 0.0
    entries = len(store.audit_entries()) if store.path.exists() else 0
    out = f"report-{pause_at.split(':')[1]}.json"

    brand_entries = len(StateStore(directory / "brand-state.db").audit_entries())
    code, lines = interrupt_at(directory, port, pause_at, out)

    assert code == 130
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("interrupted "), line
    assert "Traceback" not in line
    assert not (directory / out).exists()
    new = store.audit_entries()[entries:]
    aborts = [e for e in new if e["event"] == "abort"]
    assert [e["detail"]["reason"] for e in aborts] == [INTERRUPTED]
    assert store.budget_spent(CONTRACT_ID) == pytest.approx(
        before + sessions_spent * contract.ledger_per_session
    )
    if pause_at != "partner:release":  # (by then the brand had released its report)
        assert INTERRUPTED in brand_abort_reason(directory, brand_entries)  # it is told why
    if not opened:
        assert line == "interrupted before the session started: no privacy budget was spent"
        return
    session_id = aborts[0]["session_id"]
    assert store.session_status(session_id) == "aborted"
    assert f"during session {session_id}: it was aborted" in line
    if sessions_spent:
        charge = f"{contract.ledger_unit} {contract.ledger_per_session:g}"
        assert f"but {charge} of contract '{CONTRACT_ID}' was spent because" in line
        assert "records and dummy matches had already left for the brand" in line
        left = store.budget_remaining(contract)
        assert left == pytest.approx(contract.ledger_total - before - contract.ledger_per_session)
        assert f"({left:g} left)" in line
    else:
        assert "no privacy budget was spent" in line
        assert not any(e["event"] == "budget-spent" for e in new)


def test_ctrl_c_while_reading_the_audience(site):
    directory, port = site
    code, lines = interrupt_at(directory, port, "partner:prepare", "report-prepare.json")
    assert code == 130
    assert lines == [
        "interrupted while reading the audience: no session was opened and no privacy budget "
        "was spent"
    ]
