"""Find my groove: play a pattern (or send a MIDI file) and the pad jumps to where the model
encodes it.

Live: note-ons from the groove input are placed on the clock's beats as they arrive. When the
player pauses for a whole bar, the last ``grid.bars`` bars of what was played (bars of the
session's bar lines, from the first played bar when fewer were played) are quantized exactly as
training windows are (`rvaed.core.windows.Hits.window`: nearest step, microtiming offset,
loudest hit per cell), encoded by the model, and x/y moves there. A note played a little before a
bar line is step 0 of the next bar, so the pause is confirmed half a step after the bar line.

From a file: `load_pattern` (the file's first ``grid.bars`` bars) -> encode -> x/y. Over OSC
the path is checked on the loop, the read and parse run in the shared file worker
(`rvaed.core.fileworker`: a regular file only, within the size and time limits, never on the
loop nor under its GIL), and the jump follows when the pattern is back.

The port is handled by `rvaed.control.midiin.MidiControlInput` (found by part of its name,
waited for, reconnected, system messages dropped, a bounded buffer): `GrooveInput` is the
receiving end it routes messages to, in place of the controller mappings.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rvaed.control.hub import Hub
from rvaed.control.midiin import MidiControlInput
from rvaed.control.osc import Route
from rvaed.core.errors import RvaedError
from rvaed.core.fileworker import WORKER, FileWorker
from rvaed.core.midi import NOTE_ON
from rvaed.core.names import shown
from rvaed.core.pattern import Pattern
from rvaed.core.patternfile import load_pattern
from rvaed.core.windows import Hits, note_lookup

log = logging.getLogger(__name__)

MIN_ONSETS = 4  # as few as a training window may have; fewer is a stray touch, not a groove
MAX_NOTES = 4096  # note-ons kept (a 2-bar window of 32nd-note rolls on every voice fits)
POLL = 0.02  # seconds between pause checks while notes are waiting


def jump_to(performance: Hub, pattern: Pattern) -> tuple[float, float]:
    """Move the pad to where the model encodes ``pattern``; the new x/y."""
    x, y = performance.decoder.encode_xy(pattern, performance.region)
    performance.set_xy(x, y)
    log.info("groove: x/y -> %.3f %.3f", x, y)
    return x, y


def groove_from_file(performance: Hub, path: str | Path, channel: int | None = None
                     ) -> tuple[float, float]:
    """Jump to a MIDI file's first loop (read with the model's kit and grid); RvaedError for a
    file that cannot be read."""
    decoder = performance.decoder
    return jump_to(performance, load_pattern(path, decoder.kit, decoder.grid, channel))


class GrooveInput:
    """Notes played into a MIDI input, turned into a jump when the player pauses for a bar.

    ``port``: part of the input port's name (config ``midi.groove_input``); ``channel``:
    1-16 or None for all.
    """

    def __init__(self, performance: Hub, port: str, *, api: str = "auto",
                 channel: int | None = None, min_onsets: int = MIN_ONSETS,
                 poll: float = 1.0) -> None:
        self.performance = performance
        self.channel = channel
        self.min_onsets = min_onsets
        self.jumps = 0
        self.last: Pattern | None = None  # the pattern of the last jump
        self._lookup = note_lookup(performance.decoder.kit)
        self._notes: deque[tuple[float, int, int]] = deque(maxlen=MAX_NOTES)  # beat, voice, vel
        self._waiting = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.input = MidiControlInput(self, api=api, default_port=port,
                                      client_name="rvaed-groove", poll=poll)

    # -- what MidiControlInput needs from its receiver --------------------------------------

    ports = (None,)  # one input: the default port

    def midi(self, port: str | None, message: list[int], at: int) -> bool:
        """One message (stamped with perf_counter_ns on arrival); note-ons are kept."""
        if len(message) < 3 or message[0] & 0xF0 != NOTE_ON or not message[2]:
            return False
        if self.channel is not None and (message[0] & 0x0F) + 1 != self.channel:
            return False
        clock = self.performance.clock
        arrival = clock.now() - (time.perf_counter_ns() - at) / 1e9
        return self.add(clock.beat_at(arrival), message[1], message[2])

    def add(self, beat: float, note: int, velocity: int) -> bool:
        """A note-on played at ``beat``; False for a note the kit does not map."""
        voice = int(self._lookup[note])
        if voice < 0:
            return False
        self._notes.append((beat, voice, velocity))
        self._waiting.set()
        return True

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.input.start()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.input.close()

    async def _watch(self) -> None:
        while True:
            await self._waiting.wait()
            clock = self.performance.clock
            pattern = self.take(clock.beat_at(clock.now()))
            if pattern is not None:
                jump_to(self.performance, pattern)
                self.last, self.jumps = pattern, self.jumps + 1
            if not self._notes:
                self._waiting.clear()
            await asyncio.sleep(POLL)

    def take(self, beat: float) -> Pattern | None:
        """The played window once a whole bar has passed without notes at ``beat`` (the notes
        are then used up); None while the player is still playing or too little was played."""
        if not self._notes:
            return None
        grid = self.performance.grid
        bar_beats, half_step = grid.beats_per_bar, 0.5 / grid.steps_per_beat
        last_bar = math.floor((self._notes[-1][0] + half_step) / bar_beats)
        if beat < (last_bar + 2) * bar_beats + half_step:
            return None
        notes = np.array(self._notes, dtype=np.float64)
        self._notes.clear()
        first_bar = math.floor((notes[0, 0] + half_step) / bar_beats)
        start = max(last_bar + 1 - grid.bars, first_bar) * bar_beats
        order = np.argsort(notes[:, 0], kind="stable")
        hits = Hits(notes[order, 0], notes[order, 1].astype(np.int64),
                    notes[order, 2].astype(np.uint8))
        window = hits.window(float(start), self.performance.decoder.kit.size, grid)
        onsets = int(window[0].sum())
        if onsets < self.min_onsets:
            log.info("groove: %d note(s) played: at least %d are needed", onsets,
                     self.min_onsets)
            return None
        return Pattern.from_array(window)


class PathPolicy(Protocol):
    """What groove needs of the daemon's file policy: a user's path checked and resolved."""

    def resolve(self, user_path: str, base: Path, must_exist: bool = True) -> Path: ...


@dataclass(frozen=True)
class GrooveFiles:
    """Where ``/rvaed/groove PATH`` finds its MIDI file: PATH relative to ``base`` (or
    absolute), inside the data directories of ``policy`` (a `rvaed.daemon.policy.FilePolicy`)."""

    performance: Hub
    policy: PathPolicy
    base: Path
    worker: FileWorker = WORKER

    def _osc(self, sender: tuple, args: tuple, at: int) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise RvaedError("expected one argument, a MIDI file's path")
        path = self.policy.resolve(args[0], self.base)
        asyncio.get_running_loop().create_task(self.jump_to_file(path))

    async def jump_to_file(self, path: Path) -> tuple[float, float] | None:
        """Read ``path`` in the worker, then jump; a file that fails is logged in one line."""
        decoder = self.performance.decoder
        try:
            pattern = await self.worker.run(shown(path), load_pattern, path, decoder.kit,
                                            decoder.grid)
        except RvaedError as exc:
            log.error("/rvaed/groove: %s", exc)
            return None
        if self.performance.decoder.kit != decoder.kit:  # the model changed meanwhile
            log.warning("/rvaed/groove: %s read for a model no longer playing", shown(path))
            return None
        return jump_to(self.performance, pattern)


ROUTES = (Route("/rvaed/groove", "PATH", "\"find my groove\": jump to where the model places "
                "this MIDI file's first loop", GrooveFiles._osc, files=True),)
