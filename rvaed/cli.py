"""The `rvaed` command: one subcommand per module in rvaed/commands/.

``-v`` is accepted before and after the subcommand (``rvaed -v run`` and ``rvaed run -v``
count together). Command modules keep their heavy imports (torch, onnxruntime, rtmidi) inside
``run`` so that ``rvaed --help`` is instant and the performing daemon never pulls in the
training side.
"""

import argparse
import importlib
import logging
import sys

from rvaed import __version__
from rvaed.core.errors import RvaedError

DESCRIPTION = ("rvaed plays drum grooves learned from your own MIDI files, live, in time with "
               "Ableton Link, steered by an XY pad, knobs or a phone over OSC. Start the daemon "
               "with `rvaed run`; `rvaed COMMAND --help` tells more about each command.")
VERBOSE_HELP = "more log output: the detail behind every line (debug level)"

COMMANDS: list[str] = [
    "run",
    "bench",
    "inspect",
    "ports",
    "train", "generate", "map",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvaed", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"rvaed {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do (rvaed COMMAND --help for more)")
    for name in COMMANDS:
        module = importlib.import_module(f"rvaed.commands.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        add_verbose(sub)
        sub.set_defaults(run=module.run)
    return parser


def add_verbose(parser: argparse.ArgumentParser, default: object = 0) -> None:
    """``-v`` after a subcommand (counted into ``verbose_after``), and after a subcommand's
    own subcommand (``rvaed bench decode -v``), where it keeps a -v given before."""
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        dest="verbose_after", help=VERBOSE_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_verbose(sub, argparse.SUPPRESS)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with ``verbose`` counting -v on both sides of the subcommand."""
    args = build_parser().parse_args(argv)
    args.verbose += args.verbose_after
    del args.verbose_after
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args) or 0
    except RvaedError as exc:
        print(f"rvaed {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
