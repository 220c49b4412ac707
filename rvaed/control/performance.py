"""The performance: owns the state, turns each change into a new installed pattern.

Everything here runs on the asyncio loop. A change marks what it invalidates (the decode, or
only the schedule) in a flag and remembers when the oldest not-yet-installed change arrived;
one update is then queued with ``call_soon``. However many changes arrive before it runs (a
fader flood, a drained socket), the update decodes once, with the newest values, so decoding
can never fall behind the controls: a flag and the state itself are the latest-value slot,
there is no queue to grow. The update composes the pattern (frozen voices keep their captured
hits), builds the schedule and installs it in the sequencer (a lock-free swap), then records
the control-to-installed latency.

Per-bar noise and preset transitions are asyncio tasks that move the same state. A phrase's
fill bar is made (a second, denser schedule: several times the cost of the loop's) only from
a bar before it until it has played, so a fader move between fills installs as fast as
without phrases.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rvaed.core import parameters
from rvaed.core.drummachine import DrumMachine
from rvaed.core.errors import RvaedError
from rvaed.core.pattern import ONSETS, Pattern
from rvaed.core.state import (
    CHANCE,
    CONDITION,
    DENSITY,
    NOTE,
    PARAMETERS,
    PerformanceState,
    Transition,
    preset_slot,
)
from rvaed.engine.clock import Clock
from rvaed.engine.schedule import Event, Playback, Schedule, build_schedule, roll
from rvaed.engine.sequencer import Sequencer
from rvaed.model.latent import EXPLORE, LatentRegion
from rvaed.model.runtime import Decoder
from rvaed.model.table import end_builds

log = logging.getLogger(__name__)

TABLE_SETTLE = 1.0  # seconds a decoder plays before its table is built

DECODE, SCHEDULE = 1, 2
PATTERN_FIELDS = {name for name, row in PARAMETERS.items()
                  if row.invalidates == parameters.DECODE}
PLAYBACK_FIELDS = {name for name, row in PARAMETERS.items()
                   if row.invalidates == parameters.SCHEDULE}
# the density, chance, note and condition rows go as one per-voice tuple each
PLAYBACK_VALUES = PLAYBACK_FIELDS - set(DENSITY) - set(CHANCE) - set(NOTE) - set(CONDITION)
TRANSITION_STEP = 0.02  # seconds between x/y updates of a preset glide
NOISE_LEAD = 0.05  # seconds before the bar at which the new jitter is installed
FILL_AHEAD = 1.25  # bars: a phrase's fill is made from this far ahead of its bar (checked
# before every bar, so a bar and a quarter to spare)


class LatencyLog:
    """The last ``size`` latencies (ns) in a fixed ring: memory stays flat however long."""

    def __init__(self, size: int = 8192) -> None:
        self._values = np.zeros(size, dtype=np.int64)
        self.count = 0

    def record(self, nanoseconds: int) -> None:
        self._values[self.count % len(self._values)] = nanoseconds
        self.count += 1

    def recent(self) -> np.ndarray:
        """The stored latencies in ns (at most ``size``, oldest first is not guaranteed)."""
        return self._values[:min(self.count, len(self._values))].copy()

    def clear(self) -> None:
        self.count = 0

    def summary(self) -> dict:
        """p50/p99/max in milliseconds over the stored latencies."""
        values = self.recent() / 1e6
        if not len(values):
            return {"count": 0}
        return {"count": len(values), "p50_ms": float(np.percentile(values, 50)),
                "p99_ms": float(np.percentile(values, 99)), "max_ms": float(values.max())}


class Performance:
    """The single owner of the performance state and of what the sequencer plays."""

    def __init__(self, decoder: Decoder, sequencer: Sequencer, drum_machine: DrumMachine,
                 clock: Clock, *,
                 state: PerformanceState | None = None) -> None:
        self.decoder = decoder
        self.sequencer = sequencer
        self.drum_machine = drum_machine
        self.clock = clock
        self.grid = decoder.grid
        self.state = state or PerformanceState(voices=decoder.kit.size)
        self.state.tempo = clock.tempo
        self.state.playing = clock.playing
        self.state.link = clock.link
        self.latency = LatencyLog()
        self.changes = 0
        self.decodes = 0
        self.installs = 0
        self.listeners: list[Callable[[Performance], None]] = []
        self.pattern: Pattern = Pattern.empty(decoder.kit.size, self.grid.steps)
        self.schedule: Schedule | None = None
        self._decoded = self.pattern
        self._fill_decoded: Pattern | None = None  # where the fill comes from (`fill_from`):
        # found again before every bar while a fill is near, never on a control's path
        self._playback_values: dict[str, Any] = {}
        self._current_playback = Playback()
        self._frozen: dict[int, np.ndarray] = {}
        self._jitter = (0.0, 0.0)
        self._fills_until = 0.0  # host time: schedules are made with their fill until then
        self._pending = 0
        self._since: int | None = None
        self._queued = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._glide: asyncio.Task | None = None
        self._table: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Decode and install the first pattern, then run the per-bar noise."""
        self._loop = asyncio.get_running_loop()
        self._pending = DECODE
        self.flush()
        self._tasks.append(self._loop.create_task(self._per_bar()))
        self._tabulate()

    async def stop(self) -> None:
        for task in [*self._tasks, self._glide, self._table]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        end_builds()  # its thread would hold the loop's exit until the build ended

    # -- changes (all validated by the state; ValueError on bad input) ------------------

    def set(self, name: str, value: object, at: int | None = None) -> None:
        """Set one state field by name (x, y, threshold, ..., tempo, playing, link)."""
        if name in ("x", "y"):
            self._stop_glide()
        if name == "tempo":
            setattr(self.state, name, value)  # by name, as below: the state converts it
            self.clock.set_tempo(self.state.tempo)
            return
        if name == "playing":
            setattr(self.state, name, value)
            self.clock.set_playing(self.state.playing)
            return
        if name == "link":
            setattr(self.state, name, value)
            self.clock.set_enabled(self.state.link)
            self.state.link = self.clock.link  # stays off where Link is unavailable
            return
        if name not in PATTERN_FIELDS | PLAYBACK_FIELDS:
            raise ValueError(f"{name}: not a settable field")
        before = getattr(self.state, name)
        setattr(self.state, name, value)
        if getattr(self.state, name) != before:
            self._changed(DECODE if name in PATTERN_FIELDS else SCHEDULE, at)

    def set_xy(self, x: float, y: float, at: int | None = None) -> None:
        self._stop_glide()
        self._move(x, y, at)

    def set_voice(self, name: str, voice: int, on: object, at: int | None = None) -> None:
        """Mute (``name`` "mutes") or freeze ("freezes") a voice, or release it."""
        if name not in ("mutes", "freezes"):
            raise ValueError(f"{name}: expected mutes or freezes")
        voices = self.state.with_voice(name, voice, on)
        if voices == getattr(self.state, name):
            return
        if name == "freezes":
            self._capture(voice, voice in voices)
        setattr(self.state, name, voices)
        self._changed(SCHEDULE, at)

    def set_step(self, voice: int, step: int, condition: object, at: int | None = None) -> None:
        """Set the condition of ``voice``'s hit on ``step`` (always: its voice's again)."""
        if not 0 <= step < self.grid.steps:
            raise ValueError(f"step: expected 1-{self.grid.steps}, got {step + 1}")
        steps = self.state.with_step(voice, step, condition)
        if steps != self.state.steps:
            self.state.steps = steps
            self._changed(SCHEDULE, at)

    def set_transition(self, amount: float, unit: str = "ms") -> None:
        self.state.transition = Transition(amount, unit)

    def playhead(self) -> tuple[float, int, float]:
        """(beat, steps played by then, speed): the sequencer's, for the page's playhead."""
        return self.sequencer.position()

    def coming(self, bars: int) -> tuple[int, list[tuple[Event, ...]]]:
        """What the coming ``bars`` will play as things stand (`Sequencer.coming`)."""
        return self.sequencer.coming(bars)

    def fill_next_bar(self) -> None:
        """A fill from the next bar line (`fill_bars` long): the schedule is made with its
        fill until it has played, and the sequencer asked to play those bars from it."""
        bar = self.grid.beats_per_bar
        beat = self.clock.beat_at(self.clock.now())
        self._fills_until = self.clock.time_at((math.floor(beat / bar) + 1 +
                                                self.state.fill_bars) * bar)
        self._changed(SCHEDULE, None)
        self.flush()
        self.sequencer.fill_next_bar()

    def store_preset(self, number: object) -> None:
        """Store the current x/y in preset ``number`` (1-8)."""
        slot = preset_slot(number)
        presets, conditions = list(self.state.presets), list(self.state.preset_conditions)
        presets[slot] = (self.state.x, self.state.y)
        conditions[slot] = (tuple(getattr(self.state, name) for name in CONDITION),
                            self.state.steps)
        self.state.presets = tuple(presets)
        self.state.preset_conditions = tuple(conditions)

    def recall_preset(self, number: object, at: int | None = None) -> bool:
        """Glide to preset ``number`` over the transition time, its conditions set at once (a
        preset stored before they were leaves them); False if the slot is empty."""
        slot = preset_slot(number)
        target, conditions = self.state.presets[slot], self.state.preset_conditions[slot]
        if target is None:
            return False
        if conditions is not None:
            for name, value in zip(CONDITION, conditions[0], strict=True):
                self.set(name, value, at)
            if conditions[1] != self.state.steps:
                self.state.steps = conditions[1]
                self._changed(SCHEDULE, at)
        self._stop_glide()
        seconds = self.state.transition.seconds(self.clock.tempo, self.grid.beats_per_bar)
        if seconds <= 0 or self._loop is None:
            self._move(*target, at)
        else:
            self._glide = self._loop.create_task(self._glide_to(target, seconds))
        return True

    def use_decoder(self, decoder: Decoder) -> None:
        """Play another model (same grid and voices) from the next step not yet queued."""
        self.decoder = decoder
        self._fill_decoded = None  # the other model's
        self._changed(DECODE, None)
        self._tabulate()

    def _tabulate(self) -> None:
        if self._loop is not None and (self._table is None or self._table.done()):
            self._table = self._loop.create_task(self._build_tables())

    async def _build_tables(self) -> None:
        """Tabulate the playing decoder once it has played TABLE_SETTLE seconds (a sweep of
        the bending control makes one table, not one per step), off the loop."""
        while self.decoder.table is None:
            decoder = self.decoder
            await asyncio.sleep(TABLE_SETTLE)
            if decoder is not self.decoder:
                continue
            started = time.perf_counter()
            try:
                table = await asyncio.to_thread(decoder.tabulate)
            except RvaedError as exc:
                log.warning("%s; decoding directly", exc)
                return
            grid = table.values.shape[0]
            use = "decoding through it" if table.usable else "not used, decoding directly"
            log.info("decode table of %s: %d x %d, %.1f MB, built in %.1f s, onsets agree "
                     "%.3f %% with direct decoding: %s", decoder.manifest.name, grid, grid,
                     table.nbytes / 1e6, time.perf_counter() - started, 100 * table.agreement,
                     use)
            if not table.usable:
                return

    def use_drum_machine(self, drum_machine: DrumMachine) -> None:
        """Schedule on another drum machine's notes (the first output's, after a SIGHUP)."""
        self.drum_machine = drum_machine
        self._changed(SCHEDULE, None)

    # -- the update ------------------------------------------------------------------------

    def flush(self) -> None:
        """Apply pending changes now: at most one decode, one schedule, one install."""
        self._queued = False
        pending, self._pending = self._pending, 0
        if not pending:
            return
        if pending & DECODE:
            self._decoded = self._decode()
            self.decodes += 1
        self.pattern = self._compose(self._decoded)
        playback = self._playback()
        fill = None
        if playback.fills and self.state.fill_from > 0:
            if self._fill_decoded is None:  # the first: later ones come with the bars
                self._fill_decoded = self._busiest_near(playback)
            fill = self._compose(self._fill_decoded)
        self.schedule = build_schedule(self.pattern, self.grid, playback, self.drum_machine,
                                       fill)
        self.sequencer.install(self.schedule)
        self.installs += 1
        if self._since is not None:
            self.latency.record(time.perf_counter_ns() - self._since)
            self._since = None
        for listener in self.listeners:
            listener(self)

    def _playback(self) -> Playback:
        """How the state says to play, remade only when one of its values changed (making
        and validating one is a measurable part of a fader move's path)."""
        state = self.state
        values: dict[str, Any] = {**{name: getattr(state, name) for name in PLAYBACK_VALUES},
                                  "density": tuple(getattr(state, name) for name in DENSITY),
                                  "chance": tuple(getattr(state, name) for name in CHANCE),
                                  "notes": tuple(getattr(state, name) for name in NOTE),
                                  "conditions": tuple(getattr(state, name)
                                                      for name in CONDITION),
                                  "steps": state.steps,
                                  "fills": self._fill_near(),
                                  "mutes": state.mutes}
        if values != self._playback_values:
            self._playback_values = values
            self._current_playback = Playback(**values)
        return self._current_playback

    def _fill_near(self) -> bool:
        """Whether a fill bar may be queued before the next bar's check (`_per_bar`): one
        asked for, or a phrase's within the next `FILL_AHEAD` bars; stopped, always (play
        may begin on one)."""
        if self.clock.now() < self._fills_until or not self.clock.playing:
            return True
        grid, phrase = self.grid, self.state.phrase * self.grid.steps_per_bar
        if not phrase:
            return False
        beat, step, speed = self.sequencer.position()
        now = step + (self.clock.beat_at(self.clock.now()) - beat) * grid.steps_per_beat * speed
        ahead = now + FILL_AHEAD * grid.steps_per_bar * max(speed, 1.0)
        fill = min(self.state.fill_bars, self.state.phrase) * grid.steps_per_bar
        return math.floor(now / phrase) * phrase + phrase - fill <= ahead

    def thresholds(self) -> np.ndarray:
        """The onset probability above which each voice plays now (threshold and density)."""
        return self._playback().thresholds(self.pattern.voices)

    def _changed(self, what: int, at: int | None) -> None:
        self.changes += 1
        self._pending |= what
        if self._since is None:
            self._since = time.perf_counter_ns() if at is None else at
        if self._loop is None:
            self.flush()
        elif not self._queued:
            self._queued = True
            self._loop.call_soon(self.flush)

    def _move(self, x: float, y: float, at: int | None) -> None:
        before = (self.state.x, self.state.y)
        self.state.x = x
        self.state.y = y
        if (self.state.x, self.state.y) != before:
            self._changed(DECODE, at)

    @property
    def region(self) -> LatentRegion:
        """The latent rectangle the pad spans now: the model's box, or the explore range."""
        return EXPLORE if self.state.explore else self.decoder.manifest.latent

    def _decode(self, x: float | None = None, y: float | None = None) -> Pattern:
        """The pattern at pad point (x, y) (default: the state's), with the bar's jitter."""
        latent = self.decoder.manifest.latent  # noise moves within the data's box
        zx, zy = self.region.z_of(self.state.x if x is None else x,
                                  self.state.y if y is None else y)
        jx, jy = self._jitter
        half_x = (latent.high[0] - latent.low[0]) / 2
        half_y = (latent.high[1] - latent.low[1]) / 2
        return self.decoder.decode(zx + jx * half_x, zy + jy * half_y)

    def _busiest_near(self, playback: Playback) -> Pattern:
        """Where a fill comes from: of 8 points `fill_from` around the playing one (on the
        pad, kept on it), the one with the most hits at the fill's thresholds; the playing
        point when none has more. Found before every bar while a fill is near (9 decodes: a
        millisecond on a fader's path), so it follows the pad a bar behind."""
        reach, x, y = self.state.fill_from, self.state.x, self.state.y
        thresholds = playback.busier().thresholds(self.pattern.voices)
        best, most = self._decoded, self._decoded.count(thresholds)
        for angle in np.arange(8) * (math.pi / 4):
            pattern = self._decode(min(1.0, max(0.0, x + reach * math.cos(angle))),
                                   min(1.0, max(0.0, y + reach * math.sin(angle))))
            count = pattern.count(thresholds)
            if count > most:
                best, most = pattern, count
        return best

    def _compose(self, decoded: Pattern) -> Pattern:
        """``decoded`` with every frozen voice's captured row put back."""
        if not self._frozen:
            return decoded
        array = decoded.to_array()
        for voice, rows in self._frozen.items():
            array[:, voice] = rows
        return Pattern.from_array(array)

    def _capture(self, voice: int, freeze: bool) -> None:
        """Freeze: keep the voice's hits as they play now (onsets made certain or silent)."""
        if not freeze:
            self._frozen.pop(voice, None)
            return
        rows = self.pattern.to_array()[:, voice].copy()
        rows[ONSETS] = (rows[ONSETS] > self.thresholds()[voice]).astype(np.float32)
        self._frozen[voice] = rows

    # -- tasks on the loop -----------------------------------------------------------------

    def _stop_glide(self) -> None:
        if self._glide is not None and self._glide is not asyncio.current_task():
            self._glide.cancel()
        self._glide = None

    async def _glide_to(self, target: tuple[float, float], seconds: float) -> None:
        """Move x/y linearly to ``target`` in ``seconds`` (each step is a normal change)."""
        start = (self.state.x, self.state.y)
        began = time.monotonic()
        while True:
            fraction = min(1.0, (time.monotonic() - began) / seconds)
            self._move(start[0] + (target[0] - start[0]) * fraction,
                       start[1] + (target[1] - start[1]) * fraction, None)
            if fraction >= 1.0:
                return
            await asyncio.sleep(TRANSITION_STEP)

    async def _per_bar(self) -> None:
        """Shortly before every bar: draw a new z jitter while noise is on and playing, and
        make the schedule with its fill, or without, as a fill bar comes near or has passed."""
        while True:
            bar = await self._next_bar()
            noise, seed = self.state.noise, self.state.seed
            jitter = ((noise * (2 * roll(seed, bar, -1, 0) - 1),
                       noise * (2 * roll(seed, bar, -1, 1) - 1))
                      if noise > 0 and self.clock.playing else (0.0, 0.0))
            if jitter != self._jitter:
                self._jitter = jitter
                self._changed(DECODE, None)
            near = self._fill_near()
            found = self._busiest_near(self._playback()) if (
                near and self.state.fill_from > 0) else self._fill_decoded
            if found != self._fill_decoded or near != self._current_playback.fills:
                self._fill_decoded = found
                self._changed(SCHEDULE, None)
            await asyncio.sleep(NOISE_LEAD * 2)

    async def _next_bar(self) -> int:
        """Sleep until `NOISE_LEAD` before the next bar; that bar's number from the start of
        play (the same bars roll the same noise after a restart)."""
        bar = self.grid.beats_per_bar
        now = self.clock.now()
        line = self.clock.timeline()
        coming = math.floor(line.beat_at(now) / bar) + 1
        await asyncio.sleep(max(0.0, line.time_at(coming * bar) - now - NOISE_LEAD))
        return coming - math.floor(line.start_beat / bar)
