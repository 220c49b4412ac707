"""The Ableton Link clock, through LinkPython-extern (`import link`).

This binding gives the sequencer thread what it needs: a synchronous, thread-safe beat <-> time
mapping for future beats (`captureAppSessionState()` with `timeAtBeat` / `beatAtTime`), a clock
in the domain of `rvaed.engine.clock.now()` (CLOCK_MONOTONIC_RAW) and start/stop sync; why not
aalink is in docs/decisions.md.

Link keeps its own local timeline while disabled, so switching Link on or off never moves the
beat; the one Link object serves with Link on and off. Joining a session adopts its tempo:
rvaed never commits a tempo on join. Link is enabled only once the object is half a second old:
a Link enabled at creation could reset the session tempo (docs/decisions.md).

The loop anchor: when the session starts playing at time T, step 0 falls on the first bar line
(multiple of the quantum) at or after T, computed once per start so that later tempo changes do
not move it.
"""

import threading

from rvaed.engine.clock import (
    DEFAULT_QUANTUM,
    DEFAULT_TEMPO,
    START_LEAD,
    Timeline,
    TimelineClock,
    checked_quantum,
    clamp_tempo,
    next_bar,
    now,
)

ENABLE_AFTER = 0.5  # seconds between creating the Link object and enabling it


class LinkClock(TimelineClock):
    """Clock on an Ableton Link session (or Link's local timeline while Link is off)."""

    def __init__(self, tempo: float = DEFAULT_TEMPO, quantum: float = DEFAULT_QUANTUM,
                 enabled: bool = False, start_stop_sync: bool = True) -> None:
        import link

        self._quantum = checked_quantum(quantum)
        self._link = link.Link(clamp_tempo(tempo))
        self._link.startStopSyncEnabled = start_stop_sync
        self._created = now()
        self._want_enabled = False
        self._timer: threading.Timer | None = None
        self._anchor = (None, 0.0)  # (timeForIsPlaying in us, start beat), replaced whole
        self.set_enabled(enabled)

    def _micros(self) -> int:
        return self._link.clock().micros()

    def timeline(self) -> Timeline:
        state = self._link.captureAppSessionState()
        t = self._micros()
        playing = state.isPlaying()
        start_beat = self._start_beat(state) if playing else self._anchor[1]
        return Timeline(t / 1e6, state.beatAtTime(t, self._quantum), state.tempo(), playing,
                        start_beat, self._quantum)

    def _start_beat(self, state) -> float:
        started = state.timeForIsPlaying()
        known, beat = self._anchor
        if started != known:
            beat = next_bar(state.beatAtTime(started, self._quantum), self._quantum)
            self._anchor = (started, beat)
        return beat

    @property
    def tempo(self) -> float:
        return self._link.captureAppSessionState().tempo()

    @property
    def quantum(self) -> float:
        return self._quantum

    @property
    def playing(self) -> bool:
        return self._link.captureAppSessionState().isPlaying()

    @property
    def peers(self) -> int:
        return self._link.numPeers()

    @property
    def enabled(self) -> bool:
        return self._want_enabled

    def set_tempo(self, bpm: float) -> None:
        state = self._link.captureAppSessionState()
        state.setTempo(clamp_tempo(bpm), self._micros())
        self._link.commitAppSessionState(state)

    def set_quantum(self, quantum: float) -> None:
        self._quantum = checked_quantum(quantum)

    def set_playing(self, playing: bool) -> None:
        """Start (beat 0 on the session's next bar line, or now when alone) or stop."""
        state = self._link.captureAppSessionState()
        if playing == state.isPlaying():
            return
        if playing:
            start = self._micros() + int(START_LEAD * 1e6)
            state.setIsPlayingAndRequestBeatAtTime(True, start, 0.0, self._quantum)
        else:
            state.setIsPlaying(False, self._micros())
        self._link.commitAppSessionState(state)

    def set_enabled(self, on: bool) -> None:
        """Join (or leave) the Link session; joining waits until the object is 0.5 s old."""
        self._want_enabled = on
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wait = self._created + ENABLE_AFTER - now()
        if on and wait > 0:
            self._timer = threading.Timer(wait, self._apply_enabled)
            self._timer.daemon = True
            self._timer.start()
        else:
            self._apply_enabled()

    def _apply_enabled(self) -> None:
        self._link.enabled = self._want_enabled

    def close(self) -> None:
        """Leave the session (stops Link's network traffic)."""
        self.set_enabled(False)
