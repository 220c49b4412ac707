"""MIDI files and folders -> training windows of shape (3, voices, steps), with provenance.

A window is ``grid.bars`` bars starting on a bar line (every ``hop_bars`` bars), all in the
grid's meter (2/2 read as 4/4; other bars are skipped and counted). Each note-on is
quantized in beats, so tempo changes never matter:

    x = (beat - window start) * steps_per_beat
    step = floor(x + 0.5)          # the nearest step; a hit a little before a bar line is
    offset = 2 * (x - step)        # step 0 of that bar, played early; offset in [-1, 1)

Several hits in one cell keep the loudest (the earliest of equally loud) and its offset.
Windows with fewer than ``min_onsets`` onsets are dropped and counted; controller data after
the last note makes no windows because a file's music ends at its last note. Nothing is lost
silently: every refused file, unmapped note, skipped bar and dropped window is in the report.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit, load_kit, shipped_kits
from rvaed.core.midifile import MIDI_SUFFIXES, MidiFileError, MidiNotes, midi_files, read_midis
from rvaed.core.names import shown
from rvaed.core.pattern import parse_meter, simple_meter
from rvaed.core.windows import Hits, channel_mask, drum_channels, file_lookup
from rvaed.training.options import IngestOptions


@dataclass
class FileReport:
    """What one readable file gave: windows, and everything that did not become one."""

    path: str
    windows: int = 0
    bars: int = 0
    skipped_bars: Counter = field(default_factory=Counter)  # meter ("3/4") -> bars
    dropped_windows: int = 0
    hits: list[int] = field(default_factory=list)  # mapped note-ons per voice
    unmapped: Counter = field(default_factory=Counter)  # note -> note-ons
    other_channels: Counter = field(default_factory=Counter)  # channel -> note-ons
    channels: str = ""  # which channels were read, and why
    notes: list[str] = field(default_factory=list)  # repairs, loops: read, but worth a word

    def to_dict(self) -> dict:
        return {
            "file": self.path,
            "channels": self.channels,
            "notes": self.notes,
            "windows": self.windows,
            "bars": self.bars,
            "skipped_bars": sum(self.skipped_bars.values()),
            "skipped_meters": dict(sorted(self.skipped_bars.items())),
            "dropped_windows": self.dropped_windows,
            "hits": self.hits,
            "unmapped_notes": _keyed(self.unmapped),
            "other_channels": _keyed(self.other_channels),
        }


@dataclass
class IngestReport:
    """The whole batch: files read (with their reports) and files refused (with reasons)."""

    options: IngestOptions
    files: list[FileReport] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    meter_note: str = ""  # how the meter was read from the files, when it was
    mixed_meters: bool = False  # no one meter: the note says which were found

    @property
    def windows(self) -> int:
        return sum(f.windows for f in self.files)

    @property
    def hits_per_voice(self) -> dict[str, int]:
        totals = np.zeros(self.options.kit.size, dtype=np.int64)
        for report in self.files:
            totals += report.hits
        return {name: int(n) for name, n in zip(self.options.kit.names, totals, strict=True)}

    @property
    def unmapped(self) -> Counter:
        return _total(f.unmapped for f in self.files)

    @property
    def other_channels(self) -> Counter:
        return _total(f.other_channels for f in self.files)

    @property
    def skipped_bars(self) -> Counter:
        return _total(f.skipped_bars for f in self.files)

    @property
    def bars_per_meter(self) -> Counter:
        """Every bar read, by meter: the grid's and the skipped ones."""
        skipped = self.skipped_bars
        found = Counter({self.options.grid.meter: sum(f.bars for f in self.files)
                         - skipped.total()})
        return +(found + skipped)

    @property
    def dropped_windows(self) -> int:
        return sum(f.dropped_windows for f in self.files)

    def lines(self, most: int = 8) -> list[str]:
        """What was read, one line each, for wherever training starts (the CLI, the log):
        files and windows, every refusal, repair and loop, what was left out and why."""
        options, grid = self.options, self.options.grid
        lines = [f"read {len(self.files)} file(s), {self.windows} window(s) of {grid.bars} "
                 f"bars {grid.meter}; kit {options.kit.name}, {options.channel_name}"]
        if self.meter_note:
            lines.append(self.meter_note)
        lines += _capped([f"refused {shown(path)}: {reason}" for path, reason in self.refused],
                         most)
        lines += _capped([f"{shown(f.path)}: {note}" for f in self.files for note in f.notes],
                         most)
        if options.channel == "auto":
            lines += _capped([f"{shown(f.path)}: {f.channels}" for f in self.files
                              if not f.channels.startswith("channel 10 ")], most)
        if self.skipped_bars:
            lines.append(f"skipped {self.skipped_bars.total()} bar(s) not in "
                         f"{grid.meter}: {_listed(self.skipped_bars, '')}")
        if self.unmapped:
            lines.append(f"unmapped notes (no voice of kit {options.kit.name}): "
                         f"{_listed(self.unmapped, 'note ')}{kit_hint(self.unmapped, options.kit)}")
        if self.other_channels:
            lines.append(f"left out: {_listed(self.other_channels, 'channel ')} note(s)")
        if self.dropped_windows:
            lines.append(f"left out: {self.dropped_windows} window(s) with fewer than "
                         f"{options.min_onsets} onsets")
        return lines

    def summary(self) -> dict:
        """The short version, for a model's manifest: what it was trained on."""
        return {
            "files": len(self.files),
            "files_refused": len(self.refused),
            "windows": self.windows,
            "hits_per_voice": self.hits_per_voice,
        }

    def to_dict(self) -> dict:
        options = self.options
        return {
            "summary": self.summary(),
            "kit": options.kit.name,
            "grid": options.grid.to_dict(),
            "bars_per_meter": dict(self.bars_per_meter.most_common()),
            "channel": options.channel,
            "min_onsets": options.min_onsets,
            "hop_bars": options.hop_bars,
            "unmapped_notes": _keyed(self.unmapped),
            "other_channels": _keyed(self.other_channels),
            "skipped_bars": sum(self.skipped_bars.values()),
            "skipped_meters": dict(sorted(self.skipped_bars.items())),
            "dropped_windows": self.dropped_windows,
            "refused": [{"file": path, "reason": reason} for path, reason in self.refused],
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True, eq=False)
class Dataset:
    """windows: (N, 3, voices, steps) float32; sources[i] = (file, bar) of window i, bars
    counted from 1 as in a sequencer."""

    windows: np.ndarray
    sources: list[tuple[str, int]]
    report: IngestReport


def load_dataset(paths: Iterable[str | Path], options: IngestOptions) -> Dataset:
    """Read every MIDI file in ``paths``; RvaedError saying what was found if none is usable."""
    dataset = ingest(paths, options)
    if dataset.report.mixed_meters:
        raise RvaedError(dataset.report.meter_note)
    if not len(dataset.windows):
        raise RvaedError(explain_empty(dataset.report))
    return dataset


def ingest(paths: Iterable[str | Path], options: IngestOptions) -> Dataset:
    """Like load_dataset, but an empty result is returned (with its report), not raised."""
    report = IngestReport(options)
    files = midi_files(paths, report.refused)
    songs: Iterable[MidiNotes | MidiFileError] = read_midis(files, options.max_file_bytes,
                                                            options.workers)
    if options.meter_from_data:
        songs = list(songs)
        read_meter([song for song in songs if isinstance(song, MidiNotes)], report)
        options = report.options
    windows: list[np.ndarray] = []
    sources: list[tuple[str, int]] = []
    for song in songs:
        if isinstance(song, MidiFileError):
            report.refused.append((song.path, song.reason))
            continue
        file_report = FileReport(str(song.path))
        for bar, window in file_windows(song, options, file_report):
            windows.append(window)
            sources.append((str(song.path), bar))
        report.files.append(file_report)
    shape = (3, options.kit.size, options.grid.steps)
    stacked = np.stack(windows) if windows else np.zeros((0, *shape), dtype=np.float32)
    return Dataset(stacked, sources, report)


UNAMBIGUOUS = 0.9  # the share of the files' whole bars one meter must hold to be the grid's


def read_meter(songs: list[MidiNotes], report: IngestReport) -> None:
    """The grid of ``report.options`` put in the meter the files' bars are in, and a line
    saying so; when no one meter holds `UNAMBIGUOUS` of the bars (or the grid's steps cannot
    divide its bar) the grid is kept and the line says what was found and how to choose."""
    found = bars_per_meter(songs)
    if not found:
        return
    (meter, count), total = found.most_common(1)[0], found.total()
    report.mixed_meters = True
    if count < UNAMBIGUOUS * total:
        listing = ", ".join(f"{n} bars in {m}" for m, n in found.most_common(6))
        report.meter_note = (f"the files mix meters ({listing}): choose one with --meter "
                             f"(e.g. --meter {meter})")
        return
    numerator, denominator = parse_meter(meter)
    try:
        grid = replace(report.options.grid, numerator=numerator, denominator=denominator)
    except ValueError as exc:
        report.meter_note = f"{exc}: choose --steps-per-beat (e.g. 4) or --meter"
        return
    report.options, report.mixed_meters = replace(report.options, grid=grid), False
    report.meter_note = (f"meter {meter}, as {count} of the files' {total} whole bars are "
                         f"(--meter to choose)")


def bars_per_meter(songs: Iterable[MidiNotes]) -> Counter:
    """Whole bars up to each file's last note, per meter (2/2 counted as 4/4)."""
    found: Counter = Counter()
    for song in songs:
        bars = song.bars(float(song.beats[-1])) if len(song.beats) else []
        found.update(simple_meter(bar.meter.numerator, bar.meter.denominator) for bar in bars
                     if bar.beats == bar.meter.bar_beats)
    return found


def file_windows(song: MidiNotes, options: IngestOptions,
                 report: FileReport) -> list[tuple[int, np.ndarray]]:
    """The (bar, window) pairs of one file; fills ``report`` with what did not become one."""
    grid = options.grid
    lookup = file_lookup(song, options.kit)
    on_channel = _selected(song, options, report)
    count_notes(song, on_channel, lookup, options.kit.size, report)
    report.notes += [f"repaired: {repair}" for repair in song.repairs]
    if not on_channel.any():
        return []
    hits = Hits.of(song, lookup, on_channel)
    loop = hits.looped(song, grid)
    if loop is not None:
        return _loop_window(*loop, options, report)
    # The music ends at the last note on the channel: a controller tail makes no bars.
    half_step = 0.5 / grid.steps_per_beat
    bars = song.bars(until=float(song.beats[on_channel][-1]) + half_step)
    fits = [bar.fits(grid) for bar in bars]
    report.bars = len(bars)
    report.skipped_bars.update(str(bar.meter) for bar, ok in zip(bars, fits, strict=True)
                               if not ok)
    notes_in = hits.per_window([bar.start for bar in bars], grid)
    found = []
    for first in range(0, len(bars) - grid.bars + 1, options.hop_bars):
        if not all(fits[first:first + grid.bars]):
            continue
        if notes_in[first] < options.min_onsets:  # long silences are counted, not built
            report.dropped_windows += 1
            continue
        window = hits.window(bars[first].start, options.kit.size, grid)
        if window[0].sum() < options.min_onsets:
            report.dropped_windows += 1
        else:
            found.append((first + 1, window))
    report.windows = len(found)
    return found


def _selected(song: MidiNotes, options: IngestOptions, report: FileReport) -> np.ndarray:
    """The note-ons on the channels to read, saying in ``report`` which and why."""
    if options.channel != "auto":
        report.channels = options.channel_name
        return channel_mask(song, options.channel if isinstance(options.channel, int) else None)
    channels, report.channels = drum_channels(song, options.kit)
    return np.isin(song.channels, channels)


def _loop_window(hits: Hits, bars: int, options: IngestOptions,
                 report: FileReport) -> list[tuple[int, np.ndarray]]:
    """The one window of a file that is a loop (a capture, a one-bar clip)."""
    grid = options.grid
    report.bars = bars
    if bars < grid.bars:
        report.notes.append(f"a {bars}-bar loop, read repeated to {grid.bars} bars")
    window = hits.window(0.0, options.kit.size, grid)
    if window[0].sum() < options.min_onsets:
        report.dropped_windows += 1
        return []
    report.windows = 1
    return [(1, window)]


def count_notes(song: MidiNotes, on_channel: np.ndarray, lookup: np.ndarray, voices: int,
                report: FileReport) -> None:
    """Note-ons per voice, unmapped per note, and those on other channels per channel."""
    report.other_channels.update(_counts(song.channels[~on_channel]))
    notes = song.notes[on_channel]
    found = lookup[notes]
    report.hits = np.bincount(found[found >= 0], minlength=voices).tolist()
    report.unmapped.update(_counts(notes[found < 0]))


def explain_empty(report: IngestReport) -> str:
    """One line saying why no window came out and what was found instead."""
    options = report.options
    if not report.files:
        if not report.refused:
            return f"no MIDI files found (looked for {', '.join(MIDI_SUFFIXES)} files)"
        path, reason = report.refused[0]
        return (f"no readable MIDI file: {len(report.refused)} refused (first: {shown(path)}: "
                f"{reason})")
    hits = sum(report.hits_per_voice.values())
    unmapped = report.unmapped
    found = f"{len(report.files)} file(s) read"
    if not hits and not unmapped:
        others = report.other_channels
        if not others:
            return f"no notes in the {found}"
        listing = ", ".join(f"{n} notes on channel {c}" for c, n in others.most_common(3))
        return (f"no notes on {options.channel_name}; {listing}: "
                f"try --channel {others.most_common(1)[0][0]}")
    if not hits:
        listing = ", ".join(f"note {note} x {n}" for note, n in unmapped.most_common(5))
        return (f"{unmapped.total()} notes on {options.channel_name} but none maps to a voice "
                f"of kit {options.kit.name} ({listing}): try another --kit")
    grid = options.grid
    size = f"{grid.bars}-bar {grid.meter}"
    skipped = report.skipped_bars
    if report.dropped_windows:
        return (f"all {report.dropped_windows} {size} windows have fewer than "
                f"{options.min_onsets} onsets: try a lower --min-onsets")
    if skipped:
        meters = ", ".join(f"{n} in {m}" for m, n in skipped.most_common())
        return f"no {size} windows: bars in other meters were skipped ({meters})"
    return f"no {size} windows: the music in the {found} is shorter than one window"


def kit_hint(unmapped: Counter, kit: Kit) -> str:
    """'; kit gmd reads 715 of them' when a shipped kit maps more of ``unmapped`` than none."""
    best, count = "", 0
    for name in shipped_kits():
        other = load_kit(name)
        if other.name != kit.name:
            mapped = sum(n for note, n in unmapped.items() if other.voice_of(note) is not None)
            best, count = (other.name, mapped) if mapped > count else (best, count)
    return f"; kit {best} reads {count} of them" if count else ""


def _capped(lines: list[str], most: int) -> list[str]:
    if len(lines) <= most:
        return lines
    return [*lines[:most], f"... and {len(lines) - most} more (rvaed inspect lists them all)"]


def _listed(counter: Counter, prefix: str, most: int = 6) -> str:
    shown = ", ".join(f"{prefix}{key} x {n}" for key, n in counter.most_common(most))
    return shown + (f" and {len(counter) - most} more" if len(counter) > most else "")


def _counts(values: np.ndarray) -> Counter:
    numbers, counts = np.unique(values, return_counts=True)
    return Counter({int(v): int(n) for v, n in zip(numbers, counts, strict=True)})


def _total(counters: Iterable[Counter]) -> Counter:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return total


def _keyed(counter: Counter) -> dict[str, int]:
    """JSON keys are strings; sorted numerically for reading."""
    return {str(k): n for k, n in sorted(counter.items())}

