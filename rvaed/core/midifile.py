"""Read a Standard MIDI File into note-ons positioned in beats, with its bar lines.

Positions are in quarter-note beats (ticks / PPQ), so tempo changes never move a note:
a groove played with a tempo ramp still lands on its grid. Only what ingestion needs is
kept: note-ons (velocity 0 is a note-off, as in running-status streams), their channels,
tracks and durations, the time signatures, the track names and text events. Type 0 and 1
files are read; type 2 (independent sequences, no common timeline) and SMPTE time division
are refused with the reason.

Real collections hold files that players read fine but a strict parser refuses: a data byte
above 127 in one controller, a key signature no key has, a header announcing more tracks than
the file holds, a last track whose length field runs past the end. Such a file is repaired
on the fly (clipped, the bad key signature ignored, the tracks that are there read) and the
repair is named in ``MidiNotes.repairs``; only what cannot be read is refused.

mido does the byte parsing (running status included); the messages are then walked once
with an absolute tick counter rather than converted to seconds, which is where the time of
reading a large collection goes.
"""

import io
import multiprocessing
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import pairwise, repeat
from pathlib import Path

import mido
import numpy as np

from rvaed.core.errors import RvaedError
from rvaed.core.names import shown
from rvaed.core.pattern import Grid
from rvaed.core.reading import NotRegular, TooLarge, read_regular, walk

# Parsed by mido, a MIDI file takes about 70 times its size in memory (4 MB -> ~280 MB); the
# longest performance in the Groove MIDI Dataset (17 minutes, with hi-hat pedal data) is 156 KB.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_BEATS = 100_000  # about 14 hours at 120 BPM: a note later than this is a corrupt delta time
PARALLEL_FROM = 64  # fewer files are read in this process: a worker takes ~0.5 s to start


class MidiFileError(RvaedError):
    """A file that cannot be read as drum MIDI; ``reason`` is the part after the file name."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{shown(path)}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class Meter:
    """A time signature in force from ``beat`` on (beats are quarter notes)."""

    beat: float
    numerator: int
    denominator: int

    @property
    def bar_beats(self) -> float:
        return self.numerator * 4 / self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True)
class Bar:
    """One bar: where it starts, how long it is, and its meter (shorter than the meter's
    length when a time signature change cuts it)."""

    start: float
    beats: float
    meter: Meter

    def fits(self, grid: Grid) -> bool:
        """True for a whole bar in the grid's meter (2/2 holds a 4/4 bar)."""
        return grid.holds(self.meter.numerator, self.meter.denominator) and (
            self.beats == self.meter.bar_beats
        )


@dataclass(frozen=True, eq=False)
class MidiNotes:
    """The note-ons of one file in time order, as parallel arrays.

    beats (float64, quarter notes from the start), channels (1-16, as musicians count),
    notes and velocities (1-127), durations (beats to the note-off; 0 when none follows) and
    tracks (the index of the track each note-on is in); ``length`` is where the longest track
    ends (beats), which may be long after the last note when a controller tail follows.
    ``track_names`` holds each track's first name ('' for none), ``texts`` the text events,
    ``repairs`` what had to be repaired to read the file (empty for a sound file).
    """

    path: Path
    ticks_per_beat: int
    beats: np.ndarray
    channels: np.ndarray
    notes: np.ndarray
    velocities: np.ndarray
    durations: np.ndarray
    tracks: np.ndarray
    meters: tuple[Meter, ...]
    track_names: tuple[str, ...]
    texts: tuple[str, ...]
    length: float
    repairs: tuple[str, ...] = ()

    def bars(self, until: float) -> list[Bar]:
        """The bars from the start up to and including the one that contains ``until``."""
        found: list[Bar] = []
        start = 0.0
        for i, meter in enumerate(self.meters):
            change = self.meters[i + 1].beat if i + 1 < len(self.meters) else float("inf")
            while start <= until and start < change:
                length = min(meter.bar_beats, change - start)
                found.append(Bar(start, length, meter))
                start += length
            if start > until:
                break
        return found


def read_midi(path: Path | str, max_bytes: int = MAX_FILE_BYTES) -> MidiNotes:
    """Read one file; any problem is a MidiFileError whose reason fits on one line."""
    path = Path(path)
    data = _read_bytes(path, max_bytes)
    _check_header(path, data)
    midi, repairs = _parse(path, data)
    return _collect(path, midi.ticks_per_beat, midi.tracks, tuple(repairs))


def _parse(path: Path, data: bytes) -> tuple[mido.MidiFile, list[str]]:
    """mido's reading of ``data``, repairing what a player would read past (see the module)."""
    repairs: list[str] = []
    clip = False
    for _attempt in range(4):  # each repair is made at most once
        try:
            return mido.MidiFile(file=io.BytesIO(data), clip=clip), repairs
        except EOFError:
            data = _repair_chunks(path, data, repairs)
        except mido.KeySignatureError:
            data = _without_bad_key_signatures(data)
            repairs.append("an invalid key signature was ignored")
        except Exception as exc:  # mido's error types for bad bytes are many and undocumented
            if clip or "data byte" not in str(exc):
                raise MidiFileError(path, f"corrupt MIDI data: {exc or type(exc).__name__}"
                                    ) from None
            clip = True
            repairs.append("data bytes above 127 were clipped to 127")
    raise MidiFileError(path, f"corrupt MIDI data: unreadable after {', '.join(repairs)}")


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(kind, start of payload, declared length) of each chunk after the header."""
    position = 8 + struct.unpack(">I", data[4:8])[0]
    while position + 8 <= len(data):
        kind, length = data[position:position + 4], struct.unpack(">I", data[position + 4:
                                                                         position + 8])[0]
        yield kind, position + 8, length
        position += 8 + length


def _repair_chunks(path: Path, data: bytes, repairs: list[str]) -> bytes:
    """The tracks that are there: a header count larger than the file's tracks is lowered, a
    last track whose length runs past the end is read to the end. Truly cut files are refused."""
    tracks = [(start, length) for kind, start, length in _chunks(data) if kind == b"MTrk"]
    announced = struct.unpack(">H", data[10:12])[0]
    if tracks and tracks[-1][0] + tracks[-1][1] > len(data):
        start, length = tracks[-1]
        if any(r.startswith("track") for r in repairs) or b"\xff\x2f\x00" not in data[start:]:
            raise MidiFileError(path, f"truncated: the file ends inside track {len(tracks)} "
                                f"({len(data) - start} of its {length} bytes are there)")
        repairs.append(f"track {len(tracks)}'s length field runs past the end of the file; "
                       "it was read to the end")
        data = data[:start - 4] + struct.pack(">I", len(data) - start) + data[start:]
    elif len(tracks) < announced:
        repairs.append(f"the header announces {announced} tracks, the file holds "
                       f"{len(tracks)}")
    else:
        raise MidiFileError(path, "truncated: a track ends inside a message")
    return data[:10] + struct.pack(">H", len(tracks)) + data[12:]


def _without_bad_key_signatures(data: bytes) -> bytes:
    """``data`` with each key signature meta event that names no key set to C major."""
    out = bytearray(data)
    at = out.find(b"\xff\x59\x02")
    while at >= 0 and at + 5 <= len(out):
        sharps, mode = struct.unpack("bB", out[at + 3:at + 5])
        if not (-7 <= sharps <= 7 and mode in (0, 1)):
            out[at + 3:at + 5] = b"\x00\x00"
        at = out.find(b"\xff\x59\x02", at + 3)
    return bytes(out)


def read_midis(paths: Sequence[Path], max_bytes: int = MAX_FILE_BYTES,
               workers: int | None = None) -> Iterator[MidiNotes | MidiFileError]:
    """Read many files; yields, in order, each file's notes or the error that refused it.

    Parsing is pure Python and CPU-bound, so a large batch is spread over ``workers``
    processes (default: the CPUs this process may use). They are spawned, not forked, which
    is safe from a process that runs threads.
    """
    workers = _usable_cpus() if workers is None else workers
    if workers <= 1 or len(paths) < PARALLEL_FROM:
        yield from map(_notes_or_error, paths, repeat(max_bytes))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_notes_or_error, paths, repeat(max_bytes), chunksize=16)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: honours taskset and cgroup CPU sets
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _notes_or_error(path: Path, max_bytes: int) -> MidiNotes | MidiFileError:
    try:
        return read_midi(path, max_bytes)
    except MidiFileError as exc:
        return exc


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes: a regular file only (a FIFO would block the reader forever)."""
    try:
        return read_regular(path, max_bytes)
    except TooLarge as exc:
        raise MidiFileError(path, f"too large: {exc.size / 1e6:.1f} MB (the limit is "
                            f"{max_bytes / 1e6:.1f} MB)") from None
    except NotRegular as exc:
        raise MidiFileError(path, str(exc.strerror)) from None
    except OSError as exc:
        raise MidiFileError(path, f"unreadable: {exc.strerror or exc}") from None


def _check_header(path: Path, data: bytes) -> None:
    """Refuse what mido would read silently or explain badly."""
    if not data:
        raise MidiFileError(path, "empty file")
    if not data.startswith(b"MThd"):
        raise MidiFileError(path, "not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise MidiFileError(path, "truncated: the header is incomplete")
    kind, _tracks, division = struct.unpack(">HHH", data[8:14])
    if kind == 2:
        raise MidiFileError(
            path, "type 2 MIDI file (independent sequences): expected type 0 or 1"
        )
    if kind > 2:
        raise MidiFileError(path, f"unknown MIDI file type {kind}: expected type 0 or 1")
    if division & 0x8000:
        raise MidiFileError(path, "SMPTE time division: expected ticks per quarter note")
    if division == 0:
        raise MidiFileError(path, "0 ticks per quarter note: expected a positive PPQ")


def _collect(path: Path, ppq: int, tracks: Iterable[mido.MidiTrack],
             repairs: tuple[str, ...] = ()) -> MidiNotes:
    """Walk every track with absolute ticks; merge them by time (type 1)."""
    ticks: list[int] = []
    channels: list[int] = []
    notes: list[int] = []
    velocities: list[int] = []
    ends: list[int] = []  # the tick of each note-on's note-off (its own tick when none)
    track_of: list[int] = []
    meters: list[tuple[int, int, int]] = []
    names: list[str] = []
    texts: list[str] = []
    end = 0
    for index, track in enumerate(tracks):
        tick = 0
        names.append("")
        sounding: dict[tuple[int, int], int] = {}  # (channel, note) -> index of its note-on
        for msg in track:
            tick += msg.time
            kind = msg.type
            if kind == "note_on" and msg.velocity:
                sounding[msg.channel, msg.note] = len(ticks)
                ticks.append(tick)
                ends.append(tick)
                channels.append(msg.channel)
                notes.append(msg.note)
                velocities.append(msg.velocity)
                track_of.append(index)
            elif kind in ("note_off", "note_on"):
                started = sounding.pop((msg.channel, msg.note), None)
                if started is not None:
                    ends[started] = tick
            elif kind == "time_signature":
                meters.append((tick, msg.numerator, msg.denominator))
            elif kind == "track_name":
                names[-1] = names[-1] or msg.name
            elif kind == "text":
                texts.append(msg.text)
        end = max(end, tick)
    last = max(ticks, default=0) / ppq
    if last > MAX_BEATS:
        raise MidiFileError(path, f"implausibly long: a note at beat {last:,.0f} (more than "
                                  f"{MAX_BEATS:,}; a corrupt delta time?)")
    starts = np.asarray(ticks, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    return MidiNotes(
        path=path,
        ticks_per_beat=ppq,
        beats=starts[order] / ppq,
        channels=np.asarray(channels, dtype=np.uint8)[order] + 1,
        notes=np.asarray(notes, dtype=np.uint8)[order],
        velocities=np.asarray(velocities, dtype=np.uint8)[order],
        durations=(np.asarray(ends, dtype=np.int64) - starts)[order] / ppq,
        tracks=np.asarray(track_of, dtype=np.int64)[order],
        meters=_meters(path, meters, ppq),
        track_names=tuple(names),
        texts=tuple(texts),
        length=end / ppq,
        repairs=repairs,
    )


def _meters(path: Path, found: list[tuple[int, int, int]], ppq: int) -> tuple[Meter, ...]:
    """Time signatures in time order, one per position (the last one given wins there);
    4/4 from the start when the file sets none there, as the MIDI standard says. A time
    signature that restates the meter in force is no change: it draws no bar line (files
    restate it mid-bar, e.g. at every section marker)."""
    by_tick = {0: (4, 4)}
    for tick, numerator, denominator in sorted(found, key=lambda m: m[0]):
        if numerator < 1 or denominator > 64:
            raise MidiFileError(
                path, f"time signature {numerator}/{denominator} at beat {tick / ppq:g}: "
                "expected a numerator of at least 1 and a denominator up to 64"
            )
        by_tick[tick] = (numerator, denominator)
    ordered = sorted(by_tick.items())
    changes = [ordered[0]] + [now for before, now in pairwise(ordered) if now[1] != before[1]]
    return tuple(Meter(tick / ppq, n, d) for tick, (n, d) in changes)


MIDI_SUFFIXES = (".mid", ".midi", ".smf")  # what folders are searched for, any case


def midi_files(paths: Iterable[str | Path], refused: list[tuple[str, str]]) -> list[Path]:
    """Files named directly, and .mid/.midi files (any case) in folders, recursively (into
    symlinked folders too, each folder once), in a stable order; a file reached by two paths
    is read once, by the first. Missing paths and unreadable folders go to ``refused``."""
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
    return _once(found)


def _once(files: list[Path]) -> list[Path]:
    """``files`` without a second path to the same file (same device and inode)."""
    seen: set[tuple[int, int]] = set()
    kept: list[Path] = []
    for path in dict.fromkeys(files):
        try:
            status = path.stat()
        except OSError:  # reading it will say why
            kept.append(path)
            continue
        if (status.st_dev, status.st_ino) not in seen:
            seen.add((status.st_dev, status.st_ino))
            kept.append(path)
    return kept


def _walk(folder: Path, refused: list[tuple[str, str]]) -> list[Path]:
    """MIDI files under ``folder``: symlinked folders are followed, each real folder once."""
    def unreadable(path: str, reason: str) -> None:
        refused.append((path, reason))

    files = [
        Path(root, name)
        for root, names in walk(folder, on_error=unreadable, follow_links=True)
        for name in names
        if name.lower().endswith(MIDI_SUFFIXES)
    ]
    return sorted(files, key=str)
