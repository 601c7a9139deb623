"""``cleanroom``: the brand's command line (serve, demo, contracts, certificates, reports, audit).

Exit codes are listed in docs/reference/exit-codes.md and :data:`cleanroom.errors.EXIT_CODES`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from cleanroom.cli_support import (
    NoiseMultipleOption,
    SmoothingOption,
    check_engine,
    check_format,
    check_workers,
    print_json,
    run_app,
)
from cleanroom.contract import load_contract
from cleanroom.errors import InputError, IntegrityError
from cleanroom.stats.report import Report

app = typer.Typer(
    name="cleanroom",
    help="A two-party first-party data clean room: brand server and tools.",
    no_args_is_help=True,
    add_completion=False,
)
contract_app = typer.Typer(help="Inspect and check contracts.", no_args_is_help=True)
certs_app = typer.Typer(help="Create pinned TLS identities.", no_args_is_help=True)
report_app = typer.Typer(help="Read, chart and model a released report.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the tamper-evident audit log.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
app.add_typer(certs_app, name="certs")
app.add_typer(report_app, name="report")
app.add_typer(audit_app, name="audit")

FormatOption = Annotated[str, typer.Option("--format", help="table or json")]


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", help="brand server config (TOML)")],
    insecure: Annotated[bool, typer.Option("--insecure", help="plain TCP, loopback only")] = False,
    workers: Annotated[
        int, typer.Option("--workers", help="threads for the crypto (default: every core)")
    ] = 0,
    engine_name: Annotated[
        str, typer.Option("--engine", help="local, or spark: the CRM's per-record work on Spark")
    ] = "local",
    spark_scratch: Annotated[
        str | None,
        typer.Option("--spark-scratch", help="where Spark writes each session's elements"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Serve the brand's CRM to the partners named in the config, until interrupted."""
    from cleanroom.engine import Engine
    from cleanroom.server.config import load_server_config
    from cleanroom.server.service import build_server, prepare_offers
    from cleanroom.spark import SparkList, start_spark

    console = Console(stderr=True, quiet=quiet)
    if not quiet:  # one line per session started, released, failed or refused
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
        )
    check_engine(engine_name, spark_scratch)
    check_workers(workers)
    settings = load_server_config(config, insecure=insecure)
    with console.status("reading and hashing the CRM"):
        spark = start_spark("cleanroom serve") if engine_name == "spark" else None
        offers = prepare_offers(settings, spark, spark_scratch)
    engine = Engine(workers or None)
    server, port = build_server(settings, offers=offers, engine=engine)
    for offer in offers.values():
        console.print(
            f"contract [bold]{offer.contract.id}[/] with {offer.contract.partner.name}: "
            f"{offer.brand_list.size} CRM records"
        )
    host = settings.listen.rsplit(":", 1)[0]
    console.print(
        f"listening on {host}:{port} ({'insecure' if insecure else 'mutual TLS'}); Ctrl-C stops"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # Python runs signal handlers only when the main thread wakes; a signal the kernel hands
        # to one of gRPC's threads would never wake an untimed wait, so poll.
        while not stop.wait(timeout=0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.stop(grace=5).wait()
    engine.close()
    for offer in offers.values():
        if isinstance(offer.brand_list, SparkList):
            offer.brand_list.close()


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="where the demo writes its files")
    ] = Path("cleanroom-demo"),
    brand_records: Annotated[int, typer.Option("--brand-records")] = 6000,
    partner_records: Annotated[int, typer.Option("--partner-records")] = 12000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Synthetic brand and partner, a real TLS session over loopback, the report and a chart."""
    from cleanroom.demo import run_demo

    run_demo(directory, brand_records=brand_records, partner_records=partner_records, quiet=quiet)


@app.command()
def doctor(
    workers: Annotated[
        int, typer.Option("--workers", help="threads a session would use (default: every core)")
    ] = 0,
    output_format: FormatOption = "table",
) -> None:
    """Check the native core: its version, the active X25519 path and why, the thread count."""
    from cleanroom.native import describe

    check_format(output_format)
    facts = describe(check_workers(workers))
    if output_format == "json":
        print_json(facts)
        return
    print(f"native core   cleanroom._native {facts['native_core']}")
    print(f"x25519        {facts['x25519_path']}: {facts['x25519_reason']}")
    print(f"threads       {facts['threads']}")


@contract_app.command("hash")
def contract_hash(file: Path) -> None:
    """Print the contract's SHA-256 (both parties must see the same)."""
    print(load_contract(file).sha256)


@contract_app.command("check")
def contract_check(file: Path, output_format: FormatOption = "table") -> None:
    """Validate a contract and summarise what it allows."""
    contract = load_contract(file)
    contract.check_not_expired()
    summary = {
        "id": contract.id,
        "sha256": contract.sha256,
        "expires": contract.expires.isoformat(),
        "brand": dataclasses.asdict(contract.brand),
        "partner": dataclasses.asdict(contract.partner),
        "keys": list(contract.keys),
        "segments": list(contract.segments),
        "attributes": list(contract.attributes),
        "mechanism": contract.mechanism,
        "epsilon_per_session": contract.epsilon_per_session,
        "epsilon_total": contract.epsilon_total,
        "min_set_size": contract.min_set_size,
        "min_overlap": contract.min_overlap,
    }
    if check_format(output_format) == "json":
        print_json(summary)
        return
    console = Console()
    console.print(f"[green]ok[/] contract [bold]{contract.id}[/] ({contract.sha256})")
    for key, value in summary.items():
        if key not in ("id", "sha256"):
            console.print(f"  {key}: {escape(str(value))}")


@certs_app.command("init")
def certs_init(
    directory: Path,
    name: Annotated[str, typer.Option("--name", help="party name, e.g. acme")],
    host: Annotated[
        str | None, typer.Option("--host", help="DNS name or IP the server is reached at")
    ] = None,
) -> None:
    """Write NAME.crt and NAME.key and print the fingerprint to put in the contract."""
    from cleanroom.server.certs import init_certificate

    cert, key, fingerprint = init_certificate(directory, name, host)
    Console(stderr=True).print(f"wrote {cert} and {key} (keep the key private)")
    print(fingerprint)


@report_app.command("show")
def report_show(file: Path, output_format: FormatOption = "table") -> None:
    """Print a report: overlap, then the attribute index table sorted by index."""
    from cleanroom.stats.render import print_report

    report = Report.load(file)
    if check_format(output_format) == "json":
        print_json(report.to_dict())
    else:
        print_report(report.to_dict(), Console())


@report_app.command("plot")
def report_plot(
    file: Path,
    out: Annotated[Path, typer.Option("--out", help="PNG to write")] = Path("lift.png"),
    top: Annotated[
        int,
        typer.Option(
            "--top",
            help="per segment, draw only the N highest and N lowest indices (0: every cell)",
        ),
    ] = 6,
) -> None:
    """Draw the lift chart (index per attribute, one panel per segment)."""
    from cleanroom.stats.plot import plot_lift

    path = plot_lift(Report.load(file).to_dict(), out, top=top)
    Console(stderr=True).print(f"wrote {path}")


@report_app.command("model")
def report_model(
    file: Path,
    segment: Annotated[
        str | None, typer.Option("--segment", help="segment to model (default: all pooled)")
    ] = None,
    noise_multiple: NoiseMultipleOption = 1.0,
    smoothing: SmoothingOption = None,
    output_format: FormatOption = "json",
) -> None:
    """The lookalike model derived from the report alone (the partner derives the same)."""
    from cleanroom.stats.lookalike import LookalikeModel

    model = LookalikeModel.from_report(
        Report.load(file).to_dict(), segment, smoothing=smoothing, noise_multiple=noise_multiple
    )
    if check_format(output_format) == "json":
        print_json(model.to_dict())
        return
    console = Console()
    console.print(
        f"lookalike model for segment [bold]{escape(model.segment)}[/] · noise multiple "
        f"{model.noise_multiple:g} (count half-width {model.count_halfwidth}) · "
        f"smoothing {model.smoothing:g}\nreport sha256 {model.report_sha256}"
    )
    for name, present, absent, reason in zip(
        model.attributes, model.weights_present, model.weights_absent, model.reasons, strict=True
    ):
        if reason is None:
            console.print(f"  {escape(name):<28} has: {present:+.3f}   lacks: {absent:+.3f}")
        else:
            console.print(f"  {escape(name):<28} excluded: {escape(reason)}", style="dim")


@report_app.command("export")
def report_export(
    state: Annotated[Path, typer.Option("--state", help="state database")],
    session: Annotated[
        str, typer.Option("--session", help="session id (default: the latest)")
    ] = "",
    out: Annotated[Path, typer.Option("--out", help="where to write the report JSON")] = Path(
        "report.json"
    ),
) -> None:
    """Write a stored report (the brand's copy, or the partner's) to a JSON file."""
    from cleanroom.cli_support import write_atomically
    from cleanroom.store.state import StateStore

    if not state.exists():
        raise InputError(f"state database not found: {state}")
    store = StateStore(state)
    session_id = session or store.latest_report_session()
    stored = store.report(session_id) if session_id else None
    if stored is None or session_id is None:
        raise InputError(
            f"{state}: no stored report" + (f" for session {session}" if session else "")
        )
    write_atomically(out, Report(stored, signatures=store.signatures(session_id)).to_json())
    Console(stderr=True).print(f"wrote the report of session {session_id} to {out}")


@report_app.command("verify")
def report_verify(
    file: Path,
    brand_cert: Annotated[
        Path, typer.Option("--brand-cert", help="the brand's pinned certificate")
    ],
    partner_cert: Annotated[
        Path, typer.Option("--partner-cert", help="the partner's pinned certificate")
    ],
) -> None:
    """Check that both parties signed exactly this report (exit 9 if not)."""
    from cleanroom.server.certs import verify_signed_report

    report = Report.load(file)
    verify_signed_report(report, {"brand": brand_cert, "partner": partner_cert})
    print(json.dumps({"report": str(file), "session_id": report.session_id, "signatures": "valid"}))


@audit_app.command("verify")
def audit_verify(
    state: Annotated[Path, typer.Option("--state", help="state database")],
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="an audit head hash recorded earlier: fail if the chain no longer contains it",
        ),
    ] = None,
) -> None:
    """Check the audit log's hash chain, and the reports, signatures and ledger against it."""
    from cleanroom.store.state import StateStore

    if not state.exists():
        raise InputError(f"state database not found: {state}")
    store = StateStore(state)
    entries = store.verify_audit()
    if anchor is not None and not store.has_audit_hash(anchor.strip().lower()):
        raise IntegrityError(
            f"{state}: no audit entry has the hash {anchor}: the log was truncated or rewritten"
            " since that hash was recorded"
        )
    checked = store.verify_records()
    seq, head = store.head()
    print(
        json.dumps(
            {
                "state": str(state),
                "entries": entries,
                "chain": "intact",
                "head": {"seq": seq, "hash": head},
                "reports": checked["reports"],
                "signatures_valid": checked["signatures"],
                "ledger_entries": checked["ledger_entries"],
            }
        )
    )


def main() -> NoReturn:
    run_app(app)
