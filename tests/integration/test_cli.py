"""The command-line tools end to end, as real processes: serve, run, report, lookalike, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from support import partner_args, start_server, stop_server, tool

from cleanroom.brand.demo import write_demo_files

pytestmark = pytest.mark.slow

# Small lists, so that each session is quick; the audience above 999 rows, so that its
# printed row count shows the thousands separator.
BRAND_RECORDS, PARTNER_RECORDS = 500, 1200


def write_site(directory: Path) -> None:
    write_demo_files(
        directory, brand_records=BRAND_RECORDS, partner_records=PARTNER_RECORDS, min_set_size=20
    )


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    write_site(directory)
    server, port = start_server(directory)
    yield directory, port
    stop_server(server)


def test_serve_logs_one_line_per_session_outcome(tmp_path):
    write_site(tmp_path)
    server, port = start_server(tmp_path)
    try:
        run(*partner_args(port, "--out", "report.json"), cwd=tmp_path)
        edited = (tmp_path / "contract.toml").read_text() + "# one byte more\n"
        (tmp_path / "edited.toml").write_text(edited)
        refused = run(
            *partner_args(port, "--out", "again.json", "--contract", "edited.toml"),
            cwd=tmp_path,
            check=False,
        )
    finally:
        log = stop_server(server)
    assert refused.returncode == 4  # the brand refuses a contract that differs by a byte
    session_id = json.loads((tmp_path / "report.json").read_text())["session_id"]
    assert f"session {session_id}" in log and "released its report" in log
    assert "refused: contract hash mismatch" in log


def test_serve_prints_the_crm_quality_that_crm_check_reports(tmp_path):
    write_site(tmp_path)
    checked = json.loads(
        run(
            tool("cleanroom"),
            "crm",
            "check",
            "--config",
            "brand.toml",
            "--format",
            "json",
            cwd=tmp_path,
        ).stdout
    )["acme-x-newsco-demo"]
    server = subprocess.Popen(
        [tool("cleanroom"), "serve", "--config", "brand.toml"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert server.stderr is not None
    before_listening = []
    for line in server.stderr:
        if "listening on" in line:
            break
        before_listening.append(line)
    stop_server(server)
    text = "".join(before_listening)
    assert "CRM input quality · contract acme-x-newsco-demo with newsco" in text
    for kind, counts in checked["input_quality"].items():
        row = next(line.split() for line in before_listening if line.split()[:1] == [kind])
        assert row[1:3] == [f"{counts['rows']:,}", f"{counts['valid']:,}"]
    assert f"{checked['records']:,} records kept" in text
    assert "{" not in text  # a table, not a dict


def test_partner_run_writes_the_report_the_brand_stored(site):
    directory, port = site
    result = run(*partner_args(port, "--out", "report.json", "--format", "json"), cwd=directory)
    printed = json.loads(result.stdout)
    written = json.loads((directory / "report.json").read_text())
    quality = printed.pop("input_quality")  # this side's, printed but never in the report
    assert printed == written and "input_quality" not in written
    assert quality["email"]["rows"] == PARTNER_RECORDS
    assert quality["email"]["valid"] + quality["email"]["invalid"] <= PARTNER_RECORDS
    import sqlite3

    with sqlite3.connect(directory / "brand-state.db") as db:
        (brand_json,) = db.execute(
            "SELECT report_json FROM reports WHERE session_id = ?", (written["session_id"],)
        ).fetchone()
    assert set(written.pop("signatures")) == {"brand", "partner"}
    assert json.loads(brand_json) == written

    shown = run(tool("cleanroom"), "report", "show", "report.json", cwd=directory)
    assert "interest_travel" in shown.stdout
    run(tool("cleanroom"), "report", "plot", "report.json", "--out", "lift.png", cwd=directory)
    assert (directory / "lift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    brand_model = json.loads(
        run(
            tool("cleanroom"), "report", "model", "report.json", "--segment", "loyal", cwd=directory
        ).stdout
    )

    exported = run(
        tool("cleanroom-client"),
        "lookalike",
        "--report",
        "report.json",
        "--audience",
        "audience.csv",
        "--size",
        "300",
        "--segment",
        "loyal",
        "--out",
        "lookalike.csv",
        "--format",
        "json",
        cwd=directory,
    )
    summary = json.loads(exported.stdout)
    assert summary["model"] == brand_model  # both sides derive the same model
    frame = pd.read_csv(directory / "lookalike.csv")
    assert len(frame) == 300 and list(frame.columns) == ["user_id", "score"]
    assert frame["score"].is_monotonic_decreasing
    audit = json.loads(
        run(tool("cleanroom"), "audit", "verify", "--state", "brand-state.db", cwd=directory).stdout
    )
    assert audit["chain"] == "intact" and audit["entries"] >= 3
    assert audit["reports"] == 1 and audit["signatures_valid"] == 2
    anchored = run(
        tool("cleanroom"),
        "audit",
        "verify",
        "--state",
        "brand-state.db",
        "--anchor",
        audit["head"]["hash"],
        cwd=directory,
    )
    assert json.loads(anchored.stdout)["head"] == audit["head"]


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (("--audience", "missing.csv"), 3, "not found: missing.csv"),
        (("--column", "email=EMAIL_ADDR"), 3, "EMAIL_ADDR"),
        (("--contract", "nope.toml"), 4, "contract file not found"),
        (("--server-cert", "certs/newsco.crt"), 5, "parties.brand.certificate_sha256"),
    ],
)
def test_bad_input_gives_one_line_and_the_documented_exit_code(site, extra, code, message):
    directory, port = site
    args = partner_args(port, "--out", "bad-report.json")
    for i in range(0, len(extra), 2):
        if extra[i] in args and extra[i] != "--column":
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += [extra[i], extra[i + 1]]
    result = run(*args, cwd=directory, check=False)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (directory / "bad-report.json").exists()


def test_server_down_exits_7(site, tmp_path):
    directory, _ = site
    result = run(*partner_args(1, "--out", str(tmp_path / "r.json")), cwd=directory, check=False)
    assert result.returncode == 7, result.stderr
    assert not (tmp_path / "r.json").exists()


def test_contract_hash_and_check(site):
    directory, _ = site
    digest = run(
        tool("cleanroom"), "contract", "hash", "contract.toml", cwd=directory
    ).stdout.strip()
    checked = json.loads(
        run(
            tool("cleanroom"),
            "contract",
            "check",
            "contract.toml",
            "--format",
            "json",
            cwd=directory,
        ).stdout
    )
    assert checked["sha256"] == digest and re.fullmatch(r"[0-9a-f]{64}", digest)
    (directory / "broken.toml").write_text(
        (directory / "contract.toml").read_text().replace("min_overlap = 50", "min_overlap = -5")
    )
    bad = run(tool("cleanroom"), "contract", "check", "broken.toml", cwd=directory, check=False)
    assert bad.returncode == 4 and "release.min_overlap" in bad.stderr


def test_certs_init_prints_the_fingerprint(tmp_path):
    result = run(
        tool("cleanroom"),
        "certs",
        "init",
        str(tmp_path),
        "--name",
        "shop",
        "--host",
        "shop.example.com",
        cwd=tmp_path,
    )
    assert re.fullmatch(r"[0-9a-f]{64}\n", result.stdout)
    assert (tmp_path / "shop.crt").exists() and oct(
        os.stat(tmp_path / "shop.key").st_mode & 0o777
    ) == "0o600"
    again = run(
        tool("cleanroom"),
        "certs",
        "init",
        str(tmp_path),
        "--name",
        "shop",
        cwd=tmp_path,
        check=False,
    )
    assert again.returncode == 3 and "already exists" in again.stderr


def test_brand_exports_its_copy_of_the_report(site, tmp_path):
    directory, port = site
    run(*partner_args(port, "--out", str(tmp_path / "partner.json")), cwd=directory)
    session = json.loads((tmp_path / "partner.json").read_text())["session_id"]
    run(
        tool("cleanroom"),
        "report",
        "export",
        "--state",
        "brand-state.db",
        "--session",
        session,
        "--out",
        str(tmp_path / "brand.json"),
        cwd=directory,
    )
    assert (tmp_path / "brand.json").read_bytes() == (tmp_path / "partner.json").read_bytes()


def test_a_misspelt_server_setting_is_refused(site, tmp_path):
    directory, _ = site
    config = (directory / "brand.toml").read_text().replace("listen =", "lisen =")
    (directory / "typo.toml").write_text(config)
    result = run(tool("cleanroom"), "serve", "--config", "typo.toml", cwd=directory, check=False)
    assert result.returncode == 3 and "[server] lisen: unknown setting" in result.stderr


def test_both_parties_sign_the_report_and_tampering_is_detected(site, tmp_path):
    directory, port = site
    out = tmp_path / "signed.json"
    run(*partner_args(port, "--out", str(out)), cwd=directory)
    data = json.loads(out.read_text())
    assert set(data["signatures"]) == {"brand", "partner"}
    certs = ["--brand-cert", "certs/acme.crt", "--partner-cert", "certs/newsco.crt"]
    verified = run(tool("cleanroom"), "report", "verify", str(out), *certs, cwd=directory)
    assert json.loads(verified.stdout)["signatures"] == "valid"

    data["overlap"]["total"] += 1
    (tmp_path / "tampered.json").write_text(json.dumps(data))
    tampered = run(
        tool("cleanroom"),
        "report",
        "verify",
        str(tmp_path / "tampered.json"),
        *certs,
        cwd=directory,
        check=False,
    )
    assert tampered.returncode == 9 and "does not verify" in tampered.stderr
    swapped = run(
        tool("cleanroom"),
        "report",
        "verify",
        str(out),
        "--brand-cert",
        "certs/newsco.crt",
        "--partner-cert",
        "certs/acme.crt",
        cwd=directory,
        check=False,
    )
    assert swapped.returncode == 9

    audit = json.loads(
        run(tool("cleanroom"), "audit", "verify", "--state", "brand-state.db", cwd=directory).stdout
    )
    assert audit["signatures_valid"] >= 2
    import sqlite3

    with sqlite3.connect(directory / "partner-state.db") as db:
        db.execute(
            "UPDATE reports SET report_json = replace(report_json, '\"partner_size\": ', '\"partner_size\": 1')"
        )
    db.close()
    broken = run(
        tool("cleanroom"),
        "audit",
        "verify",
        "--state",
        "partner-state.db",
        cwd=directory,
        check=False,
    )
    assert broken.returncode == 9 and "differs from the one released" in broken.stderr


def test_a_semicolon_latin1_audience_needs_only_its_encoding(site, tmp_path):
    directory, port = site
    frame = pd.read_csv(directory / "audience.csv", dtype=str, keep_default_na=False)
    frame["city"] = "Zürich"  # a byte that is not UTF-8 once saved as Latin-1
    frame.to_csv(directory / "audience-excel.csv", sep=";", encoding="latin-1", index=False)
    args = partner_args(port, "--out", str(tmp_path / "r.json"))
    args[args.index("audience.csv")] = "audience-excel.csv"
    refused = run(*args, cwd=directory, check=False)
    assert refused.returncode == 3, refused.stderr
    assert "audience-excel.csv: data row 1, column 'city': not valid utf-8" in refused.stderr
    assert "--encoding 'latin-1'" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "r.json").exists()
    run(*args, "--encoding", "latin-1", cwd=directory)  # the delimiter is detected
    assert json.loads((tmp_path / "r.json").read_text())["partner_size"] > 0
    exported = run(
        tool("cleanroom-client"),
        "lookalike",
        "--report",
        str(tmp_path / "r.json"),
        "--audience",
        "audience-excel.csv",
        "--delimiter",
        ";",
        "--encoding",
        "latin-1",
        "--size",
        "50",
        "--out",
        str(tmp_path / "top.csv"),
        "--format",
        "json",
        cwd=directory,
    )
    assert json.loads(exported.stdout)["exported"] == 50
    bad = run(*args, "--delimiter", "ab", cwd=directory, check=False)
    assert bad.returncode == 3 and "--delimiter 'ab': not a delimiter" in bad.stderr


def test_partner_run_prints_readable_tables_to_a_pipe(site, tmp_path):
    directory, port = site
    args = [a for a in partner_args(port, "--out", str(tmp_path / "r.json")) if a != "--quiet"]
    result = subprocess.run(
        args,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Input quality · audience.csv (stays on this machine)" in out
    assert "{'" not in out and "Audience attributes" in out
    email = next(line.split() for line in out.splitlines() if line.split()[:1] == ["email"])
    assert email[1] == f"{PARTNER_RECORDS:,}"  # rows of the audience
