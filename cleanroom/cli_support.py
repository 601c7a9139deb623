"""What both command-line tools share: exit codes, one-line errors, progress, output.

Imported by ``--help`` and ``--version``, so it imports nothing heavy: rich is imported
where a command first prints, and numpy, pandas, pyarrow and gRPC only by the commands
that need them (docs/performance.md has the start-up figures).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from cleanroom.errors import CleanroomError, InputError

if TYPE_CHECKING:
    from rich.console import Console

# Plain help (no rich panels): flags show as flags, and `--help` needs no rich import.
TYPER_SETTINGS: dict[str, Any] = {
    "no_args_is_help": True,
    "add_completion": False,
    "rich_markup_mode": None,
    "context_settings": {
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        # Piped help is not cut to 80 columns (a terminal's own width still applies).
        "terminal_width": None if sys.stdout.isatty() else 100,
    },
}
#: Width of output written to a pipe or file: wide enough that no table is wrapped.
UNWRAPPED_WIDTH = 10_000


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cleanroom")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(f"cleanroom {package_version()}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the installed cleanroom version and exit.",
    ),
]

# The lookalike model's options: the brand (`report model`) and the partner (`lookalike`)
# must derive the same model, so both commands take them with one definition.
NoiseMultipleOption = Annotated[
    float,
    typer.Option(
        "--noise-multiple",
        help="use an attribute only if its count is at least this many 99.9% noise half-widths",
        metavar="K",
    ),
]
SmoothingOption = Annotated[
    float | None,
    typer.Option(
        "--smoothing",
        help="prior strength in pseudo-users (default: the count's noise half-width)",
        metavar="M",
    ),
]

FORMATS = ("table", "json")


def error_console() -> Console:
    return output_console(stderr=True)


def output_console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A console for results and messages: the terminal's width at a terminal, unbounded
    when piped or redirected, so a file or a pager gets whole lines and whole tables."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, quiet=quiet)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, quiet=quiet, width=UNWRAPPED_WIDTH)
    return console


def run_app(app: typer.Typer, argv: list[str] | None = None) -> NoReturn:
    """Run a typer app; every cleanroom error becomes one line on stderr and its exit code."""
    quiet_grpc_log()
    command = typer.main.get_command(app)
    _help_defaults_to_false(command)
    try:
        result = command.main(args=argv, standalone_mode=False)
    except CleanroomError as error:
        from rich.markup import escape

        error_console().print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(error.exit_code)
    except _Interruption as interruption:
        message = str(interruption.args[0])
        print(f"interrupted {message}" if message else "interrupted", file=sys.stderr)
        sys.exit(130)
    except (typer.Abort, KeyboardInterrupt):
        result = 130
    except Exception as error:
        # Usage errors (unknown option, missing argument) come from click, which recent typer
        # releases vendor: recognise them by what they offer rather than by their class.
        show, exit_code = getattr(error, "show", None), getattr(error, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise
    if result == 130:  # typer turns a Ctrl-C outside `reporting_interrupts` into this code
        print("interrupted", file=sys.stderr)
    sys.exit(result if isinstance(result, int) else 0)


def quiet_grpc_log() -> None:
    """gRPC's C core logs failed handshakes and binds on stderr; the CLI reports each failure
    itself in one line. GRPC_VERBOSITY=ERROR (or DEBUG) in the environment shows gRPC's log.
    Read once, when grpc is first imported: the command lines call this before that, and
    the library, which must not change its host's environment, never does."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


class _Interruption(Exception):
    """Carries a Ctrl-C's message past typer, which turns any KeyboardInterrupt into a
    silent exit 130."""


@contextmanager
def reporting_interrupts() -> Iterator[None]:
    """Ctrl-C inside exits 130 with one line, ``interrupted`` and, for a session, what became
    of it and of the budget (the message of :class:`cleanroom.errors.Interrupted`)."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        raise _Interruption(interrupt) from None


def _help_defaults_to_false(command: Any) -> None:
    """Give every command's ``--help`` the default False rather than None: typer coerces a
    None through pydantic, which would cost `cleanroom-client run --help` a third of a
    second of imports for a flag that was not given."""
    original = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _help_defaults_to_false(sub)


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


def check_workers(value: object, what: str = "--workers") -> int | None:
    """Threads for the crypto: 0 (or None) means every core, else that many threads."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{what}: must be 0 (every core) or a number of threads, not {value!r}")
    return value or None


ENGINES = ("local", "spark")


def check_engine(
    engine: str,
    spark_scratch: str | None,
    engine_name: str = "--engine",
    scratch_name: str = "--spark-scratch",
) -> str:
    """The engine's name, and a scratch location only where Spark will use it (the names
    are how the caller knows the two settings: flags, or the library's parameters)."""
    if engine not in ENGINES:
        raise InputError(f"{engine_name} must be one of {', '.join(ENGINES)}, not {engine!r}")
    if spark_scratch is not None and engine != "spark":
        raise InputError(f"{scratch_name} only applies with {engine_name} spark")
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
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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
