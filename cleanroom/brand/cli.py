"""``cleanroom``: the brand's command line (serve, demo, contracts, certificates, reports, audit).

Exit codes are listed in docs/reference/exit-codes.md; each error's is its class's
``exit_code`` (:mod:`cleanroom.errors`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from cleanroom.cli_support import (
    TYPER_SETTINGS,
    NoiseMultipleOption,
    SmoothingOption,
    VersionOption,
    check_engine,
    check_format,
    check_workers,
    output_console,
    print_json,
    run_app,
)
from cleanroom.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from rich.console import Console

    from cleanroom.brand.servicer import Offer

app = typer.Typer(name="cleanroom", **TYPER_SETTINGS)
contract_app = typer.Typer(help="Inspect and check contracts.", **TYPER_SETTINGS)
certs_app = typer.Typer(help="Create pinned TLS identities.", **TYPER_SETTINGS)
report_app = typer.Typer(help="Read, chart and model a released report.", **TYPER_SETTINGS)
audit_app = typer.Typer(help="Check the tamper-evident audit log.", **TYPER_SETTINGS)
crm_app = typer.Typer(help="Check the brand's CRM before serving it.", **TYPER_SETTINGS)
app.add_typer(contract_app, name="contract")
app.add_typer(certs_app, name="certs")
app.add_typer(report_app, name="report")
app.add_typer(audit_app, name="audit")
app.add_typer(crm_app, name="crm")

FormatOption = Annotated[str, typer.Option("--format", help="table or json", metavar="table|json")]
ConfigOption = Annotated[
    Path, typer.Option("--config", help="brand server config (TOML)", metavar="FILE")
]
ReportArgument = Annotated[Path, typer.Argument(help="a report file", metavar="FILE")]
StateOption = Annotated[
    Path, typer.Option("--state", help="a brand or partner state database", metavar="FILE")
]


@app.callback()
def main_options(version: VersionOption = False) -> None:
    """A two-party first-party data clean room: the brand's server and the shared tools.

    \b
    Example:
      cleanroom demo                                   # everything on this machine
      cleanroom crm check --config brand.toml          # the CRM's input quality
      cleanroom serve --config brand.toml              # serve the partners in the config
      cleanroom report show report.json
    """


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
def serve(
    config: ConfigOption,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="plain TCP without TLS; loopback addresses only"),
    ] = False,
    workers: Annotated[
        int,
        typer.Option("--workers", help="threads for the crypto (0: every core)", metavar="N"),
    ] = 0,
    engine_name: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local, or spark: the CRM's per-record work on Spark",
            metavar="local|spark",
        ),
    ] = "local",
    spark_scratch: Annotated[
        str | None,
        typer.Option(
            "--spark-scratch", help="where Spark writes each session's elements", metavar="URI"
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            "--metrics-listen",
            help="HOST:PORT to serve Prometheus metrics on (overrides [server] metrics_listen)",
            metavar="HOST:PORT",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", help="text or json (overrides [server] log_format)", metavar="text|json"
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="no input-quality tables, start-up lines or session log"
        ),
    ] = False,
) -> None:
    """Serve the brand's CRM to the partners named in the config, until interrupted.

    At start-up it prints the CRM's input quality per contract (the table
    `cleanroom crm check` prints), then one log line per session.

    \b
    Example:
      cleanroom serve --config brand.toml
    """
    from cleanroom.brand.config import check_listen, check_log_format, load_server_config
    from cleanroom.brand.observability import SessionMetrics, configure_logging
    from cleanroom.brand.servicer import build_server, prepare_offers, service_of
    from cleanroom.crypto.batches import BatchRunner
    from cleanroom.lists.spark import SparkList, start_spark

    check_engine(engine_name, spark_scratch)
    check_workers(workers)
    if log_format is not None:
        check_log_format(log_format, "--log-format")
    if metrics_listen is not None:
        check_listen(metrics_listen, "--metrics-listen")
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
    metrics = SessionMetrics()  # served before the gRPC server starts: a bad address stops here
    metrics_address = metrics_listen or settings.metrics_listen
    if metrics_address is not None:
        metrics_port = metrics.serve(
            metrics_address,
            "--metrics-listen" if metrics_listen else f"{settings.source}: [server] metrics_listen",
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
    console.print(
        f"listening on {host}:{port} ({'insecure' if insecure else 'mutual TLS'}); Ctrl-C stops"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reason = "SIGTERM"
    try:
        # Python runs signal handlers only when the main thread wakes; a signal the kernel hands
        # to one of gRPC's threads would never wake an untimed wait, so poll.
        while not stop.wait(timeout=0.5):
            pass
    except KeyboardInterrupt:
        reason = "Ctrl-C"
    service_of(server).shut_down(reason)  # partners are told, each session logged
    server.stop(grace=5).wait()
    metrics.close()
    engine.close()
    for offer in offers.values():
        if isinstance(offer.brand_list, SparkList):
            offer.brand_list.close()


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="where the demo writes its files", metavar="DIR")
    ] = Path("cleanroom-demo"),
    brand_records: Annotated[
        int, typer.Option("--brand-records", help="rows of the synthetic CRM", metavar="N")
    ] = 6000,
    partner_records: Annotated[
        int,
        typer.Option("--partner-records", help="rows of the synthetic audience", metavar="N"),
    ] = 12000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print nothing")] = False,
) -> None:
    """Synthetic brand and partner, a real TLS session over loopback, the report and a chart.

    \b
    Example:
      cleanroom demo --dir /tmp/demo
    """
    from cleanroom.brand.demo import run_demo

    run_demo(directory, brand_records=brand_records, partner_records=partner_records, quiet=quiet)


@app.command()
def doctor(
    workers: Annotated[
        int, typer.Option("--workers", help="threads a session would use (default: every core)")
    ] = 0,
    output_format: FormatOption = "table",
) -> None:
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


ContractArgument = Annotated[Path, typer.Argument(help="a contract (TOML)", metavar="FILE")]


@contract_app.command("hash")
def contract_hash(file: ContractArgument) -> None:
    """Print the contract's SHA-256 (both parties must see the same)."""
    from cleanroom.privacy.calibration import load_contract

    print(load_contract(file).sha256)


@contract_app.command("check")
def contract_check(file: ContractArgument, output_format: FormatOption = "table") -> None:
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


@crm_app.command("check")
def crm_check(
    config: ConfigOption,
    output_format: FormatOption = "table",
) -> None:
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


@certs_app.command("init")
def certs_init(
    directory: Annotated[
        Path, typer.Argument(help="where to write NAME.crt and NAME.key", metavar="DIR")
    ],
    name: Annotated[str, typer.Option("--name", help="party name, e.g. acme", metavar="NAME")],
    host: Annotated[
        str | None,
        typer.Option("--host", help="DNS name or IP the server is reached at", metavar="HOST"),
    ] = None,
) -> None:
    """Write NAME.crt and NAME.key and print the fingerprint to put in the contract.

    \b
    Example:
      cleanroom certs init certs --name acme --host brand.example.com
    """
    from cleanroom.identity import init_certificate

    cert, key, fingerprint = init_certificate(directory, name, host)
    output_console(stderr=True).print(f"wrote {cert} and {key} (keep the key private)")
    print(fingerprint)


@report_app.command("show")
def report_show(file: ReportArgument, output_format: FormatOption = "table") -> None:
    """Print a report: overlap, then the attribute index table sorted by index."""
    from cleanroom.report.document import Report
    from cleanroom.report.render import print_report

    report = Report.load(file)
    if check_format(output_format) == "json":
        print_json(report.to_dict())
    else:
        print_report(report.to_dict(), output_console())


@report_app.command("plot")
def report_plot(
    file: ReportArgument,
    out: Annotated[Path, typer.Option("--out", help="PNG to write", metavar="FILE")] = Path(
        "lift.png"
    ),
    top: Annotated[
        int,
        typer.Option(
            "--top",
            help="per segment, draw only the N highest and N lowest indices (0: every cell)",
            metavar="N",
        ),
    ] = 6,
) -> None:
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
def report_model(
    file: ReportArgument,
    segment: Annotated[
        str | None,
        typer.Option("--segment", help="segment to model (default: all pooled)", metavar="NAME"),
    ] = None,
    noise_multiple: NoiseMultipleOption = 1.0,
    smoothing: SmoothingOption = None,
    output_format: FormatOption = "json",
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
def report_export(
    state: StateOption,
    session: Annotated[
        str,
        typer.Option("--session", help="session id (default: the latest)", metavar="ID"),
    ] = "",
    out: Annotated[
        Path, typer.Option("--out", help="where to write the report JSON", metavar="FILE")
    ] = Path("report.json"),
) -> None:
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
def report_verify(
    file: ReportArgument,
    brand_cert: Annotated[
        Path,
        typer.Option("--brand-cert", help="the brand's pinned certificate", metavar="FILE"),
    ],
    partner_cert: Annotated[
        Path,
        typer.Option("--partner-cert", help="the partner's pinned certificate", metavar="FILE"),
    ],
) -> None:
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


@audit_app.command("verify")
def audit_verify(
    state: StateOption,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="an audit head hash recorded earlier: fail if the chain no longer contains it",
            metavar="HASH",
        ),
    ] = None,
) -> None:
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
