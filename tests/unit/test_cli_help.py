"""The two command lines as a newcomer meets them: --version, help text, tables, Ctrl-C."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from cleanroom_client import cli as partner_cli
from cleanroom_client.cli import app as partner_app
from rich.console import Console

from cleanroom.brand.cli import app as brand_app
from cleanroom.brand.demo import write_demo_files
from cleanroom.cli_support import program, run_app
from cleanroom.errors import Interrupted
from cleanroom.report.render import quality_table

APPS = {"cleanroom": brand_app, "cleanroom-client": partner_app}
HEAVY = ("grpc", "pandas", "pyarrow", "matplotlib", "pyspark", "numpy", "opendp", "pydantic")


def commands(app: click.Group):
    """(path, click command) for every command and group of an app, depth first."""
    pending = [((), app)]
    while pending:
        path, command = pending.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            pending.append(((*path, name), sub))


def run(app: click.Command, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        run_app(app, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.mark.parametrize("name", APPS)
def test_version(name, capsys):
    code, out, _ = run(APPS[name], ["--version"], capsys)
    assert code == 0 and out == f"cleanroom {version('cleanroom')}\n"


@pytest.mark.parametrize("name", APPS)
def test_every_option_has_help_and_flags_take_no_value(name, capsys):
    for path, command in commands(APPS[name]):
        code, out, _ = run(APPS[name], [*path, "--help"], capsys)
        assert code == 0
        assert "<bool>" not in out, (path, out)
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {' '.join(path)} {param.opts[0]} has no help text"
            if getattr(param, "is_flag", False) and param.name != "help":
                flag_line = next(line for line in out.splitlines() if param.opts[-1] in line)
                assert f"{param.opts[-1]} <" not in flag_line and " FILE" not in flag_line


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("cleanroom", ()),
        ("cleanroom", ("serve",)),
        ("cleanroom", ("crm", "check")),
        ("cleanroom", ("contract", "check")),
        ("cleanroom", ("certs", "init")),
        ("cleanroom", ("report", "plot")),
        ("cleanroom-client", ()),
        ("cleanroom-client", ("run",)),
        ("cleanroom-client", ("lookalike",)),
    ],
)
def test_help_has_a_runnable_looking_example(name, path, capsys):
    _, out, _ = run(APPS[name], [*path, "--help"], capsys)
    example = out.split("Example:\n", 1)[1]
    assert example.lstrip().startswith(f"{name} {' '.join(path)}".strip())


def test_tls_options_say_they_are_required_unless_insecure(capsys):
    _, out, _ = run(partner_app, ["run", "--help"], capsys)
    for option in ("--tls-cert", "--tls-key", "--server-cert"):
        after = out.split(f"  {option} FILE", 1)[1]
        text = " ".join(re.split(r"\n  -", after, maxsplit=1)[0].split())
        assert "required unless --insecure" in text, option
    assert "-q, --quiet" in out and "--insecure " in out


def test_help_and_a_bad_flag_import_nothing_heavy():
    """`--help` must stay fast: no gRPC, pandas, pyarrow, matplotlib, pyspark (issue 10);
    and a bad flag value of `run` or `serve` is told before the session machinery loads."""
    bad_timeout = ["--server", "x:1", "--contract", "c.toml", "--audience", "a.csv"]
    serve = ["cleanroom", "serve", "--config", "b.toml"]
    for module, argv in (
        ("cleanroom_client.cli", ["cleanroom-client", "--help"]),
        ("cleanroom_client.cli", ["cleanroom-client", "run", "--help"]),
        ("cleanroom_client.cli", ["cleanroom-client", "run", *bad_timeout, "--timeout", "-5"]),
        ("cleanroom.brand.cli", ["cleanroom", "--help"]),
        ("cleanroom.brand.cli", ["cleanroom", "report", "plot", "--help"]),
        ("cleanroom.brand.cli", [*serve, "--log-format", "xml"]),
        ("cleanroom.brand.cli", [*serve, "--metrics-listen", "9464"]),
        ("cleanroom.brand.cli", [*serve, "--engine", "dask"]),
    ):
        code = (
            f"import sys\nsys.argv = {argv!r}\nfrom {module} import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert result.stdout.strip().splitlines()[-1] == "[]", (argv, result.stdout)


def test_defaults_shown_in_help_are_the_client_defaults():
    from cleanroom_client import client

    assert partner_cli.DEFAULT_STATE == client.DEFAULT_STATE
    assert partner_cli.DEFAULT_CONNECT_TIMEOUT == client.DEFAULT_CONNECT_TIMEOUT


def test_an_interrupted_session_says_what_happened(capsys):
    probe = program("probe", "A command line that is interrupted.")

    @probe.command()
    def session() -> None:
        raise Interrupted("during session abc: it was aborted and no budget was spent")

    @probe.command()
    def other() -> None:
        raise KeyboardInterrupt

    code, _, err = run(probe, ["session"], capsys)
    assert code == 130
    assert err == "interrupted during session abc: it was aborted and no budget was spent\n"
    code, _, err = run(probe, ["other"], capsys)
    assert code == 130 and err == "interrupted\n"


def test_commands_are_listed_in_the_order_a_user_needs_them(capsys):
    _, out, _ = run(brand_app, ["--help"], capsys)
    listed = [line.split()[0] for line in out.split("Commands:\n", 1)[1].splitlines() if line]
    assert listed[:3] == ["serve", "demo", "doctor"]


def test_a_bad_value_names_the_option_and_exits_2(capsys):
    code, _, err = run(partner_app, ["run", "--workers", "x"], capsys)
    assert code == 2
    assert "Invalid value for '--workers': 'x' is not a valid integer" in err


def test_quality_table_reads_as_a_table():
    quality = {
        "email": {"rows": 20400, "valid": 19000, "invalid": 900, "duplicates": 12},
        "phone": {"rows": 20400, "valid": 18830, "invalid": 1570, "duplicates": 0},
    }
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(quality_table(quality, title="CRM input quality", records=19402))
    text = console.file.getvalue()
    assert "{" not in text and "CRM input quality" in text
    phone = next(line for line in text.splitlines() if line.strip().startswith("phone"))
    # rows, valid, invalid (share of non-empty values), empty, duplicates, kept
    assert phone.split() == ["phone", "20,400", "18,830", "1,570", "(7.7%)", "0", "0", "18,830"]
    email = next(line for line in text.splitlines() if line.strip().startswith("email"))
    assert email.split()[-3:] == ["500", "12", "18,988"]
    assert "19,402 records kept" in text


@pytest.fixture
def site(tmp_path: Path) -> Path:
    write_demo_files(tmp_path, brand_records=1500, partner_records=200, min_set_size=100)
    return tmp_path


def test_contract_check_prints_a_table_not_a_dict(site, capsys, monkeypatch):
    monkeypatch.chdir(site)
    code, out, _ = run(brand_app, ["contract", "check", "contract.toml"], capsys)
    assert code == 0
    assert "{" not in out and "'" not in out
    assert "Match keys" in out and "email, phone" in out
    assert "1 per session, 10 in total" in out


def test_crm_check_runs_the_preparation_alone(site, capsys, monkeypatch):
    monkeypatch.chdir(site)
    code, out, _ = run(brand_app, ["crm", "check", "--config", "brand.toml"], capsys)
    assert code == 0
    assert "CRM input quality" in out and "records per segment" in out
    assert not (site / "brand-state.db").exists()
    code, out, _ = run(
        brand_app, ["crm", "check", "--config", "brand.toml", "--format", "json"], capsys
    )
    summary = json.loads(out)
    (checked,) = summary.values()
    assert checked["records"] == sum(checked["records_per_segment"].values())
    assert {"email", "phone"} <= set(checked["input_quality"])
    email = checked["input_quality"]["email"]
    assert email["rows"] == 1500 and email["valid"] + email["invalid"] <= 1500

    crm = site / "crm.csv"
    crm.write_text(crm.read_text().replace("@", "#"))  # every email invalid
    code, _, err = run(brand_app, ["crm", "check", "--config", "brand.toml"], capsys)
    assert code in (3, 4) and "email" in err and "max_invalid_fraction" in err


def test_piped_tables_are_not_wrapped_at_80_columns(site, capsys, monkeypatch):
    monkeypatch.chdir(site)
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run(brand_app, ["crm", "check", "--config", "brand.toml"], capsys)
    assert code == 0
    title = next(line for line in out.splitlines() if "CRM input quality" in line)
    assert len(title.strip()) > 80 and title.strip().endswith("(stays on this machine)")
