"""Capture: save what is playing as a MIDI file, the current loop, the last N bars or the
coming N bars.

What is saved is what the sequencer was given to play: the installed schedule's hits (above
the threshold, unmuted, at the velocity sent, with the microtiming amount and swing applied,
clipped to the pattern format's half step either side), in the kit's output notes. Voices
the drum machine has no sound for are kept: the file is in the kit's terms, not the machine's.

For "the last N bars" a ring holds, per bar, the cells that actually played in it. The loop
is ``grid.bars`` bars long, so bar k of the session plays part (k - start) mod ``grid.bars`` of
the pattern. When the pattern changes mid-bar (a fader sweep), the new pattern's cells replace
the old ones from the step on which the sequencer starts playing it; only a change in the last
step of a bar, after the next bar's step 0 was queued, is counted one step early. Only whole
bars enter the ring: the first bar after the transport starts (or joins a Link session
mid-bar) is the next whole one, and the bar playing when a capture is asked for is left out.

"The coming N bars" are those from the next bar line on as the sequencer will play them if
nothing changes: each step decided as it will be (conditions, chances rolled from the seed,
fill bars), so a phrase with its variations and fills can be seen and kept before it plays.

Files go to the capture directory as ``YYYYmmdd-HHMMSS-pattern.mid``, ``...-N-bars.mid`` or
``...-N-bars-coming.mid``,
written atomically and never over an existing file (a ``-2``, ``-3`` ... suffix instead).
An allowed sender could otherwise fill the disk (128 files in 1.7 s were seen), so captures
are limited to ``per_minute`` in any 60 s and the folder to ``quota_bytes`` in all (config
``limits.captures_per_minute`` and ``limits.captures_bytes``); a capture past either is
refused with a one-line reason naming the limit.

Every capture records what plays it again: a text event ``rvaed model: NAME`` and one
``rvaed recall: x=.. y=.. seed=.. ...`` with every performance parameter of the table (those
of the clock aside: the tempo is the file's own), as its OSC feedback would show them.
"""

import asyncio
import contextlib
import dataclasses
import io
import logging
import math
import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from rvaed.control.hub import Hub
from rvaed.control.osc import Route, numbers
from rvaed.core.atomic import write_new
from rvaed.core.errors import RvaedError
from rvaed.core.names import shown
from rvaed.core.parameters import CLOCK
from rvaed.core.pattern import MAX_BARS, Grid, Hit, Pattern
from rvaed.core.patternfile import pattern_midi
from rvaed.core.state import PARAMETERS
from rvaed.engine.clock import next_bar
from rvaed.engine.schedule import MAX_PULL_STEPS

log = logging.getLogger(__name__)

CHECK = 0.1  # seconds between checks for a bar line (a tempo change moves the next one)
PER_MINUTE = 20  # captures in any 60 s (config limits.captures_per_minute)
QUOTA_BYTES = 256 << 20  # the captures folder in all (config limits.captures_bytes)


MODEL_TEXT = "rvaed model: "
RECALL_TEXT = "rvaed recall: "


def recall_texts(performance: Hub) -> tuple[str, str]:
    """The text events naming the model and the settings that play a capture again."""
    state = performance.state
    settings = " ".join(f"{name}={row.outward(getattr(state, name)):g}"
                        for name, row in PARAMETERS.items() if row.invalidates != CLOCK)
    return MODEL_TEXT + performance.decoder.manifest.name, RECALL_TEXT + settings


def played_array(schedule, voices: int) -> np.ndarray:
    """The (3, voices, steps) cells a schedule plays: onsets 1, velocities as sent, offsets
    (microtiming and swing, in half steps) as heard."""
    grid = schedule.grid
    hits = [Hit(e.voice, e.step, e.velocity, 2.0 * e.shift * grid.steps_per_beat)
            for e in schedule.events]
    return Pattern.from_hits(hits, voices, grid.steps).to_array()


def coming_array(performance: Hub, bars: int) -> np.ndarray:
    """The (3, voices, steps) cells of the coming ``bars`` bars from the next bar line."""
    grid = performance.grid
    hits = [Hit(e.voice, column, e.velocity, 2.0 * e.shift * grid.steps_per_beat)
            for column, events in enumerate(performance.coming(bars)[1]) for e in events]
    return Pattern.from_hits(hits, performance.decoder.kit.size,
                             bars * grid.steps_per_bar).to_array()


class Capture:
    """Follows one `Performance` bar by bar and writes captures into ``directory``."""

    def __init__(self, performance: Hub, directory: str | Path, *,
                 max_bars: int = MAX_BARS, per_minute: int = PER_MINUTE,
                 quota_bytes: int = QUOTA_BYTES) -> None:
        self.performance = performance
        self.directory = Path(directory)
        self.max_bars = max_bars
        self.per_minute = per_minute
        self.quota_bytes = quota_bytes
        self._recent: deque[float] = deque()  # when the captures of the last minute began
        self.bars: deque[np.ndarray] = deque(maxlen=max_bars)  # (3, voices, steps per bar)
        self._bar: float | None = None  # the bar line of the bar being filled
        self._cells: np.ndarray | None = None
        self._played: tuple[object, np.ndarray] | None = None  # (schedule, its cells)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.performance.listeners.append(self._changed)
        self._task = asyncio.get_running_loop().create_task(self._follow_bars())

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.performance.listeners.remove(self._changed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the ring ------------------------------------------------------------------------------

    @property
    def grid(self) -> Grid:
        return self.performance.grid

    def _schedule_cells(self) -> np.ndarray:
        """The current schedule's played cells (computed once per installed schedule)."""
        schedule = self.performance.schedule
        if self._played is None or self._played[0] is not schedule:
            voices = self.performance.decoder.kit.size
            cells = (played_array(schedule, voices) if schedule is not None
                     else np.zeros((3, voices, self.grid.steps), dtype=np.float32))
            self._played = (schedule, cells)
        return self._played[1]

    def _fill(self, from_step: int) -> None:
        """Put the current schedule's cells into the bar being filled, from ``from_step``."""
        grid = self.grid
        start_beat = self.performance.clock.timeline().start_beat
        first = round((self._bar - start_beat) / grid.beats_per_bar) % grid.bars  # type: ignore[operator]
        first *= grid.steps_per_bar
        cells = self._schedule_cells()
        self._cells[:, :, from_step:] = cells[:, :, first + from_step:  # type: ignore[index]
                                              first + grid.steps_per_bar]

    def _catch_up(self, beat: float) -> None:
        """Close every bar that ended before ``beat`` and begin the one ``beat`` is in."""
        clock, bar_beats = self.performance.clock, self.grid.beats_per_bar
        if not clock.playing:
            self._bar = self._cells = None
            return
        if self._bar is None or beat < self._bar or beat >= self._bar + self.max_bars * bar_beats:
            # a start, a restart, a jump or a long stall: wait for the next whole bar
            self._bar = max(next_bar(beat, bar_beats), clock.timeline().start_beat)
            self._cells = None
        cells = self._cells
        if cells is None:
            if beat < self._bar:
                return
            cells = self._begin_bar()
        while beat >= self._bar + bar_beats:
            self.bars.append(cells)
            self._bar += bar_beats
            cells = self._begin_bar()

    def _begin_bar(self) -> np.ndarray:
        """Start filling a new bar; its cells."""
        shape = (3, self.performance.decoder.kit.size, self.grid.steps_per_bar)
        if self.bars and self.bars[-1].shape != shape:  # another model's kit or grid
            self.bars.clear()
        self._cells = cells = np.zeros(shape, dtype=np.float32)
        self._fill(0)
        return cells

    def _changed(self, performance: Hub) -> None:
        """A new schedule was installed: it plays from the first step the sequencer has not
        queued yet, and it queues each step up to ``MAX_PULL_STEPS`` before it is due."""
        beat = performance.clock.beat_at(performance.clock.now())
        self._catch_up(beat)
        if self._cells is not None and self._bar is not None and beat >= self._bar:
            step = math.ceil((beat - self._bar) * self.grid.steps_per_beat + MAX_PULL_STEPS)
            if step < self.grid.steps_per_bar:
                self._fill(step)

    async def _follow_bars(self) -> None:
        clock = self.performance.clock
        while True:
            now = clock.now()
            beat = clock.beat_at(now)
            self._catch_up(beat)
            target = next_bar(beat, self.grid.beats_per_bar)
            until = clock.time_at(target) - now if target > beat else 0.0
            await asyncio.sleep(min(CHECK, max(0.001, until)))

    # -- saving ------------------------------------------------------------------------------

    async def capture(self, bars: int | None = None, coming: bool = False) -> Path:
        """Save the current loop (``bars`` None), the last ``bars`` whole bars played (fewer
        when fewer have played) or, ``coming``, the coming ``bars``; the written file's path.
        RvaedError when nothing can be, or a limit refuses it."""
        self.admit()
        return await self._capture_admitted(bars, coming)

    async def _capture_admitted(self, bars: int | None, coming: bool = False) -> Path:
        grid = self.grid
        if bars is None:
            cells, label = self._schedule_cells(), "pattern"
        elif isinstance(bars, bool) or not isinstance(bars, int) or \
                not 1 <= bars <= self.max_bars:
            raise RvaedError(f"capture: expected 1-{self.max_bars} bars, got {bars!r}")
        elif coming:
            cells, label = coming_array(self.performance, bars), f"{bars}-bars-coming"
            grid = dataclasses.replace(grid, bars=bars)
        else:
            self._catch_up(self.performance.clock.beat_at(self.performance.clock.now()))
            if not self.bars:
                raise RvaedError("capture: no whole bar has played yet")
            taken = list(self.bars)[-bars:]
            cells, label = np.concatenate(taken, axis=2), f"{len(taken)}-bars"
            grid = dataclasses.replace(grid, bars=len(taken))
        pattern = Pattern.from_array(cells)
        tempo = self.performance.clock.tempo
        kit = self.performance.decoder.kit
        texts = recall_texts(self.performance)
        path = await asyncio.to_thread(_save_new, pattern, self.directory, label, kit, grid,
                                       tempo, self.quota_bytes, texts)
        log.info("capture: saved %s", path)
        return path

    def admit(self) -> None:
        """Count one capture against ``per_minute``; RvaedError when the minute is full."""
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        if len(self._recent) >= self.per_minute:
            raise RvaedError(f"capture refused: {len(self._recent)} in the last minute, the "
                             f"limit (limits.captures_per_minute) is {self.per_minute}")
        self._recent.append(now)

    def _osc(self, sender: tuple, args: tuple, at: int) -> None:
        """``/rvaed/capture [bars]`` (see `ROUTES`); the result is logged (a flood is refused
        here, through the OSC server's rate-limited log)."""
        self._asked("/rvaed/capture", args, False)

    def _osc_coming(self, sender: tuple, args: tuple, at: int) -> None:
        """``/rvaed/capture/coming [bars]``: the coming phrase (its bars, else the loop's)."""
        self._asked("/rvaed/capture/coming", args or (self.performance.state.phrase or
                                                      self.grid.bars,), True)

    def _asked(self, address: str, args: tuple, coming: bool) -> None:
        count = numbers(address, args, 1)[0] if args else None
        if count is not None and count != int(count):
            raise RvaedError("expected a whole number of bars")
        self.admit()
        asyncio.get_running_loop().create_task(
            self._capture_logged(None if count is None else int(count), coming))

    async def _capture_logged(self, bars: int | None, coming: bool) -> None:
        try:
            await self._capture_admitted(bars, coming)
        except RvaedError as exc:
            log.error("%s", exc)


def _save_new(pattern: Pattern, directory: Path, label: str, kit, grid: Grid,
              tempo: float, quota_bytes: int, texts: tuple[str, ...]) -> Path:
    """Write ``pattern`` (with ``texts``) under a new timestamped name in ``directory``, never
    replacing a file, unless the folder would then hold more than ``quota_bytes``."""
    midi = pattern_midi(pattern, kit, grid, bpm=tempo, texts=texts)
    used = _folder_bytes(directory)
    if used + _midi_bytes(midi) > quota_bytes:
        raise RvaedError(f"capture refused: {shown(directory)} holds {used} bytes, the limit "
                         f"(limits.captures_bytes) is {quota_bytes}: move some captures away")
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}"
    names = (f"{stem if number == 1 else f'{stem}-{number}'}.mid" for number in range(1, 1000))
    try:
        path = write_new(directory, names, lambda file: midi.save(file=file))
    except OSError as exc:
        raise RvaedError(f"{directory}: cannot write captures: {exc.strerror or exc}") from None
    if path is None:
        raise RvaedError(f"{directory}: no free name for {stem}.mid")
    return path


def _folder_bytes(directory: Path) -> int:
    """The bytes of the files directly in ``directory`` (0 when it does not exist yet)."""
    try:
        with os.scandir(directory) as entries:
            return sum(e.stat(follow_symlinks=False).st_size for e in entries
                       if e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):  # the write says what is wrong
        return 0
    except OSError as exc:
        raise RvaedError(f"{shown(directory)}: cannot read: {exc.strerror or exc}") from None


def _midi_bytes(midi) -> int:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.tell()


ROUTES = (Route("/rvaed/capture", "[bars]", "save the current loop, or the last N bars played, "
                "as a MIDI file in the captures folder that names its model and settings (the "
                "seed too)", Capture._osc, files=True),
          Route("/rvaed/capture/coming", "[bars]", "save the coming N bars (default: a phrase, "
                "or the loop) from the next bar line, as they will play: conditions, chances "
                "and fills decided", Capture._osc_coming, files=True))
