"""Note-ons -> cells: the one rule by which hits become a (3, voices, steps) window.

Training, pattern files and find-my-groove all read hits through here, so a file reads the
same wherever it comes from (nearest step, offset in half steps, the loudest hit of a cell).
"""

from dataclasses import dataclass

import numpy as np

from rvaed.core.kit import Kit
from rvaed.core.midifile import MidiNotes
from rvaed.core.pattern import OFFSET_MAX, Grid


def note_lookup(kit: Kit) -> np.ndarray:
    """An array note -> voice index, -1 where the kit maps nothing."""
    return np.array([-1 if (v := kit.voice_of(n)) is None else v for n in range(128)],
                    dtype=np.int64)


def channel_mask(song: MidiNotes, channel: int | None) -> np.ndarray:
    """Which note-ons are on ``channel`` (all of them for None)."""
    if channel is None:
        return np.ones(len(song.notes), dtype=bool)
    return song.channels == channel


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
