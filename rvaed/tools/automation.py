"""Latent automation: record the x/y movement in beats and loop it back, a whole number of bars.

The original device drew the pad's path against Live's timeline and replayed it; here the
timeline is the clock's beats (Link's, when Link is on), so a recording loops in time with the
session at any tempo.

- ``record`` arms: recording starts at the next bar line and samples x/y on every tick.
- ``stop`` while recording ends it at the next bar line (the loop is a whole number of bars,
  at most ``MAX_BARS``) and keeps it; ``play`` while recording does the same and loops it
  back from that bar line on, as a looper pedal would (so does reaching ``MAX_BARS``).
- ``play`` with a recording loops it from the next bar line: each tick sets x/y on the
  performance from the curve at (beat - start) mod length, linearly interpolated.
- ``clear`` stops everything and forgets the recording.

A touch on x/y while the automation plays stops the playback (the recording is kept; ``play``
resumes it). "Override until release" was not chosen: an OSC fader or a MIDI CC sends no
release, so the moment to take back over would be a guess that fights the performer's hand.
A touch is any x/y change that did not come from the automation (a controller, a preset
glide, "find my groove").

A recording is plain data (`Automation.to_dict`), so the state file can keep it. One asyncio
task ticks while armed, recording or playing (every ``TICK`` seconds; when playing, every 32nd
note if that is longer), and none runs when idle.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np

from rvaed.control.hub import Hub
from rvaed.control.osc import Handler, Route, numbers
from rvaed.core.pattern import MAX_BARS
from rvaed.engine.clock import next_bar

log = logging.getLogger(__name__)

TICK = 0.015  # seconds between samples while recording, and the shortest playback step
IDLE, ARMED, RECORDING, PLAYING = "idle", "armed", "recording", "playing"
Point = tuple[float, float, float]  # (beat from the loop start, x, y)


@dataclass(frozen=True)
class Automation:
    """A recorded x/y curve: points (beat, x, y) in time order within ``bars`` bars."""

    bars: int
    beats_per_bar: float  # quarter notes: 3 in 6/8, 3.5 in 7/8
    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        bars, beats = self.bars, self.beats_per_bar
        if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
            raise ValueError(f"automation bars: expected a whole number 1-{MAX_BARS}, "
                             f"got {bars!r}")
        if isinstance(beats, bool) or not isinstance(beats, int | float) or \
                not 0.125 <= beats <= 64 or beats * 8 % 1:
            raise ValueError(f"automation beats_per_bar: expected a bar's quarter notes, "
                             f"0.125-64 in eighths of a beat, got {beats!r}")
        if not self.points:
            raise ValueError("automation points: expected at least one (beat, x, y)")
        points = tuple(_point(p, self.length) for p in self.points)
        if any(a[0] > b[0] for a, b in pairwise(points)):
            raise ValueError("automation points: expected beats in time order")
        object.__setattr__(self, "points", points)

    @property
    def length(self) -> float:
        """The loop length in beats."""
        return float(self.bars * self.beats_per_bar)

    @cached_property
    def _curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        beats, xs, ys = (np.array(column, dtype=np.float64) for column in zip(*self.points,
                                                                              strict=True))
        return beats, xs, ys

    def at(self, beat: float) -> tuple[float, float]:
        """x/y at ``beat`` from the loop start (any beat: it wraps), interpolated; the
        curve wraps from the last point back to the first."""
        beats, xs, ys = self._curve
        position = beat % self.length
        return (float(np.interp(position, beats, xs, period=self.length)),
                float(np.interp(position, beats, ys, period=self.length)))

    def to_dict(self) -> dict:
        return {"bars": self.bars, "beats_per_bar": self.beats_per_bar,
                "points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: object) -> "Automation":
        """From `to_dict`'s form (a state file); ValueError saying what is wrong."""
        if not isinstance(data, dict) or not {"bars", "beats_per_bar", "points"} <= set(data):
            raise ValueError("automation: expected an object with bars, beats_per_bar, points")
        points = data["points"]
        if not isinstance(points, list):
            raise ValueError("automation points: expected a list of [beat, x, y]")
        return cls(data["bars"], data["beats_per_bar"], tuple(points))


def _point(value: object, length: float) -> Point:
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection) or len(value) != 3:
        raise ValueError(f"automation point: expected [beat, x, y], got {value!r}")
    beat, x, y = numbers("automation point", tuple(value), 3)
    if not 0.0 <= beat < length:
        raise ValueError(f"automation point: beat {beat} outside the loop (0-{length:g})")
    return beat, min(1.0, max(0.0, x)), min(1.0, max(0.0, y))


def thin(points: list[Point]) -> list[Point]:
    """Drop the inside points of every run of one x/y: a still pad needs two points, not a
    point per tick (the state file stays small, the curve is unchanged)."""
    return [p for i, p in enumerate(points)
            if i in (0, len(points) - 1) or not points[i - 1][1:] == p[1:] == points[i + 1][1:]]


class Automator:
    """Records and plays back the x/y movement of one `Performance`.

    ``listeners`` are called (with this object) whenever ``status`` or ``automation``
    changes, so the daemon can save the state and send feedback.
    """

    def __init__(self, performance: Hub, *, tick: float = TICK, max_bars: int = MAX_BARS) -> None:
        self.performance = performance
        self.tick = tick
        self.max_bars = max_bars
        self.status = IDLE
        self.automation: Automation | None = None
        self.listeners: list[Callable[[Automator], None]] = []
        self._start = 0.0  # the bar line where recording starts / the loop is anchored
        self._end: float | None = None  # the bar line where recording ends
        self._play_after = False
        self._points: list[Point] = []
        self._placed: tuple[float, float] | None = None  # the x/y the automation last set
        self._task: asyncio.Task | None = None

    @property
    def beats_per_bar(self) -> float:
        return self.performance.grid.beats_per_bar

    def _beat(self) -> float:
        clock = self.performance.clock
        return clock.beat_at(clock.now())

    def _next_bar(self) -> float:
        return next_bar(self._beat(), self.beats_per_bar)

    # -- commands --------------------------------------------------------------------------

    def record(self) -> float:
        """Arm: recording starts at the next bar line (returned, in beats)."""
        self._start = self._next_bar()
        self._end, self._play_after, self._points = None, False, []
        self._set_status(ARMED)
        return self._start

    def stop(self) -> None:
        """Disarm, end a recording at the next bar line, or stop playing."""
        if self.status == RECORDING:
            self._finish_at_bar(play_after=False)
        elif self.status != IDLE:
            self._set_status(IDLE)

    def play(self) -> None:
        """Loop the recording from the next bar line (a running or armed recording ends at
        the next bar line after its start, then loops)."""
        if self.status in (ARMED, RECORDING):
            self._finish_at_bar(play_after=True)
            return
        if self.automation is None:
            raise ValueError("automation: nothing recorded to play")
        if self.status != PLAYING:
            self._start, self._placed = self._next_bar(), None
            self._set_status(PLAYING)

    def clear(self) -> None:
        """Stop and forget the recording."""
        self._set_status(IDLE)
        if self.automation is not None:
            self.automation = None
            self._notify()

    def restore(self, automation: Automation | None) -> None:
        """Take a recording from the state file (idle; `play` starts it)."""
        self._set_status(IDLE)
        self.automation = automation

    async def close(self) -> None:
        self._set_status(IDLE)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the task ----------------------------------------------------------------------------

    def _finish_at_bar(self, play_after: bool) -> None:
        self._end = max(self._next_bar(), self._start + self.beats_per_bar)
        self._play_after = play_after

    def _set_status(self, status: str) -> None:
        if status == self.status:
            return
        self.status = status
        log.info("automation: %s", status)
        if status != IDLE and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)

    async def _run(self) -> None:
        while self.status != IDLE:
            self._step(self._beat())
            await asyncio.sleep(self._interval())

    def _interval(self) -> float:
        """Recording samples every tick; playback moves x/y once per 32nd note at most: the
        sequencer takes a pattern per 16th step, so more updates would decode for nothing."""
        if self.status != PLAYING:
            return self.tick
        return max(self.tick, 60.0 / self.performance.clock.tempo / 8)

    def _step(self, beat: float) -> None:
        if self.status == ARMED and beat >= self._start:
            self._set_status(RECORDING)
        if self.status == RECORDING:
            self._record(beat)
        elif self.status == PLAYING and beat >= self._start:
            self._play(beat)

    def _record(self, beat: float) -> None:
        limit = self._start + self.max_bars * self.beats_per_bar
        end = limit if self._end is None else min(self._end, limit)
        if beat < end:
            state = self.performance.state
            self._points.append((beat - self._start, state.x, state.y))
            return
        bars = round((end - self._start) / self.beats_per_bar)
        self.automation = Automation(bars, self.beats_per_bar, tuple(thin(self._points)))
        log.info("automation: recorded %d bar(s), %d points", bars, len(self.automation.points))
        if self._play_after or self._end is None:
            self._start, self._placed = end, None
            self._set_status(PLAYING)
            self._play(beat)
        else:
            self._set_status(IDLE)

    def _play(self, beat: float) -> None:
        state = self.performance.state
        if self._placed is not None and (state.x, state.y) != self._placed:
            log.info("automation: x/y touched, playback stopped")
            self._set_status(IDLE)
            return
        x, y = self.automation.at(beat - self._start)  # type: ignore[union-attr]
        self.performance.set_xy(x, y)
        self._placed = (state.x, state.y)


def _button(address: str, command: Callable[[Automator], object]) -> Handler:
    """An OSC command: no argument, or a button's 1 (its 0, the release, is ignored)."""
    def handler(automator: Automator, sender: tuple, args: tuple, at: int) -> None:
        if not args or numbers(address, args, 1)[0] >= 0.5:
            command(automator)
    return handler


ROUTES = tuple(Route(f"/rvaed/automation/{name}", "[1]", effect,
                     _button(f"/rvaed/automation/{name}", command))
               for name, command, effect in (
                   ("record", Automator.record, "record the x/y movement from the next bar line"),
                   ("play", Automator.play, "loop the recording from the next bar line (a touch "
                    "on x/y stops it)"),
                   ("stop", Automator.stop, "end a recording at the next bar line, or stop"),
                   ("clear", Automator.clear, "stop and forget the recording")))
