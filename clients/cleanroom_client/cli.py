"""``cleanroom-client``: the partner's command line (run a session, export a lookalike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import numpy as np
import pandas as pd
import typer
from rich.console import Console

from cleanroom.cli_support import (
    NoiseMultipleOption,
    Phases,
    SmoothingOption,
    check_format,
    check_seconds,
    check_workers,
    print_json,
    run_app,
    write_atomically,
)
from cleanroom.errors import InputError
from cleanroom.io import boolean_column, load_table, write_table
from cleanroom.stats.report import Report
from cleanroom_client.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATE, Client

app = typer.Typer(
    name="cleanroom-client",
    help="The partner side of a cleanroom session.",
    no_args_is_help=True,
    add_completion=False,
)


def parse_columns(values: list[str]) -> dict[str, str]:
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
def run(
    server: Annotated[str, typer.Option("--server", help="brand server HOST:PORT")],
    contract: Annotated[Path, typer.Option("--contract")],
    audience: Annotated[
        Path, typer.Option("--audience", help="CSV or Parquet (or table:NAME with --engine spark)")
    ],
    out: Annotated[Path, typer.Option("--out", help="where to write report.json")] = Path(
        "report.json"
    ),
    column: Annotated[list[str], typer.Option("--column", help="KIND=COLUMN (repeatable)")] = [],  # noqa: B006
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key")] = None,
    server_cert: Annotated[Path | None, typer.Option("--server-cert")] = None,
    state: Annotated[Path, typer.Option("--state", help="partner state database")] = Path(
        DEFAULT_STATE
    ),
    insecure: Annotated[bool, typer.Option("--insecure", help="plain TCP, loopback only")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds a phase may stall")] = 300.0,
    connect_timeout: Annotated[
        float,
        typer.Option("--connect-timeout", help="seconds the server has to answer at the start"),
    ] = DEFAULT_CONNECT_TIMEOUT,
    workers: Annotated[
        int, typer.Option("--workers", help="threads for the crypto (default: every core)")
    ] = 0,
    engine: Annotated[
        str,
        typer.Option("--engine", help="local, or spark: the audience's per-record work on Spark"),
    ] = "local",
    spark_scratch: Annotated[
        str | None,
        typer.Option("--spark-scratch", help="where Spark writes the session's elements"),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Match the audience against the brand's CRM; write and print the released report."""
    check_format(output_format)
    check_seconds(timeout, "--timeout")
    check_seconds(connect_timeout, "--connect-timeout")
    check_workers(workers)
    if not out.parent.exists():
        raise InputError(f"cannot write {out}: directory {out.parent} does not exist")
    client = Client(
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
        prepared = client.prepare(audience, parse_columns(column))
        phases.done("reading audience")
        report = client.run(prepared, progress=phases.advance)
    write_atomically(out, report.to_json())
    if output_format == "json":
        print_json(json.loads(report.to_json()))
    elif not quiet:
        from cleanroom.stats.render import print_report

        console = Console()
        print_report(report.to_dict(), console)
        console.print(f"input quality (stays on this machine): {prepared.quality}")
        console.print(f"report written to {out}")


@app.command()
def lookalike(
    report: Annotated[Path, typer.Option("--report")],
    audience: Annotated[Path, typer.Option("--audience")],
    size: Annotated[int, typer.Option("--size", help="how many partner users to export")],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet")],
    segment: Annotated[
        str | None, typer.Option("--segment", help="model one segment (default: pooled)")
    ] = None,
    id_column: Annotated[
        str, typer.Option("--id-column", help="the audience's user id column")
    ] = "user_id",
    column: Annotated[
        list[str], typer.Option("--column", help="ATTRIBUTE=COLUMN (repeatable)")
    ] = [],  # noqa: B006
    noise_multiple: NoiseMultipleOption = 1.0,
    smoothing: SmoothingOption = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Score the whole audience locally with the report's model and export the top N ids."""
    from cleanroom.stats.lookalike import LookalikeModel, audience_ids, select_top

    check_format(output_format)
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
    table = load_table(audience, required=[id_column, *attribute_columns], role="partner audience")
    ids = audience_ids(table, id_column, str(audience))
    features = np.zeros((table.num_rows, len(attribute_columns)), dtype=bool)
    for j, attribute_column in enumerate(attribute_columns):
        features[:, j] = boolean_column(table, attribute_column, str(audience))
    scores = model.score(features)
    chosen, chosen_scores = select_top(ids, scores, size)
    expected = model.expected_index(chosen_scores, scores, overlap / released["partner_size"])
    write_table(pd.DataFrame({id_column: chosen, "score": chosen_scores}), out)
    warnings = Console(stderr=True)
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
        Console().print(
            f"exported {len(chosen)} partner ids to {out}; expected index of this audience "
            f"(naive Bayes, calibrated on the whole audience): {expected:.0f}\n"
            f"model: segment {model.segment}, {used} of {len(model.attributes)} attributes used "
            f"(noise multiple {model.noise_multiple:g}, smoothing {model.smoothing:g}); "
            f"report sha256 {model.report_sha256}"
        )


def main() -> NoReturn:
    run_app(app)
