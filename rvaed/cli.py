"""The `rvaed` command: one subcommand per module in rvaed/commands/.

Command modules keep their heavy imports (torch, onnxruntime, rtmidi) inside ``run`` so that
``rvaed --help`` is instant and the performing daemon never pulls in the training side.
"""

import argparse
import importlib
import logging
import sys

from rvaed import __version__
from rvaed.core.errors import RvaedError

COMMANDS: list[str] = [
    "run",
    "bench",
    "inspect",
    "ports",
    "train", "generate", "map",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvaed", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rvaed {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"rvaed.commands.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
