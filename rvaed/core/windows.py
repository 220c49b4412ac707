"""Note-ons -> cells: the one rule by which hits become a (3, voices, steps) window.

Training, pattern files and find-my-groove all read hits through here, so a file reads the
same wherever it comes from (nearest step, offset in half steps, the loudest hit of a cell).

A file rvaed wrote reads back exactly, whichever kit wrote it and whichever reads it:
- it names the voice of each note it plays (a text event ``rvaed voices: kick=36 ...``),
  since a kit's output notes need not be its own input notes (the rhythmvae kit plays mid
  tom on 45, which its input map reads as low tom);
- it is one loop, and a step-0 hit played early sits at the loop's end where a looping
  sequencer plays it: a file no longer than a window whose bars divide the window is read as
  a loop (repeated to fill the window, that hit wrapped back to step 0). The same holds for
  a one- or two-bar loop from any other program.
"""

import re
from dataclasses import dataclass

import numpy as np

from rvaed.core.kit import Kit
from rvaed.core.midifile import MidiNotes
from rvaed.core.pattern import OFFSET_MAX, Grid

VOICES_TEXT = "rvaed voices: "


def note_lookup(kit: Kit) -> np.ndarray:
    """An array note -> voice index, -1 where the kit maps nothing."""
    return np.array([-1 if (v := kit.voice_of(n)) is None else v for n in range(128)],
                    dtype=np.int64)


def voices_text(notes: dict[str, int]) -> str:
    """The text event naming the voice of each note a file plays (voice name -> note)."""
    return VOICES_TEXT + " ".join(f"{name}={note}" for name, note in notes.items())


def file_lookup(song: MidiNotes, kit: Kit) -> np.ndarray:
    """note -> voice for reading ``song`` with ``kit``: by the voices a file rvaed wrote
    names (a voice ``kit`` lacks is unmapped), else by the kit's input map."""
    lookup = note_lookup(kit)
    for text in song.texts:
        if text.startswith(VOICES_TEXT):
            for item in text[len(VOICES_TEXT):].split():
                name, _, note = item.partition("=")
                if note.isdigit() and int(note) < 128:
                    lookup[int(note)] = kit.names.index(name) if name in kit.names else -1
    return lookup


def channel_mask(song: MidiNotes, channel: int | None) -> np.ndarray:
    """Which note-ons are on ``channel`` (all of them for None)."""
    if channel is None:
        return np.ones(len(song.notes), dtype=bool)
    return song.channels == channel


GM_DRUMS = 10
DRUM_TRACK = re.compile(r"drum|perc|kit\b|beat|groove", re.IGNORECASE)
TRIGGER_BEATS = 0.375  # the longest median note of a drum channel (GMD's longest: 0.36 beats)
MAPPED_SHARE = 0.9


def drum_channels(song: MidiNotes, kit: Kit) -> tuple[list[int], str]:
    """The channels of ``song`` that hold drums, and why, by the first rule that finds one:
    1. channel 10, General MIDI's drum channel, when it holds notes;
    2. the channels of tracks named like drums ("Drums", "Percussion", "Beat" ...);
    3. channels whose notes look like drums: at least 90 % of them map to a voice of the
       kit, on two voices or more, and their median length is at most 0.375 beats (drum
       notes are triggers; bass lines and keys hold their notes, and a bass line is what
       would otherwise turn into kicks).
    None found: an empty list and what the file holds instead."""
    if (song.channels == GM_DRUMS).any():
        return [GM_DRUMS], "channel 10 (General MIDI drums)"
    named = [i for i, name in enumerate(song.track_names) if DRUM_TRACK.search(name)]
    channels = sorted({int(c) for c in song.channels[np.isin(song.tracks, named)]})
    if channels:
        titles = ", ".join(repr(song.track_names[i]) for i in named)
        return channels, f"{_channel_list(channels)} (track {titles})"
    lookup = note_lookup(kit)
    channels = [int(c) for c in np.unique(song.channels)
                if _looks_like_drums(song, song.channels == c, lookup)]
    if channels:
        return channels, f"{_channel_list(channels)} (drum-like notes)"
    return [], "no drum channel (no channel 10, no drum track, no drum-like notes)"


def _looks_like_drums(song: MidiNotes, on: np.ndarray, lookup: np.ndarray) -> bool:
    voices = lookup[song.notes[on]]
    return bool((voices >= 0).mean() >= MAPPED_SHARE
                and len(np.unique(voices[voices >= 0])) >= 2
                and np.median(song.durations[on]) <= TRIGGER_BEATS)


def _channel_list(channels: list[int]) -> str:
    return ("channel " if len(channels) == 1 else "channels ") + ", ".join(map(str, channels))


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

    def looped(self, song: MidiNotes, grid: Grid) -> "tuple[Hits, int] | None":
        """As one window when ``song`` is a loop (see the module): the hits, repeated and
        wrapped, and the loop's bars; None for a file that is not one."""
        half_step = 0.5 / grid.steps_per_beat
        length = song.length
        bars = song.bars(until=length - half_step) if length > half_step else []
        if (not bars or length > grid.beats or grid.bars % len(bars)
                or not all(bar.fits(grid) for bar in bars)
                or abs(sum(bar.beats for bar in bars) - length) > 1e-9):
            return None
        times = grid.bars // len(bars)
        beats = np.concatenate([self.beats + length * i for i in range(times)])
        beats = np.where(beats >= grid.beats - half_step, beats - grid.beats, beats)
        order = np.argsort(beats, kind="stable")
        return Hits(beats[order], np.tile(self.voices, times)[order],
                    np.tile(self.velocities, times)[order]), len(bars)

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
