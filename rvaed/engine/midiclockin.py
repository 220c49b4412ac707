"""Following an external MIDI clock (24 ppqn): a drum machine or hardware sequencer as master.

The clock's beat is the master's: tick k after Start (or after the Song Position Pointer's
position) is beat k / 24, so rvaed's quarter notes lie on the master's. Each tick is stamped on
arrival (host clock, `rvaed.engine.clock.now`), and the timeline is the least-squares line
through the arrival times of the last 24 ticks (one beat): the slope is the tempo, the line's
value at the newest tick its phase. Why a regression over one beat rather than a PLL/DLL:
with no loop gains to tune it has no overshoot or settling; it weights every tick of the
window alike, so n ticks of jitter sigma give the phase to sigma x sqrt(4 / n) (0.4 sigma
for 24); and a tempo change is fully followed once one beat of ticks at the new tempo has
arrived, which is the most a player will accept. Before two ticks the last known tempo serves.

Start: position 0, playing from the next tick (the MIDI rule: the first clock after Start is
beat 0). Continue: playing from the next tick at the current position. Stop: stopped, the beat
held. Song Position Pointer (16ths since the song start) sets the position of the next tick.
The loop anchor is the song start (beat 0, a bar line), so a pattern's step 0 falls on the
master's bar lines.
"""

from collections import deque

import numpy as np

from rvaed.core.midi import CLOCK, CONTINUE, SONG_POSITION, START, STOP
from rvaed.engine import midiapi
from rvaed.engine.clock import (
    DEFAULT_QUANTUM,
    DEFAULT_TEMPO,
    LineClock,
    Timeline,
    clamp_tempo,
    now,
)

TICKS_PER_BEAT = 24
WINDOW = 24  # ticks in the regression: one beat
# The steady tempo, for a Link session led from here: ticks stamped in JACK periods (5.3 ms at
# 256 frames) give one beat's slope +-0.4 BPM; four beats' +-0.05 (docs/decisions.md).
STEADY_WINDOW = 4 * 24
TICKS_PER_SIXTEENTH = 6  # Song Position Pointer counts 16ths
SILENT = 0.25  # seconds without a tick after which the master is taken as not running


class MidiClockIn(LineClock):
    """A clock following the MIDI clock messages handed to `receive` (`listen` connects a MIDI
    input port to it)."""

    def __init__(self, quantum: float = DEFAULT_QUANTUM, tempo: float = DEFAULT_TEMPO) -> None:
        super().__init__(tempo, quantum)
        self._window: deque[tuple[int, float]] = deque(maxlen=STEADY_WINDOW)
        self._count = 0  # ticks ever received: the regression's x
        self._position = 0  # the song position of the next tick played (ticks since start)
        self._armed = False  # Start/Continue seen: playing from the next tick
        self._port = None

    def listen(self, port: str, api: str = "auto") -> None:
        """Follow the MIDI input port matching ``port`` (part of its name), stamping each
        message on arrival."""
        midi_in = midiapi.open_client(api, "input", "rvaed-clock-in")
        index = midiapi.match_port(midi_in.get_ports(), port)
        if index is None:
            midi_in.delete()
            raise ValueError(f"MIDI clock input: no port matching {port!r}")
        midi_in.ignore_types(sysex=True, timing=False, active_sense=True)
        midi_in.set_callback(lambda event, _: self.receive(event[0], now()))
        midi_in.open_port(index, name="clock in")
        self._port = midi_in

    @property
    def ticking(self) -> bool:
        """Whether the master's clock ticks (a tick within `SILENT` seconds)."""
        return bool(self._window) and now() - self._window[-1][1] < SILENT

    @property
    def steady_tempo(self) -> float:
        """The tempo over the last `STEADY_WINDOW` ticks: slower to follow a change than the
        timeline's, and far steadier (what a Link session led from here is given)."""
        with self._lock:
            window = list(self._window)
        return self._fit(window)[0]

    @property
    def late_start(self) -> float:
        """One tick: the master's Start is heard when its first tick arrives, already late."""
        return 60.0 / (self._line.tempo * TICKS_PER_BEAT)

    def receive(self, message: list[int], at: float) -> None:
        """One MIDI message that arrived at host time ``at``."""
        status = message[0] if message else 0
        with self._lock:
            if status == CLOCK:
                self._tick(at)
            elif status in (START, CONTINUE):
                self._position = 0 if status == START else self._position
                self._armed = True
            elif status == STOP:
                self._stop(at)
            elif status == SONG_POSITION and len(message) == 3:
                self._position = (message[1] | message[2] << 7) * TICKS_PER_SIXTEENTH

    def _tick(self, at: float) -> None:
        """A clock tick: the tempo from every tick (a master ticks while stopped too), the
        position only while playing."""
        self._window.append((self._count, at))
        self._count += 1
        playing = self._line.playing or self._armed
        self._armed = False
        tempo, time0 = self._fit(list(self._window)[-WINDOW:])
        self._line = Timeline(time0, self._position / TICKS_PER_BEAT, tempo, playing, 0.0,
                              self._line.quantum)
        if playing:
            self._position += 1

    def _fit(self, window: list[tuple[int, float]]) -> tuple[float, float]:
        """The tempo and the fitted arrival time of the newest tick of ``window``."""
        ticks, times = (np.array(column, dtype=float) for column in zip(*window, strict=True))
        if len(ticks) < 2:
            return self._line.tempo, float(times[-1])
        slope, intercept = np.polyfit(ticks - ticks[-1], times, 1)
        tempo = clamp_tempo(60.0 / (TICKS_PER_BEAT * slope)) if slope > 0 else self._line.tempo
        return tempo, float(intercept)

    def _stop(self, at: float) -> None:
        line = self._line
        self._armed = False
        self._line = Timeline(at, line.beat_at(at), line.tempo, False, 0.0, line.quantum)

    def set_tempo(self, bpm: float) -> None:
        """The master sets the tempo: a request from here is ignored."""

    def set_playing(self, playing: bool) -> None:
        """The master starts and stops: a request from here is ignored."""

    def set_enabled(self, on: bool) -> None:
        """No Link on a MIDI-clock follower."""

    def close(self) -> None:
        if self._port is not None:
            self._port.close_port()
            self._port.delete()
            self._port = None
