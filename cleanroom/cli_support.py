"""What both command-line tools share: exit codes, one-line errors, progress, output.

Imported by ``--help`` and ``--version``, so it imports nothing heavy: rich is imported
where a command first prints, and numpy, pandas, pyarrow and gRPC only by the commands
that need them (docs/performance.md has the start-up figures).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.decorators import FC

from cleanroom.errors import CleanroomError, InputError

if TYPE_CHECKING:
    from rich.console import Console

# Plain click help: flags show as flags, defaults and [required] are shown, and `--help`
# imports nothing but click and the standard library.
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
    # Piped help is not cut to 80 columns (a terminal's own width still applies).
    "terminal_width": None if sys.stdout.isatty() else 100,
    "show_default": True,
}
#: Width of output written to a pipe or file: wide enough that no table is wrapped.
UNWRAPPED_WIDTH = 10_000
STOP_SIGNAL_POLL = 0.5  # seconds between checks for SIGTERM (wait_for_stop_signal)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cleanroom")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown (not installed)"


def _print_version(context: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not context.resilient_parsing:
        print(f"cleanroom {package_version()}")
        context.exit()


class _Group(click.Group):
    """Commands listed in the order they are defined (the order a user needs them), not
    alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class _Program(_Group):
    """A command line's top group. A Ctrl-C inside a command leaves it as one line: click
    would turn it into a silent ``Abort``; an :class:`cleanroom.errors.Interrupted` carries
    what became of the session and of the budget."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as interrupt:
            raise _Interruption(interrupt) from None


def program(name: str, docstring: str) -> click.Group:
    """A command line's top group: help when run without a command, and ``--version``."""
    group = _Program(
        name=name, help=docstring, no_args_is_help=True, context_settings=CONTEXT_SETTINGS
    )
    click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Print the installed cleanroom version and exit.",
    )(group)
    return group


def command_group(parent: click.Group, name: str, help_text: str) -> click.Group:
    group = _Group(
        name=name, help=help_text, no_args_is_help=True, context_settings=CONTEXT_SETTINGS
    )
    parent.add_command(group)
    return group


def file_option(*names: str, help_text: str, **settings: Any) -> Callable[[FC], FC]:
    """An option naming a file (a :class:`pathlib.Path`; nothing is checked before the
    command reads it, so its errors name the file in cleanroom's own words)."""
    return click.option(
        *names, type=click.Path(path_type=Path), metavar="FILE", help=help_text, **settings
    )


# The lookalike model's options: the brand (`report model`) and the partner (`lookalike`)
# must derive the same model, so both commands take them with one definition.
noise_multiple_option = click.option(
    "--noise-multiple",
    type=float,
    default=1.0,
    metavar="K",
    help="use an attribute only if its count is at least this many 99.9% noise half-widths",
)
smoothing_option = click.option(
    "--smoothing",
    type=float,
    default=None,
    metavar="M",
    help="prior strength in pseudo-users (default: the count's noise half-width)",
)
workers_option = click.option(
    "--workers", type=int, default=0, metavar="N", help="threads for the crypto (0: every core)"
)

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


def run_app(command: click.Command, argv: list[str] | None = None) -> NoReturn:
    """Run a command line; every cleanroom error becomes one line on stderr and its exit code."""
    quiet_grpc_log()
    one_blas_thread()
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
    except (click.Abort, KeyboardInterrupt):  # a Ctrl-C while the arguments were parsed
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as error:  # unknown option, missing argument, bad value
        error.show()
        sys.exit(error.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


def quiet_grpc_log() -> None:
    """gRPC's C core logs failed handshakes and binds on stderr; the CLI reports each failure
    itself in one line. GRPC_VERBOSITY=ERROR (or DEBUG) in the environment shows gRPC's log.
    Read once, when grpc is first imported: the command lines call this before that, and
    the library, which must not change its host's environment, never does."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def one_blas_thread() -> None:
    """numpy's OpenBLAS starts a thread per core when numpy is imported, and each spins
    before it sleeps: more CPU than the rest of numpy's import, for linear algebra no
    command does. OPENBLAS_NUM_THREADS in the environment still wins; the library, which
    must not change its host's environment, never calls this."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def wait_for_stop_signal(ready: Callable[[], None]) -> str:
    """Call ``ready`` once SIGTERM is handled, then wait for SIGTERM or Ctrl-C; returns
    which. Python runs a signal handler in this thread, between any two bytecodes, so the
    handler only notes the signal: one that set an Event this thread was waiting on took
    the lock this thread could already hold, and waited on itself for ever. Polled, since
    a signal the kernel hands to another thread (one of gRPC's) does not wake this one."""
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: received.append(signum))
    try:
        ready()
        while not received:
            time.sleep(STOP_SIGNAL_POLL)
    except KeyboardInterrupt:
        return "Ctrl-C"
    return "SIGTERM"


class _Interruption(Exception):
    """Carries a Ctrl-C's message (empty for a bare Ctrl-C) out of click."""


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


def check_listen(value: object, what: str) -> str:
    """HOST:PORT for a listening socket (port 0: any free port)."""
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not host or not port.isdigit() or int(port) > 65535:
        raise InputError(f"{what}: expected HOST:PORT, e.g. 127.0.0.1:9464, not {value!r}")
    return str(value)


LOG_FORMATS = ("text", "json")


def check_log_format(value: object, what: str) -> str:
    if value not in LOG_FORMATS:
        raise InputError(f"{what}: must be one of {', '.join(LOG_FORMATS)}, not {value!r}")
    return str(value)


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
