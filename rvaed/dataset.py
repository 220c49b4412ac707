"""MIDI files and folders -> training windows of shape (3, voices, steps), with provenance.

A window is ``grid.bars`` bars starting on a bar line (every ``hop_bars`` bars), all in the
grid's meter (``beats_per_bar``/4; other bars are skipped and counted). Each note-on is
quantized in beats, so tempo changes never matter:

    x = (beat - window start) * steps_per_beat
    step = floor(x + 0.5)          # the nearest step; a hit a little before a bar line is
    offset = 2 * (x - step)        # step 0 of that bar, played early; offset in [-1, 1)

Several hits in one cell keep the loudest (the earliest of equally loud) and its offset.
Windows with fewer than ``min_onsets`` onsets are dropped and counted; controller data after
the last note makes no windows because a file's music ends at its last note. Nothing is lost
silently: every refused file, unmapped note, skipped bar and dropped window is in the report.
"""

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rvaed.errors import RvaedError
from rvaed.kit import Kit
from rvaed.midifile import MAX_FILE_BYTES, MidiFileError, MidiNotes, read_midis
from rvaed.pattern import OFFSET_MAX, Grid

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class IngestOptions:
    """How files become windows. ``channel`` counts 1-16 as musicians do; None = all.
    ``workers``: processes that parse files (None = one per CPU; 1 = this process only)."""

    kit: Kit
    grid: Grid = field(default_factory=Grid)
    channel: int | None = 10
    min_onsets: int = 4
    hop_bars: int = 1
    max_file_bytes: int = MAX_FILE_BYTES
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.channel is not None and (
            not isinstance(self.channel, int) or not 1 <= self.channel <= 16
        ):
            raise RvaedError(f"channel: expected 1-16 or all channels, got {self.channel!r}")
        limits = [("min_onsets", 0), ("hop_bars", 1), ("max_file_bytes", 1)]
        if self.workers is not None:
            limits.append(("workers", 1))
        for name, low in limits:
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise RvaedError(f"{name}: expected an integer >= {low}, got {value!r}")

    @property
    def channel_name(self) -> str:
        return "any channel" if self.channel is None else f"channel {self.channel}"


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

    def to_dict(self) -> dict:
        return {
            "file": self.path,
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
    def dropped_windows(self) -> int:
        return sum(f.dropped_windows for f in self.files)

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
    if not len(dataset.windows):
        raise RvaedError(explain_empty(dataset.report))
    return dataset


def ingest(paths: Iterable[str | Path], options: IngestOptions) -> Dataset:
    """Like load_dataset, but an empty result is returned (with its report), not raised."""
    report = IngestReport(options)
    lookup = note_lookup(options.kit)
    windows: list[np.ndarray] = []
    sources: list[tuple[str, int]] = []
    files = midi_files(paths, report.refused)
    for song in read_midis(files, options.max_file_bytes, options.workers):
        if isinstance(song, MidiFileError):
            report.refused.append((song.path, song.reason))
            continue
        file_report = FileReport(str(song.path))
        for bar, window in file_windows(song, options, lookup, file_report):
            windows.append(window)
            sources.append((str(song.path), bar))
        report.files.append(file_report)
    shape = (3, options.kit.size, options.grid.steps)
    stacked = np.stack(windows) if windows else np.zeros((0, *shape), dtype=np.float32)
    return Dataset(stacked, sources, report)


def midi_files(paths: Iterable[str | Path], refused: list[tuple[str, str]]) -> list[Path]:
    """Files named directly, and .mid/.midi files (any case) in folders, recursively, in a
    stable order. Missing paths and unreadable folders are added to ``refused``."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.extend(_walk(path, refused))
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            refused.append((str(path), "no such file or folder"))
    return list(dict.fromkeys(found))


def _walk(folder: Path, refused: list[tuple[str, str]]) -> list[Path]:
    def unreadable(exc: OSError) -> None:
        refused.append((str(exc.filename), f"unreadable folder: {exc.strerror}"))

    files = [
        Path(root, name)
        for root, _dirs, names in os.walk(folder, onerror=unreadable)
        for name in names
        if name.lower().endswith(MIDI_SUFFIXES)
    ]
    return sorted(files, key=str)


def note_lookup(kit: Kit) -> np.ndarray:
    """An array note -> voice index, -1 where the kit maps nothing."""
    return np.array([-1 if (v := kit.voice_of(n)) is None else v for n in range(128)],
                    dtype=np.int64)


def file_windows(song: MidiNotes, options: IngestOptions, lookup: np.ndarray,
                 report: FileReport) -> list[tuple[int, np.ndarray]]:
    """The (bar, window) pairs of one file; fills ``report`` with what did not become one."""
    grid = options.grid
    on_channel = channel_mask(song, options.channel)
    count_notes(song, on_channel, lookup, options.kit.size, report)
    if not on_channel.any():
        return []
    # The music ends at the last note on the channel: a controller tail makes no bars.
    half_step = 0.5 / grid.steps_per_beat
    bars = song.bars(until=float(song.beats[on_channel][-1]) + half_step)
    fits = [bar.fits(grid.beats_per_bar) for bar in bars]
    report.bars = len(bars)
    report.skipped_bars.update(str(bar.meter) for bar, ok in zip(bars, fits, strict=True)
                               if not ok)
    hits = Hits.of(song, lookup, on_channel)
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


def channel_mask(song: MidiNotes, channel: int | None) -> np.ndarray:
    """Which note-ons are on ``channel`` (all of them for None)."""
    if channel is None:
        return np.ones(len(song.notes), dtype=bool)
    return song.channels == channel


def count_notes(song: MidiNotes, on_channel: np.ndarray, lookup: np.ndarray, voices: int,
                report: FileReport) -> None:
    """Note-ons per voice, unmapped per note, and those on other channels per channel."""
    report.other_channels.update(_counts(song.channels[~on_channel]))
    notes = song.notes[on_channel]
    found = lookup[notes]
    report.hits = np.bincount(found[found >= 0], minlength=voices).tolist()
    report.unmapped.update(_counts(notes[found < 0]))


@dataclass(frozen=True, eq=False)
class Hits:
    """Mapped note-ons of one file in time order: beats, voice indices, MIDI velocities."""

    beats: np.ndarray
    voices: np.ndarray
    velocities: np.ndarray

    @classmethod
    def of(cls, song: MidiNotes, lookup: np.ndarray, selected: np.ndarray) -> "Hits":
        """The ``selected`` note-ons of ``song`` that ``lookup`` maps to a voice."""
        voices = lookup[song.notes]
        keep = selected & (voices >= 0)
        return cls(song.beats[keep], voices[keep], song.velocities[keep])

    def per_window(self, starts: list[float], grid: Grid) -> np.ndarray:
        """How many hits fall within the window starting at each of ``starts`` (beats)."""
        half_step = 0.5 / grid.steps_per_beat
        edges = np.asarray(starts, dtype=np.float64) - half_step
        return (np.searchsorted(self.beats, edges + grid.beats)
                - np.searchsorted(self.beats, edges))

    def window(self, start: float, voices: int, grid: Grid) -> np.ndarray:
        """The (3, voices, steps) window whose step 0 is at ``start`` (beats)."""
        spb = grid.steps_per_beat
        margin = 1.0 / spb  # wider than half a step; exact edges are decided by `quantize`
        low, high = np.searchsorted(self.beats, (start - margin, start + grid.beats + margin))
        steps, offsets = quantize(self.beats[low:high] - start, spb)
        inside = (steps >= 0) & (steps < grid.steps)
        return fill_window(steps[inside], self.voices[low:high][inside],
                           self.velocities[low:high][inside], offsets[inside], voices,
                           grid.steps)


def quantize(beats: np.ndarray, steps_per_beat: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest step and offset in half steps, [-1, 1), of positions in beats."""
    x = np.asarray(beats, dtype=np.float64) * steps_per_beat
    steps = np.floor(x + 0.5)
    # Clipped after the cast: 0.99999999 would round up to 1.0 in float32.
    offsets = np.clip((2.0 * (x - steps)).astype(np.float32), np.float32(-1.0),
                      np.float32(OFFSET_MAX))
    return steps.astype(np.int64), offsets


def fill_window(steps: np.ndarray, voices: np.ndarray, velocities: np.ndarray,
                offsets: np.ndarray, n_voices: int, n_steps: int) -> np.ndarray:
    """Cells (voice, step) of a (3, voices, steps) window; per cell the loudest hit wins,
    the earliest of equally loud ones."""
    window = np.zeros((3, n_voices * n_steps), dtype=np.float32)
    cells = voices * n_steps + steps
    order = np.lexsort((-np.arange(len(cells)), velocities, cells))
    last_of_cell = np.ones(len(order), dtype=bool)
    last_of_cell[:-1] = cells[order][1:] != cells[order][:-1]
    keep = order[last_of_cell]
    window[0, cells[keep]] = 1.0
    window[1, cells[keep]] = velocities[keep] / np.float32(127.0)
    window[2, cells[keep]] = offsets[keep]
    return window.reshape(3, n_voices, n_steps)


def explain_empty(report: IngestReport) -> str:
    """One line saying why no window came out and what was found instead."""
    options = report.options
    if not report.files:
        if not report.refused:
            return "no MIDI files found (looked for .mid and .midi files)"
        path, reason = report.refused[0]
        return f"no readable MIDI file: {len(report.refused)} refused (first: {path}: {reason})"
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
    size = f"{grid.bars}-bar {grid.beats_per_bar}/4"
    skipped = report.skipped_bars
    if report.dropped_windows:
        return (f"all {report.dropped_windows} {size} windows have fewer than "
                f"{options.min_onsets} onsets: try a lower --min-onsets")
    if skipped:
        meters = ", ".join(f"{n} in {m}" for m, n in skipped.most_common())
        return f"no {size} windows: bars in other meters were skipped ({meters})"
    return f"no {size} windows: the music in the {found} is shorter than one window"


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

