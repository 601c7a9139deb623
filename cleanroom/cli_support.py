"""What both command-line tools share: exit codes, one-line errors, progress, output."""

from __future__ import annotations

import os

# gRPC's C core logs failed handshakes and binds on stderr; the CLI reports each failure
# itself in one line. GRPC_VERBOSITY=ERROR (or DEBUG) in the environment shows gRPC's log.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cleanroom.errors import CleanroomError, InputError

# The lookalike model's options: the brand (`report model`) and the partner (`lookalike`)
# must derive the same model, so both commands take them with one definition.
NoiseMultipleOption = Annotated[
    float,
    typer.Option(
        "--noise-multiple",
        help="use an attribute only if its count is at least this many 99.9% noise half-widths",
    ),
]
SmoothingOption = Annotated[
    float | None,
    typer.Option(
        "--smoothing",
        help="prior strength in pseudo-users (default: the count's noise half-width)",
    ),
]

FORMATS = ("table", "json")


def error_console() -> Console:
    return Console(stderr=True, highlight=False)


def run_app(app: typer.Typer, argv: list[str] | None = None) -> NoReturn:
    """Run a typer app; every cleanroom error becomes one line on stderr and its exit code."""
    try:
        result = app(args=argv, standalone_mode=False)
    except CleanroomError as error:
        error_console().print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        error_console().print("interrupted")
        sys.exit(130)
    except Exception as error:
        # Usage errors (unknown option, missing argument) come from click, which recent typer
        # releases vendor: recognise them by what they offer rather than by their class.
        if hasattr(error, "show") and isinstance(getattr(error, "exit_code", None), int):
            error.show()
            sys.exit(error.exit_code)
        raise
    sys.exit(result if isinstance(result, int) else 0)


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def check_seconds(value: object, what: str) -> float:
    """A timeout: a finite number of seconds above 0 (a negative one would fire at once)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InputError(f"{what}: must be a number of seconds greater than 0, not {value!r}")
    return float(value)


def check_workers(value: object) -> int | None:
    """``--workers``: 0 (or None) means every core, else that many threads."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"--workers: must be 0 (every core) or a number of threads, not {value!r}"
        )
    return value or None


ENGINES = ("local", "spark")


def check_engine(engine: str, spark_scratch: str | None) -> str:
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if spark_scratch is not None and engine != "spark":
        raise InputError("--spark-scratch only applies with --engine spark")
    return engine


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: no half-written report on any failure."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"cannot write {path}: directory {path.parent} does not exist")
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    temporary.replace(path)


class Phases:
    """Progress bars for the phases of a session; silent with --quiet or off a terminal."""

    def __init__(self, quiet: bool) -> None:
        console = error_console()
        self._progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet or not console.is_terminal,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    @contextmanager
    def running(self) -> Iterator[Phases]:
        with self._progress:
            yield self

    def advance(self, phase: str, amount: int, total: int | None = None) -> None:
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(phase, total=total)
        self._progress.update(self._tasks[phase], advance=amount, total=total)

    def done(self, phase: str) -> None:
        if phase in self._tasks:
            task = self._tasks[phase]
            total = self._progress.tasks[task].total or self._progress.tasks[task].completed
            self._progress.update(task, completed=total, total=total)
