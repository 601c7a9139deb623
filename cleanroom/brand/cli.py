"""``cleanroom``: the brand's command line (serve, demo, contracts, certificates, reports, audit).

Exit codes are listed in docs/reference/exit-codes.md; each error's is its class's
``exit_code`` (:mod:`cleanroom.errors`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.decorators import FC

from cleanroom.cli_support import (
    check_engine,
    check_format,
    check_listen,
    check_log_format,
    check_workers,
    command_group,
    file_option,
    noise_multiple_option,
    output_console,
    print_json,
    program,
    run_app,
    smoothing_option,
    wait_for_stop_signal,
    workers_option,
)
from cleanroom.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from rich.console import Console

    from cleanroom.brand.servicer import Offer

app = program(
    "cleanroom",
    """A two-party first-party data clean room: the brand's server and the shared tools.

    \b
    Example:
      cleanroom demo                                   # everything on this machine
      cleanroom crm check --config brand.toml          # the CRM's input quality
      cleanroom serve --config brand.toml              # serve the partners in the config
      cleanroom report show report.json
    """,
)


def format_option(default: str) -> Callable[[FC], FC]:
    return click.option(
        "--format", "output_format", default=default, metavar="table|json", help="table or json"
    )


config_option = file_option("--config", required=True, help_text="brand server config (TOML)")
state_option = file_option("--state", required=True, help_text="a brand or partner state database")
file_argument = click.argument("file", type=click.Path(path_type=Path), metavar="FILE")


def print_crm_quality(offers: dict[str, Offer], console: Console) -> None:
    """Per contract, the CRM's input-quality table: the same one the partner gets of its list."""
    from cleanroom.report.render import quality_table

    for offer in offers.values():
        contract = offer.contract
        segments = ", ".join(
            f"{name} {count:,}"
            for name, count in zip(
                contract.segments, offer.brand_list.records_per_segment(), strict=True
            )
        )
        console.print(
            quality_table(
                offer.brand_list.quality,
                title=f"CRM input quality · contract {contract.id} with "
                f"{contract.partner.name} (stays on this machine)",
                records=offer.brand_list.size,
            )
        )
        console.print(f"  records per segment: {segments}")


def crm_summary(offers: dict[str, Offer]) -> dict[str, Any]:
    return {
        offer.contract.id: {
            "records": offer.brand_list.size,
            "records_per_segment": dict(
                zip(
                    offer.contract.segments,
                    offer.brand_list.records_per_segment(),
                    strict=True,
                )
            ),
            "input_quality": offer.brand_list.quality,
        }
        for offer in offers.values()
    }


class JsonStatus:
    """``serve``'s status lines as log records, so that with ``--log-format json`` every
    line on stderr is one JSON object a log collector can read."""

    def print(self, text: object) -> None:
        from rich.text import Text

        plain = Text.from_markup(text).plain if isinstance(text, str) else str(text)
        logging.getLogger("cleanroom.server").info(plain, extra={"event": "status"})

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        self.print(text)
        yield


@app.command()
@config_option
@click.option("--insecure", is_flag=True, help="plain TCP without TLS; loopback addresses only")
@workers_option
@click.option(
    "--engine",
    "engine_name",
    default="local",
    metavar="local|spark",
    help="local, or spark: the CRM's per-record work on Spark",
)
@click.option("--spark-scratch", metavar="URI", help="where Spark writes each session's elements")
@click.option(
    "--metrics-listen",
    metavar="HOST:PORT",
    help="HOST:PORT to serve Prometheus metrics on (overrides [server] metrics_listen)",
)
@click.option(
    "--log-format", metavar="text|json", help="text or json (overrides [server] log_format)"
)
@click.option(
    "--quiet", "-q", is_flag=True, help="no input-quality tables, start-up lines or session log"
)
def serve(
    config: Path,
    insecure: bool,
    workers: int,
    engine_name: str,
    spark_scratch: str | None,
    metrics_listen: str | None,
    log_format: str | None,
    quiet: bool,
) -> None:
    """Serve the brand's CRM to the partners named in the config, until interrupted.

    At start-up it prints the CRM's input quality per contract (the table
    `cleanroom crm check` prints), then one log line per session.

    \b
    Example:
      cleanroom serve --config brand.toml
    """
    check_engine(engine_name, spark_scratch)  # the flags first: told before the imports below
    check_workers(workers)
    if log_format is not None:
        check_log_format(log_format, "--log-format")
    if metrics_listen is not None:
        check_listen(metrics_listen, "--metrics-listen")

    from cleanroom.brand.config import load_server_config
    from cleanroom.brand.observability import SessionMetrics, configure_logging
    from cleanroom.brand.servicer import build_server, close_offers, prepare_offers, shut_down
    from cleanroom.crypto.batches import BatchRunner
    from cleanroom.lists.spark import start_spark

    settings = load_server_config(config, insecure=insecure)
    log_format = log_format or settings.log_format
    if not quiet:  # one line per session: released, refused or aborted, and why
        configure_logging(log_format, sys.stderr)
    console: Console | JsonStatus = (
        JsonStatus()
        if log_format == "json" and not quiet
        else output_console(stderr=True, quiet=quiet)
    )
    with console.status("reading and hashing the CRM"):
        spark = start_spark("cleanroom serve") if engine_name == "spark" else None
        offers = prepare_offers(settings, spark, spark_scratch)
    try:
        metrics = SessionMetrics()  # served before the gRPC server starts: a bad address stops here
        metrics_address = metrics_listen or settings.metrics_listen
        if metrics_address is not None:
            metrics_port = metrics.serve(
                metrics_address,
                "--metrics-listen"
                if metrics_listen
                else f"{settings.source}: [server] metrics_listen",
            )
            console.print(
                f"metrics on http://{metrics_address.rpartition(':')[0]}:{metrics_port}/metrics"
            )
        engine = BatchRunner(workers or None)
        server, port = build_server(settings, offers=offers, engine=engine, metrics=metrics)
        if isinstance(console, JsonStatus):
            for offer in offers.values():
                console.print(
                    f"contract {offer.contract.id} with {offer.contract.partner.name}: "
                    f"{offer.brand_list.size} CRM records"
                )
        else:
            print_crm_quality(offers, console)  # once serving: a refusal to start stays one line
        host = settings.listen.rsplit(":", 1)[0]
        listening = f"listening on {host}:{port} ({'insecure' if insecure else 'mutual TLS'})"
        # said once SIGTERM is handled: a supervisor may send it as soon as it reads the line
        reason = wait_for_stop_signal(lambda: console.print(f"{listening}; Ctrl-C stops"))
        shut_down(server, reason)  # partners are told, each session recorded and logged
        metrics.close()
        engine.close()
    finally:  # a Spark CRM's cached frame and scratch directory, whatever stopped us
        close_offers(offers)


@app.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default="cleanroom-demo",
    metavar="DIR",
    help="where the demo writes its files",
)
@click.option(
    "--brand-records", type=int, default=6000, metavar="N", help="rows of the synthetic CRM"
)
@click.option(
    "--partner-records", type=int, default=12000, metavar="N", help="rows of the synthetic audience"
)
@click.option("--quiet", "-q", is_flag=True, help="print nothing")
def demo(directory: Path, brand_records: int, partner_records: int, quiet: bool) -> None:
    """Synthetic brand and partner, a real TLS session over loopback, the report and a chart.

    \b
    Example:
      cleanroom demo --dir /tmp/demo
    """
    from cleanroom.brand.demo import run_demo

    run_demo(directory, brand_records=brand_records, partner_records=partner_records, quiet=quiet)


@app.command()
@click.option(
    "--workers",
    type=int,
    default=0,
    metavar="N",
    help="threads a session would use (default: every core)",
    show_default=False,
)
@format_option("table")
def doctor(workers: int, output_format: str) -> None:
    """Check the native core: its version, the active X25519 path and why, curve25519-dalek's
    backend, the thread count."""
    from cleanroom.crypto.native import describe

    check_format(output_format)
    facts = describe(check_workers(workers))
    if output_format == "json":
        print_json(facts)
        return
    print(f"native core   cleanroom._native {facts['native_core']}")
    print(f"x25519        {facts['x25519_path']}: {facts['x25519_reason']}")
    print(f"dalek backend {facts['dalek_backend']}")
    print(f"threads       {facts['threads']}")


contract_app = command_group(app, "contract", "Inspect and check contracts.")


@contract_app.command("hash")
@file_argument
def contract_hash(file: Path) -> None:
    """Print the contract's SHA-256 (both parties must see the same)."""
    from cleanroom.privacy.calibration import load_contract

    print(load_contract(file).sha256)


@contract_app.command("check")
@file_argument
@format_option("table")
def contract_check(file: Path, output_format: str) -> None:
    """Validate a contract and summarise what it allows.

    \b
    Example:
      cleanroom contract check contract.toml
    """
    from cleanroom.privacy.calibration import load_contract

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
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"Contract {contract.id} · valid until {contract.expires.isoformat()}",
        caption=f"sha256 {contract.sha256}: both parties must see this value",
        box=box.SIMPLE_HEAVY,
        show_header=False,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for role, party in (("Brand", contract.brand), ("Partner", contract.partner)):
        table.add_row(role, f"{party.name} (certificate sha256 {party.certificate_sha256})")
    table.add_row("Match keys", ", ".join(contract.keys))
    table.add_row("Segments", ", ".join(contract.segments))
    table.add_row("Attributes", ", ".join(contract.attributes) or "none (overlap only)")
    table.add_row("Privacy noise", contract.mechanism)
    table.add_row(
        "Budget (epsilon)",
        f"{contract.epsilon_per_session:g} per session, {contract.epsilon_total:g} in total",
    )
    table.add_row("Smallest list", f"{contract.min_set_size:,} records (min_set_size)")
    table.add_row("Smallest count", f"{contract.min_overlap:,} users (min_overlap)")
    console = output_console()
    console.print("[green]ok[/] the contract is valid and has not expired")
    console.print(table)


crm_app = command_group(app, "crm", "Check the brand's CRM before serving it.")


@crm_app.command("check")
@config_option
@format_option("table")
def crm_check(config: Path, output_format: str) -> None:
    """Read, normalize, check and hash the CRM as `serve` does, and print its input quality.

    Nothing is served and no state database is touched. A CRM that `serve` would refuse
    (a missing column, too many invalid values for max_invalid_fraction) fails the same way.

    \b
    Example:
      cleanroom crm check --config brand.toml
    """
    from cleanroom.brand.config import load_server_config
    from cleanroom.brand.servicer import prepare_offers

    check_format(output_format)
    offers = prepare_offers(load_server_config(config))
    if output_format == "json":
        print_json(crm_summary(offers))
    else:
        print_crm_quality(offers, output_console())


certs_app = command_group(app, "certs", "Create pinned TLS identities.")


@certs_app.command("init")
@click.argument("directory", type=click.Path(path_type=Path), metavar="DIR")
@click.option("--name", required=True, metavar="NAME", help="party name, e.g. acme")
@click.option("--host", metavar="HOST", help="DNS name or IP the server is reached at")
def certs_init(directory: Path, name: str, host: str | None) -> None:
    """Write NAME.crt and NAME.key and print the fingerprint to put in the contract.

    \b
    Example:
      cleanroom certs init certs --name acme --host brand.example.com
    """
    from cleanroom.identity import init_certificate

    cert, key, fingerprint = init_certificate(directory, name, host)
    output_console(stderr=True).print(f"wrote {cert} and {key} (keep the key private)")
    print(fingerprint)


report_app = command_group(app, "report", "Read, chart and model a released report.")


@report_app.command("show")
@file_argument
@format_option("table")
def report_show(file: Path, output_format: str) -> None:
    """Print a report: overlap, then the attribute index table sorted by index."""
    from cleanroom.report.document import Report
    from cleanroom.report.render import print_report

    report = Report.load(file)
    if check_format(output_format) == "json":
        print_json(report.to_dict())
    else:
        print_report(report.to_dict(), output_console())


@report_app.command("plot")
@file_argument
@file_option("--out", default="lift.png", help_text="PNG to write")
@click.option(
    "--top",
    type=int,
    default=6,
    metavar="N",
    help="per segment, draw only the N highest and N lowest indices (0: every cell)",
)
def report_plot(file: Path, out: Path, top: int) -> None:
    """Draw the lift chart: per segment, each index with its 99.9% range.

    \b
    Example:
      cleanroom report plot report.json --out lift.png
    """
    from cleanroom.report.document import Report
    from cleanroom.report.plot import plot_lift

    path = plot_lift(Report.load(file).to_dict(), out, top=top)
    output_console(stderr=True).print(f"wrote {path}")


@report_app.command("model")
@file_argument
@click.option("--segment", metavar="NAME", help="segment to model (default: all pooled)")
@noise_multiple_option
@smoothing_option
@format_option("json")
def report_model(
    file: Path,
    segment: str | None,
    noise_multiple: float,
    smoothing: float | None,
    output_format: str,
) -> None:
    """The lookalike model derived from the report alone (the partner derives the same)."""
    from rich.markup import escape

    from cleanroom.report.document import Report
    from cleanroom.report.lookalike import LookalikeModel

    model = LookalikeModel.from_report(
        Report.load(file).to_dict(), segment, smoothing=smoothing, noise_multiple=noise_multiple
    )
    if check_format(output_format) == "json":
        print_json(model.to_dict())
        return
    console = output_console()
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
@state_option
@click.option(
    "--session",
    default="",
    metavar="ID",
    help="session id (default: the latest)",
    show_default=False,
)
@file_option("--out", default="report.json", help_text="where to write the report JSON")
def report_export(state: Path, session: str, out: Path) -> None:
    """Write a stored report (the brand's copy, or the partner's) to a JSON file.

    \b
    Example:
      cleanroom report export --state partner-state.db --out report.json
    """
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
    write_atomically(out, stored.to_json())
    output_console(stderr=True).print(f"wrote the report of session {session_id} to {out}")


@report_app.command("verify")
@file_argument
@file_option("--brand-cert", required=True, help_text="the brand's pinned certificate")
@file_option("--partner-cert", required=True, help_text="the partner's pinned certificate")
def report_verify(file: Path, brand_cert: Path, partner_cert: Path) -> None:
    """Check that both parties signed exactly this report (exit 9 if not).

    \b
    Example:
      cleanroom report verify report.json --brand-cert acme.crt --partner-cert newsco.crt
    """
    from cleanroom.identity import verify_signed_report
    from cleanroom.report.document import Report

    report = Report.load(file)
    verify_signed_report(report, {"brand": brand_cert, "partner": partner_cert})
    print(json.dumps({"report": str(file), "session_id": report.session_id, "signatures": "valid"}))


audit_app = command_group(app, "audit", "Check the tamper-evident audit log.")


@audit_app.command("verify")
@state_option
@click.option(
    "--anchor",
    metavar="HASH",
    help="an audit head hash recorded earlier: fail if the chain no longer contains it",
)
def audit_verify(state: Path, anchor: str | None) -> None:
    """Check the audit log's hash chain, and the reports, signatures and ledger against it.

    \b
    Example:
      cleanroom audit verify --state brand-state.db
    """
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
