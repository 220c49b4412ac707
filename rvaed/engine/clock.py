"""The musical clock: host time <-> beats, tempo, transport, and the internal clock.

Host time is the Ableton Link clock domain, so that beats from Link and from the internal clock
are comparable and a sequencer can sleep on the same clock it schedules with: on Linux that is
CLOCK_MONOTONIC_RAW (not `time.monotonic`, which is slewed by NTP), elsewhere the monotonic
clock Link uses there.

The sequencer never asks the clock twice for one decision: it takes a `Timeline`, an immutable
straight line beat = f(time) valid until the tempo changes, and a loop anchor (`start_beat`):
the beat at which the session started playing, on a bar line, where the pattern's step 0 falls.
"""

import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from rvaed.core.state import PARAMETERS

log = logging.getLogger(__name__)

TEMPO = PARAMETERS["tempo"]
MIN_TEMPO, MAX_TEMPO = TEMPO.low, TEMPO.high  # Ableton Link's range
DEFAULT_TEMPO, DEFAULT_QUANTUM = float(TEMPO.default), 4.0
START_LEAD = 0.02  # seconds between asking to play and the first beat, so it is not late
# A start seen this late after its first step is still played from step 0, that late (Link's
# test plan allows onsets 3 ms off the session's pulse); later, step 0 waits for the next bar.
LATE_START = 0.003

if sys.platform.startswith("linux"):
    def now() -> float:
        """Host time in seconds on Link's clock (CLOCK_MONOTONIC_RAW on Linux)."""
        return time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
else:
    now = time.monotonic


def clamp_tempo(bpm: float) -> float:
    """Tempo limited to Link's range (MIN_TEMPO..MAX_TEMPO BPM); a non-finite value is the
    default tempo."""
    if not math.isfinite(bpm):
        return DEFAULT_TEMPO
    return min(MAX_TEMPO, max(MIN_TEMPO, float(bpm)))


def next_bar(beat: float, quantum: float) -> float:
    """The first multiple of ``quantum`` at or after ``beat`` (a thousandth of a beat early
    still counts: Link rounds times to microseconds)."""
    return math.ceil((beat - 1e-3) / quantum) * quantum


def checked_quantum(quantum: float) -> float:
    """The quantum (beats per bar for phase alignment) as a float; it must be positive."""
    if not quantum > 0:
        raise ValueError(f"quantum: expected a positive number of beats, got {quantum!r}")
    return float(quantum)


@dataclass(frozen=True)
class Timeline:
    """A snapshot of the clock: beat = beat0 + (t - time0) x tempo / 60 until the next change."""

    time0: float
    beat0: float
    tempo: float
    playing: bool
    start_beat: float  # the beat of the pattern's step 0 of this playing session
    quantum: float

    def beat_at(self, t: float) -> float:
        return self.beat0 + (t - self.time0) * self.tempo / 60.0

    def time_at(self, beat: float) -> float:
        return self.time0 + (beat - self.beat0) * 60.0 / self.tempo


class Clock(Protocol):
    """What the sequencer, the performance state and the CLI need from a clock."""

    @property
    def tempo(self) -> float: ...
    @property
    def quantum(self) -> float: ...
    @property
    def playing(self) -> bool: ...
    @property
    def peers(self) -> int: ...
    @property
    def link(self) -> bool: ...  # whether Ableton Link is on

    @property
    def late_start(self) -> float: ...  # seconds a start may be seen late and still play step 0

    def now(self) -> float: ...
    def timeline(self) -> Timeline: ...
    def beat_at(self, t: float) -> float: ...
    def time_at(self, beat: float) -> float: ...
    def set_tempo(self, bpm: float) -> None: ...
    def set_playing(self, playing: bool) -> None: ...
    def set_enabled(self, on: bool) -> None: ...
    def close(self) -> None: ...


class TimelineClock:
    """Beat/time conversions shared by every clock: they all read through `timeline()`."""

    @property
    def late_start(self) -> float:
        """Seconds a start may be seen late and still play step 0: `LATE_START`."""
        return LATE_START

    def now(self) -> float:
        return now()

    def timeline(self) -> Timeline:
        raise NotImplementedError

    def beat_at(self, t: float) -> float:
        return self.timeline().beat_at(t)

    def time_at(self, beat: float) -> float:
        return self.timeline().time_at(beat)

    def close(self) -> None:
        """Nothing to leave (Link's clock leaves its session)."""


class LineClock(TimelineClock):
    """A clock whose whole state is one `Timeline`, replaced whole under a lock, never
    mutated (a read needs no lock): the internal clock and the MIDI clock follower."""

    peers = 0
    link = False

    def __init__(self, tempo: float = DEFAULT_TEMPO, quantum: float = DEFAULT_QUANTUM) -> None:
        quantum = checked_quantum(quantum)
        self._lock = threading.Lock()
        self._line = Timeline(now(), 0.0, clamp_tempo(tempo), False, 0.0, quantum)

    def timeline(self) -> Timeline:
        return self._line

    @property
    def tempo(self) -> float:
        return self._line.tempo

    @property
    def quantum(self) -> float:
        return self._line.quantum

    @property
    def playing(self) -> bool:
        return self._line.playing


class InternalClock(LineClock):
    """A free-running clock for when Link is off: same interface, no network.

    Tempo changes keep the beat continuous (the line is re-anchored at the moment of change);
    starting to play puts beat 0, a bar line, `START_LEAD` seconds ahead.
    """

    def set_tempo(self, bpm: float) -> None:
        with self._lock:
            line, t = self._line, now()
            self._line = Timeline(t, line.beat_at(t), clamp_tempo(bpm), line.playing,
                                  line.start_beat, line.quantum)

    def set_quantum(self, quantum: float) -> None:
        quantum = checked_quantum(quantum)
        with self._lock:
            line = self._line
            self._line = Timeline(line.time0, line.beat0, line.tempo, line.playing,
                                  line.start_beat, quantum)

    def set_enabled(self, on: bool) -> None:
        """Link cannot be switched on here (no Link binding): say so, play on."""
        if on:
            log.warning("Ableton Link is unavailable here: the internal clock keeps playing")

    def set_playing(self, playing: bool) -> None:
        with self._lock:
            line = self._line
            if playing == line.playing:
                return
            if playing:
                self._line = Timeline(now() + START_LEAD, 0.0, line.tempo, True, 0.0,
                                      line.quantum)
            else:
                t = now()
                self._line = Timeline(t, line.beat_at(t), line.tempo, False, line.start_beat,
                                      line.quantum)
