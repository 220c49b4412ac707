"""Command-line arguments that several subcommands take, parsed one way everywhere."""

import argparse


def add_channel(parser: argparse.ArgumentParser) -> None:
    """``--channel N|all``: the MIDI channel that holds the drums (None in args for all)."""
    parser.add_argument("--channel", type=channel_argument, default=10, metavar="N|all",
                        help="MIDI channel with the drums, 1-16, or 'all' (default 10)")


def channel_argument(text: str) -> int | None:
    if text.lower() == "all":
        return None
    if text.isdigit() and 1 <= int(text) <= 16:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 1-16 or 'all', got {text!r}")
