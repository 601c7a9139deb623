"""docs/reference/cli.md documents every command and every option that the CLIs' own
parsers define, and no option that they do not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cleanroom_client.cli import app as client_app

from cleanroom.brand.cli import app as server_app

REFERENCE = Path(__file__).parents[2] / "docs" / "reference" / "cli.md"
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def leaf_commands(name: str, command) -> Iterator[tuple[str, object]]:
    """(``cleanroom report verify``, its parsed command) for every command that runs."""
    children = getattr(command, "commands", None)
    if children is None:
        yield name, command
        return
    for child_name, child in children.items():
        yield from leaf_commands(f"{name} {child_name}", child)


def groups(name: str, command) -> Iterator[tuple[str, object]]:
    """The program and its command groups, whose own options (``--version``) apply to all."""
    children = getattr(command, "commands", None)
    if children is not None:
        yield name, command
        for child_name, child in children.items():
            yield from groups(f"{name} {child_name}", child)


def options(command) -> set[str]:
    """Every visible option name of *command*, short and long; ``--help`` is documented once
    for all commands."""
    return {
        name
        for param in command.params
        if param.param_type_name == "option" and not getattr(param, "hidden", False)
        for name in (*param.opts, *param.secondary_opts)
    }


PROGRAMS = {"cleanroom": server_app, "cleanroom-client": client_app}
COMMANDS = dict(
    command for program, parsed in PROGRAMS.items() for command in leaf_commands(program, parsed)
)
GROUPS = dict(group for program, parsed in PROGRAMS.items() for group in groups(program, parsed))


def sections() -> dict[str, str]:
    """Each ``### `cleanroom report verify FILE` `` section's text, by command name (the
    heading without its upper-case arguments)."""
    text = REFERENCE.read_text()
    found: dict[str, str] = {}
    parts = re.split(r"^### `([^`]+)`\s*$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        name = " ".join(word for word in heading.split() if not word.isupper())
        found[name] = re.split(r"^## ", body, maxsplit=1, flags=re.MULTILINE)[0]
    return found


def table_options(section: str) -> set[str]:
    """The options named in the first cell of the section's option table rows."""
    named: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            named |= set(OPTION.findall(line.split("|")[1]))
    return named


def test_the_reference_has_a_section_for_every_command_and_no_other():
    assert set(sections()) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_reference_lists_every_option_of_the_command_and_no_other(command):
    section = sections().get(command, "")
    assert options(COMMANDS[command]) - table_options(section) == set(), (
        f"docs/reference/cli.md: add these options to the table of `{command}`"
    )
    assert table_options(section) - options(COMMANDS[command]) == set(), (
        f"docs/reference/cli.md: `{command}` has no such options; remove them from its table"
    )


def test_options_of_a_program_or_group_are_in_the_reference_before_the_first_command():
    preface = REFERENCE.read_text().split("\n### ", 1)[0]
    mentioned = set(re.findall(r"`(--?[A-Za-z][\w-]*)", preface))
    for group, parsed in GROUPS.items():
        assert options(parsed) - mentioned == set(), f"docs/reference/cli.md: options of {group}"


def test_a_missing_option_is_caught():
    """The check reads the tables: without the `--anchor` row, `audit verify` fails it."""
    text = REFERENCE.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `--anchor"))
    section = sections()["cleanroom audit verify"]
    assert "--anchor" in options(COMMANDS["cleanroom audit verify"])
    assert "--anchor" not in table_options(section.replace(row, ""))
