"""Command-line arguments that several subcommands take, parsed one way everywhere."""

import argparse


def add_channel(parser: argparse.ArgumentParser) -> None:
    """``--channel N|auto|all``: the MIDI channel that holds the drums (None for all)."""
    parser.add_argument("--channel", type=channel_argument, default="auto", metavar="N|auto|all",
                        help="MIDI channel with the drums, 1-16; 'auto' finds them in each file "
                        "(channel 10, a track named drums, or drum-like notes; the default); "
                        "'all' reads every channel")


def channel_argument(text: str) -> int | str | None:
    if text.lower() == "all":
        return None
    if text.lower() == "auto":
        return "auto"
    if text.isdigit() and 1 <= int(text) <= 16:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 1-16, 'auto' or 'all', got {text!r}")
