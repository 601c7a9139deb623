"""``cleanroom-client``: the partner's command line (run a session, export a lookalike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from cleanroom.cli_support import (
    Phases,
    check_format,
    check_seconds,
    check_workers,
    file_option,
    noise_multiple_option,
    output_console,
    print_json,
    program,
    run_app,
    smoothing_option,
    workers_option,
    write_atomically,
)
from cleanroom.errors import InputError, Interrupted, StorageError

if TYPE_CHECKING:
    from cleanroom.transport.partner import PartnerClient, SettingNames

# Kept in step with cleanroom.transport.partner (a test checks); importing it here would load
# gRPC, pandas and pyarrow for every --help.
DEFAULT_STATE = "partner-state.db"
DEFAULT_CONNECT_TIMEOUT = 15.0


def flag_names() -> SettingNames:
    """How this command line's errors name the session's settings: by their flags."""
    from cleanroom.transport.partner import SettingNames

    return SettingNames(
        certificate="--tls-cert",
        private_key="--tls-key",
        server_certificate="--server-cert",
        insecure="--insecure",
        idle_timeout="--timeout",
        connect_timeout="--connect-timeout",
        workers="--workers",
        engine="--engine",
        spark_scratch="--spark-scratch",
    )


def partner_client(server: str, **settings: Any) -> PartnerClient:
    """The session runner the library's ``Client`` wraps, its errors naming our flags."""
    from cleanroom.transport.partner import PartnerClient

    return PartnerClient(server, names=flag_names(), **settings)


# Options that `run` and `recover` share: the same files, described once.
contract_option = file_option(
    "--contract", required=True, help_text="the contract, byte-identical to the brand's copy"
)
tls_cert_option = file_option(
    "--tls-cert",
    help_text="your certificate, the one the contract pins for the partner "
    "[required unless --insecure]",
)
tls_key_option = file_option(
    "--tls-key", help_text="your private key (unencrypted PEM) [required unless --insecure]"
)
server_cert_option = file_option(
    "--server-cert",
    help_text="the brand's certificate, the one the contract pins for the brand "
    "[required unless --insecure]",
)
state_option = file_option(
    "--state",
    default=DEFAULT_STATE,
    help_text="partner state database: sessions, budget, reports, audit",
)
delimiter_option = click.option(
    "--delimiter",
    metavar="CHAR",
    help="the CSV file's delimiter: one character, or tab (default: detected from the file)",
)
encoding_option = click.option(
    "--encoding",
    default="utf-8",
    metavar="NAME",
    help="the CSV file's text encoding, e.g. latin-1 or cp1252",
)

app = program(
    "cleanroom-client",
    """The partner side of a cleanroom session: run a session against a brand's server,
    then export a lookalike audience from its report.

    \b
    Example:
      cleanroom-client run --server brand.example.com:50051 --contract contract.toml \\
        --audience audience.csv --tls-cert newsco.crt --tls-key newsco.key \\
        --server-cert acme.crt
      cleanroom-client lookalike --report report.json --audience audience.csv \\
        --size 10000 --out lookalike.csv
    """,
)


def parse_columns(values: tuple[str, ...]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for value in values:
        name, sep, column = value.partition("=")
        if not sep or not name or not column:
            raise InputError(
                f"--column {value!r}: expected KIND=COLUMN, e.g. --column email=EMAIL_ADDRESS"
            )
        columns[name] = column
    return columns


@app.command()
@click.option("--server", required=True, metavar="HOST:PORT", help="the brand's server, HOST:PORT")
@contract_option
@file_option(
    "--audience",
    required=True,
    help_text="CSV or Parquet list (or table:NAME with --engine spark)",
)
@file_option(
    "--out", default="report.json", help_text="where to write the report with both signatures"
)
@click.option(
    "--column",
    multiple=True,
    metavar="KIND=COLUMN",
    help="KIND=COLUMN: read a key kind or contract attribute from another column (repeatable)",
)
@delimiter_option
@encoding_option
@tls_cert_option
@tls_key_option
@server_cert_option
@state_option
@click.option("--insecure", is_flag=True, help="plain TCP without TLS; loopback servers only")
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    metavar="SECONDS",
    help="seconds the session may go without a message (exit 7)",
)
@click.option(
    "--connect-timeout",
    type=float,
    default=DEFAULT_CONNECT_TIMEOUT,
    metavar="SECONDS",
    help="seconds the server has to answer at the start",
)
@workers_option
@click.option(
    "--engine",
    default="local",
    metavar="local|spark",
    help="local, or spark: the audience's per-record work on Spark",
)
@click.option("--spark-scratch", metavar="URI", help="where Spark writes the session's elements")
@click.option(
    "--format",
    "output_format",
    default="table",
    metavar="table|json",
    help="table, or json: the report file's JSON plus this side's input_quality",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bars; with table, print nothing")
def run(
    server: str,
    contract: Path,
    audience: Path,
    out: Path,
    column: tuple[str, ...],
    delimiter: str | None,
    encoding: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    server_cert: Path | None,
    state: Path,
    insecure: bool,
    timeout: float,
    connect_timeout: float,
    workers: int,
    engine: str,
    spark_scratch: str | None,
    output_format: str,
    quiet: bool,
) -> None:
    """Match the audience against the brand's CRM; write and print the released report.

    The audience is read, checked and hashed here and never uploaded. Ctrl-C aborts the
    session and says whether any privacy budget was spent.

    \b
    Example:
      cleanroom-client run --server brand.example.com:50051 --contract contract.toml \\
        --audience audience.csv --column email=EMAIL_ADDRESS \\
        --tls-cert newsco.crt --tls-key newsco.key --server-cert acme.crt
    """
    check_format(output_format)
    check_seconds(timeout, "--timeout")
    check_seconds(connect_timeout, "--connect-timeout")
    check_workers(workers)
    if not out.parent.exists():
        raise InputError(f"cannot write {out}: directory {out.parent} does not exist")
    # a bad flag above is told before the session machinery's half-second import
    from cleanroom.lists.spark import SparkPartnerList
    from cleanroom.lists.tables import csv_dialect
    from cleanroom.transport.partner import UnsavedReportError

    dialect = csv_dialect(delimiter, encoding, style="cli")
    client = partner_client(
        server,
        contract=contract,
        certificate=tls_cert,
        private_key=tls_key,
        server_certificate=server_cert,
        state=state,
        insecure=insecure,
        idle_timeout=timeout,
        connect_timeout=connect_timeout,
        workers=workers,
        engine=engine,
        spark_scratch=spark_scratch,
    )
    phases = Phases(quiet)
    with phases.running():
        phases.advance("reading audience", 0, total=1)
        try:
            prepared = client.prepare(audience, parse_columns(column), dialect=dialect)
        except KeyboardInterrupt:
            raise Interrupted(
                "while reading the audience: no session was opened and no privacy budget was spent"
            ) from None
        phases.done("reading audience")
        try:
            report = client.run(prepared, progress=phases.advance)
        except UnsavedReportError as error:
            write_atomically(out, error.report.to_json())
            raise StorageError(
                f"{error}. The signed report was written to {out}; once the database is "
                f"writable, record it with: cleanroom-client recover --report {out} "
                f"--contract {contract} --state {state}"
                + (
                    ""
                    if insecure
                    else f" --tls-cert {tls_cert} --tls-key {tls_key} --server-cert {server_cert}"
                )
                + (" --insecure" if insecure else "")
            ) from None
        finally:
            if isinstance(prepared, SparkPartnerList):  # its cached frame and scratch directory
                prepared.close()
    write_atomically(out, report.to_json())
    if output_format == "json":
        print_json({**json.loads(report.to_json()), "input_quality": prepared.quality})
    elif not quiet:
        from cleanroom.report.render import print_report, quality_table

        console = output_console()
        print_report(report.to_dict(), console)
        console.print(
            quality_table(
                prepared.quality,
                title=f"Input quality · {audience} (stays on this machine)",
                records=prepared.size,
            )
        )
        console.print(f"report written to {out}")


@app.command()
@file_option(
    "--report", required=True, help_text="the report file (run's --out, or the brand's export)"
)
@contract_option
@tls_cert_option
@tls_key_option
@server_cert_option
@state_option
@click.option("--insecure", is_flag=True, help="no signatures (a session run with --insecure)")
def recover(
    report: Path,
    contract: Path,
    tls_cert: Path | None,
    tls_key: Path | None,
    server_cert: Path | None,
    state: Path,
    insecure: bool,
) -> None:
    """Record a released report the state database lacks (after a storage error, or the
    brand's `cleanroom report export` of a session whose client died): checks the brand's
    signature, adds yours, charges the budget if it was not yet."""
    from cleanroom.report.document import Report

    if not state.exists():
        raise InputError(f"state database not found: {state}")
    client = partner_client(
        "127.0.0.1:0",  # no connection is made: only the contract, keys and state are used
        contract=contract,
        certificate=tls_cert,
        private_key=tls_key,
        server_certificate=server_cert,
        state=state,
        insecure=insecure,
    )
    recorded = client.recover(Report.load(report), source=str(report))
    write_atomically(report, recorded.to_json())
    output_console(stderr=True).print(
        f"recorded the report of session {recorded.session_id} in {state}; {report} now "
        f"carries both signatures"
    )


@app.command()
@file_option("--report", required=True, help_text="a released report (cleanroom-client run --out)")
@file_option(
    "--audience",
    required=True,
    help_text="CSV or Parquet: the id column and one boolean column per attribute",
)
@click.option(
    "--size", type=int, required=True, metavar="N", help="how many partner users to export"
)
@file_option("--out", required=True, help_text="CSV or Parquet, by extension")
@click.option("--segment", metavar="NAME", help="model one segment (default: pooled)")
@click.option(
    "--id-column", default="user_id", metavar="COLUMN", help="the audience's user id column"
)
@click.option(
    "--column", multiple=True, metavar="ATTRIBUTE=COLUMN", help="ATTRIBUTE=COLUMN (repeatable)"
)
@noise_multiple_option
@smoothing_option
@delimiter_option
@encoding_option
@click.option(
    "--format", "output_format", default="table", metavar="table|json", help="table or json"
)
def lookalike(
    report: Path,
    audience: Path,
    size: int,
    out: Path,
    segment: str | None,
    id_column: str,
    column: tuple[str, ...],
    noise_multiple: float,
    smoothing: float | None,
    delimiter: str | None,
    encoding: str,
    output_format: str,
) -> None:
    """Score the whole audience locally with the report's model and export the top N ids.

    Nothing is sent anywhere.

    \b
    Example:
      cleanroom-client lookalike --report report.json --audience audience.csv \\
        --segment loyal --size 10000 --out lookalike.csv
    """
    import numpy as np
    import pandas as pd

    from cleanroom.lists.tables import boolean_column, csv_dialect, load_table, write_table
    from cleanroom.report.document import Report
    from cleanroom.report.lookalike import LookalikeModel, audience_ids, select_top

    check_format(output_format)
    dialect = csv_dialect(delimiter, encoding, style="cli")
    released = Report.load(report).to_dict()
    model = LookalikeModel.from_report(
        released, segment, smoothing=smoothing, noise_multiple=noise_multiple
    )
    mapping = parse_columns(column)
    unknown = sorted(set(mapping) - set(model.attributes))
    if unknown:
        raise InputError(
            f"--column {unknown[0]}=...: not an attribute of the model ({', '.join(model.attributes)})"
        )
    overlap = (
        released["overlap"]["by_segment"].get(segment) if segment else released["overlap"]["total"]
    )
    if overlap is None:
        raise InputError(
            f"{report}: the overlap of {'segment ' + segment if segment else 'the session'} is suppressed"
        )
    attribute_columns = [mapping.get(a, a) for a in model.attributes]
    table = load_table(
        audience,
        required=[id_column, *attribute_columns],
        role="partner audience",
        dialect=dialect,
    )
    ids = audience_ids(table, id_column, str(audience))
    features = np.zeros((table.num_rows, len(attribute_columns)), dtype=bool)
    for j, attribute_column in enumerate(attribute_columns):
        features[:, j] = boolean_column(table, attribute_column, str(audience))
    scores = model.score(features)
    chosen, chosen_scores = select_top(ids, scores, size)
    expected = model.expected_index(chosen_scores, scores, overlap / released["partner_size"])
    write_table(pd.DataFrame({id_column: chosen, "score": chosen_scores}), out)
    warnings = output_console(stderr=True)
    if size > len(ids):
        warnings.print(
            f"warning: --size {size} exceeds the audience ({len(ids)} users in {audience}); "
            f"exported all {len(chosen)}"
        )
    if len(model.excluded) == len(model.attributes):
        warnings.print(
            "warning: no attribute's count stands clear of the noise, so every user scores 0 "
            "and the export is a random sample (see `cleanroom report model`)"
        )
    summary = {
        "exported": len(chosen),
        "requested": size,
        "out": str(out),
        "segment": model.segment,
        "expected_index": expected,
        "report_sha256": model.report_sha256,
        "model": model.to_dict(),
    }
    if output_format == "json":
        print_json(summary)
    else:
        used = len(model.attributes) - len(model.excluded)
        output_console().print(
            f"exported {len(chosen)} partner ids to {out}; expected index of this audience "
            f"(naive Bayes, calibrated on the whole audience): {expected:.0f}\n"
            f"model: segment {model.segment}, {used} of {len(model.attributes)} attributes used "
            f"(noise multiple {model.noise_multiple:g}, smoothing {model.smoothing:g}); "
            f"report sha256 {model.report_sha256}"
        )


def main() -> NoReturn:
    run_app(app)
