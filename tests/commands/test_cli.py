"""The `rvaed` command line itself: -v on either side of the subcommand, help that speaks to
users (every option explained, no talk of modules or source folders)."""

import argparse
import re
import subprocess
import sys

import pytest

from rvaed.cli import COMMANDS, build_parser, parse

DEVELOPER_TALK = re.compile(r"module|subcommand|args\.|argparse|docstring|eager|"
                            r"rvaed[./](core|model|engine|training|control|tools|daemon|commands|"
                            r"benchmarks)")


def parsers(parser: argparse.ArgumentParser, path: str = "rvaed"):
    """Every parser of the command line with its command path, subcommands included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


@pytest.mark.parametrize(("argv", "count"), [
    (["run", "-v"], 1), (["-v", "run"], 1), (["-v", "run", "-vv"], 3),
    (["ports", "--verbose"], 1), (["bench", "decode", "-v"], 1), (["inspect", "x.mid"], 0),
])
def test_verbose_counts_before_and_after_the_command(argv, count):
    assert parse(argv).verbose == count


def test_run_dash_v_is_accepted_by_the_real_command():
    done = subprocess.run([sys.executable, "-m", "rvaed.cli", "run", "-v", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "unrecognized" not in done.stderr
    assert "-v, --verbose" in done.stdout


def test_every_command_is_listed_and_every_option_explained():
    seen = dict(parsers(build_parser()))
    assert {f"rvaed {name}" for name in COMMANDS} <= set(seen)
    for path, parser in seen.items():
        for action in parser._actions:
            assert action.help, f"{path}: {action.option_strings or action.dest} has no help"


def test_help_speaks_to_users():
    for path, parser in parsers(build_parser()):
        text = parser.format_help()
        talk = DEVELOPER_TALK.search(text)
        assert talk is None, f"`{path} --help` says {talk and talk[0]!r}:\n{text}"
