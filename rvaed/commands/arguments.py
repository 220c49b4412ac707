"""Command-line arguments that several subcommands take, parsed one way everywhere."""

import argparse

from rvaed.core.errors import RvaedError
from rvaed.core.pattern import Grid, parse_meter

MAX_LOOP_BARS = 8  # the longest loop a model learns


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


def add_grid(parser: argparse.ArgumentParser) -> None:
    """``--meter``, ``--steps-per-beat``, ``--bars``: the grid the files are read on."""
    parser.add_argument("--meter", default="auto", metavar="N/D|auto",
                        help="the bars to read, e.g. 4/4, 3/4, 6/8, 7/8 (2/2 reads as 4/4); "
                        "'auto' (the default) takes the meter 90%% of the files' bars are in")
    parser.add_argument("--steps-per-beat", type=int, default=4, metavar="N",
                        help="steps per quarter note: 4 for 16ths (the default), 3 for "
                        "eighth-note triplets, 6 for 16th triplets, 12 for both")
    parser.add_argument("--bars", type=int, default=2, metavar="N",
                        help=f"bars per loop, 1-{MAX_LOOP_BARS} (default 2)")


def grid_of(args: argparse.Namespace) -> tuple[Grid, bool]:
    """The grid the arguments ask for, and whether its meter is to be read from the files;
    RvaedError naming the option that cannot work."""
    if not 1 <= args.bars <= MAX_LOOP_BARS:
        raise RvaedError(f"--bars: expected 1-{MAX_LOOP_BARS}, got {args.bars}")
    if not 1 <= args.steps_per_beat <= 48:
        raise RvaedError(f"--steps-per-beat: expected 1-48, got {args.steps_per_beat}")
    auto = args.meter.strip().lower() == "auto"
    try:
        numerator, denominator = (4, 4) if auto else parse_meter(args.meter)
        grid = Grid(args.steps_per_beat, numerator, denominator, args.bars)
    except ValueError as exc:
        raise RvaedError(f"--meter: {exc}") from None
    return grid, auto
