"""Show what rvaed reads from MIDI files: the windows each file gives, hits per voice, and
everything left out (refused files and why, unmapped notes, bars in other meters, windows
with too few onsets). Exits 1 when nothing usable was found, saying what was."""

import json
import sys
from collections.abc import Sequence

from rvaed.commands.arguments import add_channel, add_grid, grid_of
from rvaed.core.kit import DEFAULT_KIT

HELP = "show what rvaed reads from MIDI files: windows, hits per voice, refused files"


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILES|DIRS",
                        help="MIDI files and folders (searched recursively for .mid/.midi)")
    parser.add_argument("--kit", default=DEFAULT_KIT,
                        help=f"kit name or file: which notes feed which voice "
                             f"(default {DEFAULT_KIT}; gmd for the Groove MIDI Dataset)")
    add_channel(parser)
    add_grid(parser)
    parser.add_argument("--min-onsets", type=int, default=4, metavar="N",
                        help="drop windows with fewer onsets than this (default 4)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from rvaed.core.kit import load_kit
    from rvaed.training.dataset import explain_empty, ingest
    from rvaed.training.options import IngestOptions

    grid, auto = grid_of(args)
    options = IngestOptions(load_kit(args.kit), grid, channel=args.channel,
                            min_onsets=args.min_onsets, meter_from_data=auto)
    report = ingest(args.paths, options).report
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(render(report))
    if not report.windows:
        print(f"rvaed inspect: {explain_empty(report)}", file=sys.stderr)
        return 1
    return 0


def render(report) -> str:
    """The report as plain-text tables: per file, then refused files, then totals."""
    rows = [(f.path, str(f.windows), str(f.bars), _meters(f.skipped_bars),
             str(f.dropped_windows), _notes(f.unmapped)) for f in report.files]
    lines = _table(("file", "windows", "bars", "skipped bars", "dropped", "unmapped notes"),
                   rows)
    if report.refused:
        lines += ["", f"refused ({len(report.refused)}):"]
        lines += [f"  {path}: {reason}" for path, reason in report.refused]
    auto = report.options.channel == "auto"
    noted = [f"  {f.path}: {note}" for f in report.files
             for note in [*f.notes, *([f.channels] if auto and not
                                       f.channels.startswith("channel 10 ") else [])]]
    if noted:
        lines += ["", "read with a word (repairs, loops, drums not on channel 10):", *noted]
    lines.append("")
    lines += _table(("voice", "hits"),
                    [(name, str(n)) for name, n in report.hits_per_voice.items()],
                    text_last=False)
    options = report.options
    grid = options.grid
    others = report.other_channels
    lines += [
        "",
        f"kit {options.kit.name}, {options.channel_name}",
        *([report.meter_note] if report.meter_note else []),
        f"files: {len(report.files)} read, {len(report.refused)} refused",
        f"unmapped notes: {_notes(report.unmapped) or 'none'}",
        f"notes on other channels: {_notes(others, 'channel ') or 'none'}",
        f"bars per meter: {_meters(report.bars_per_meter) or 'none'}",
        f"skipped bars (not {grid.meter}): {_meters(report.skipped_bars) or 'none'}",
        f"dropped windows (fewer than {options.min_onsets} onsets): {report.dropped_windows}",
        f"windows ({grid.bars}-bar {grid.meter}, {grid.steps} steps): "
        f"{report.windows}",
    ]
    return "\n".join(lines)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]],
           text_last: bool = True) -> list[str]:
    """First column left-aligned, numbers right-aligned, a last text column left free."""
    numbers = len(header) - 1 - text_last
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(numbers + 1)]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [row[i].rjust(widths[i]) for i in range(1, numbers + 1)]
        return "  ".join(cells + list(row[numbers + 1:])).rstrip()

    return [line(header), *map(line, rows)]


def _notes(counts, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{key} x {n}" for key, n in sorted(counts.items()))


def _meters(counts) -> str:
    total = sum(counts.values())
    if not total:
        return ""
    return f"{total} ({_notes(counts)})"
