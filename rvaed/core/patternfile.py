"""A pattern as a MIDI file: save what rvaed plays, read a loop back as a Pattern.

save_pattern writes one loop (type 0, channel 10 unless told) with the kit's output notes,
the grid's meter and a tempo, note-offs half a step after each note-on (sooner when the same
note sounds again first). The resolution is 240 ticks per step (PPQ 960 for 16ths), so an
offset is stored to 1/120 of a half step and read back within 1/120 (1/240 for all but the
very latest offsets, which are kept just inside their own step).

A loop can start with a hit played early (step 0, negative offset); in the file that hit is
at the end of the loop, where a looping sequencer plays it. The file carries the track name
"rvaed pattern: KIT" and names the voice of each note it plays, so that it reads back as the
same hits in the same voices at the same steps, with any kit (see core/windows.py).
"""

from pathlib import Path

import mido

from rvaed.core.atomic import write_atomic
from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit
from rvaed.core.midifile import read_midi
from rvaed.core.pattern import Grid, Pattern
from rvaed.core.state import PARAMETERS
from rvaed.core.windows import Hits, channel_mask, file_lookup, voices_text

TEMPO = PARAMETERS["tempo"]

TICKS_PER_STEP = 240
HALF_STEP = TICKS_PER_STEP // 2
TITLE = "rvaed pattern: "


def pattern_ppq(grid: Grid) -> int:
    """Ticks per quarter note of a saved pattern: every step lands on a whole tick."""
    return TICKS_PER_STEP * grid.steps_per_beat


def save_pattern(pattern: Pattern, path: str | Path, kit: Kit, grid: Grid, bpm: float = 120.0,
                 *, threshold: float = 0.5, channel: int = 10) -> None:
    """Write the hits of ``pattern`` (onsets above ``threshold``) atomically to ``path``."""
    midi = pattern_midi(pattern, kit, grid, bpm, threshold=threshold, channel=channel)
    try:
        write_atomic(Path(path), lambda file: midi.save(file=file))
    except OSError as exc:
        raise RvaedError(f"{path}: cannot write: {exc.strerror or exc}") from None


def pattern_midi(pattern: Pattern, kit: Kit, grid: Grid, bpm: float = 120.0, *,
                 threshold: float = 0.5, channel: int = 10,
                 texts: tuple[str, ...] = ()) -> mido.MidiFile:
    """The hits of ``pattern`` (onsets above ``threshold``) as a one-loop type-0 MIDI file,
    with ``texts`` as text events after the one naming the voices."""
    _check_shape(pattern, kit, grid)
    if not TEMPO.low <= bpm <= TEMPO.high:
        raise RvaedError(f"bpm: expected {TEMPO.low:g}-{TEMPO.high:g}, got {bpm}")
    if not 1 <= channel <= 16:
        raise RvaedError(f"channel: expected 1-16, got {channel}")
    loop = TICKS_PER_STEP * grid.steps
    track = mido.MidiTrack([
        mido.MetaMessage("track_name", name=TITLE + kit.name),
        mido.MetaMessage("text", text=voices_text(dict(zip(kit.names, kit.outputs,
                                                              strict=True)))),
        *(mido.MetaMessage("text", text=text) for text in texts),
        mido.MetaMessage("time_signature", numerator=grid.numerator,
                         denominator=grid.denominator),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)),
    ])
    now = 0
    for tick, kind, note, velocity in _note_events(pattern, kit, threshold, loop):
        track.append(mido.Message(kind, channel=channel - 1, note=note, velocity=velocity,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=loop - now))
    return mido.MidiFile(type=0, ticks_per_beat=pattern_ppq(grid), tracks=[track])


def load_pattern(path: str | Path, kit: Kit, grid: Grid, channel: int | None = None) -> Pattern:
    """The first ``grid.bars`` bars of a MIDI file as a Pattern (all channels by default)."""
    song = read_midi(path)
    hits = Hits.of(song, file_lookup(song, kit), channel_mask(song, channel))
    loop = hits.looped(song, grid)
    if loop is not None:
        return Pattern.from_array(loop[0].window(0.0, kit.size, grid))
    half_step = 0.5 / grid.steps_per_beat
    for number, bar in enumerate(song.bars(until=grid.beats - half_step)[:grid.bars], start=1):
        if not bar.fits(grid):
            raise RvaedError(f"{path}: bar {number} is in {bar.meter}: "
                             f"expected {grid.meter}")
    return Pattern.from_array(hits.window(0.0, kit.size, grid))


def _check_shape(pattern: Pattern, kit: Kit, grid: Grid) -> None:
    if (pattern.voices, pattern.steps) != (kit.size, grid.steps):
        raise RvaedError(
            f"pattern has {pattern.voices} voices x {pattern.steps} steps: kit {kit.name} "
            f"and the grid expect {kit.size} x {grid.steps}"
        )


def _note_events(pattern: Pattern, kit: Kit, threshold: float,
                 loop: int) -> list[tuple[int, str, int, int]]:
    """(tick, note_on/note_off, note, velocity) in time order, note-offs first at a tick."""
    starts: dict[int, dict[int, int]] = {}  # note -> tick -> velocity
    for hit in pattern.hits(threshold):
        shift = min(max(round(hit.offset * HALF_STEP), -HALF_STEP), HALF_STEP - 1)
        tick = (hit.step * TICKS_PER_STEP + shift) % loop  # an early step 0 plays at the end
        note = kit.voices[hit.voice].output
        by_tick = starts.setdefault(note, {})
        by_tick[tick] = max(hit.velocity, by_tick.get(tick, 0))
    events = []
    for note, by_tick in starts.items():
        ticks = sorted(by_tick)
        for tick, following in zip(ticks, [*ticks[1:], loop], strict=True):
            events.append((tick, "note_on", note, by_tick[tick]))
            events.append((min(tick + HALF_STEP, following), "note_off", note, 0))
    events.sort(key=lambda e: (e[0], e[1] == "note_on", e[2]))
    return events
