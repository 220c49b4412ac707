"""The Ableton Link clock, through LinkPython-extern (`import link`).

This binding gives the sequencer thread what it needs: a synchronous, thread-safe beat <-> time
mapping for future beats (`captureAppSessionState()` with `timeAtBeat` / `beatAtTime`), a clock
in the domain of `rvaed.engine.clock.now()` (CLOCK_MONOTONIC_RAW) and start/stop sync; why not
aalink is in docs/decisions.md.

Link keeps its own local timeline while disabled, so switching Link on or off never moves the
beat; the one Link object serves with Link on and off. Joining a session adopts its tempo:
rvaed never commits a tempo on join. Link is enabled only once the object is half a second old:
a Link enabled at creation could reset the session tempo (docs/decisions.md).

Joining: until Link has joined a session (a peer is seen) or `join_wait` seconds after enabling
have passed with none (alone), the clock says "not playing", so nothing sounds on a timeline that
is about to be replaced; a start asked for meanwhile is held. Alone, the held start is committed
then. Joined with start/stop sync, the session's playing state rules and a held start is
dropped: a stopped session keeps rvaed stopped. Link (3.x, 4.0) delivers a peer's start/stop
state only when it changes, never to a peer that has just joined, so a session already playing
is followed from its next start or stop. Without start/stop sync a held start begins on the
session's next bar line.

The loop anchor: when the session starts playing at time T, step 0 falls on the first bar line
(multiple of the quantum) at or after T, computed once per start (so that later tempo changes do
not move it), when the start is first seen. Link delivers a peer's start 0.6-102 ms late; a bar
line already passed by more than `LATE_START` when the start is seen is not played late (a
flam against every peer, failing the test plan's 3 ms onset tolerance) but deferred to the next
bar line: step 0 is never skipped, and every note stays on the session's grid.
"""

import logging
import threading

from rvaed.engine.clock import (
    DEFAULT_QUANTUM,
    DEFAULT_TEMPO,
    LATE_START,
    START_LEAD,
    Timeline,
    TimelineClock,
    checked_quantum,
    clamp_tempo,
    next_bar,
    now,
)

ENABLE_AFTER = 0.5  # seconds between creating the Link object and enabling it
# Following an external master (`follow`): the session is moved when it is this far off.
FOLLOW_TEMPO = 0.01  # BPM
FOLLOW_PHASE = 0.0003  # seconds
JOIN_WAIT = 1.0  # seconds after enabling Link without a peer before rvaed decides it is alone

log = logging.getLogger(__name__)


class LinkClock(TimelineClock):
    """Clock on an Ableton Link session (or Link's local timeline while Link is off)."""

    def __init__(self, tempo: float = DEFAULT_TEMPO, quantum: float = DEFAULT_QUANTUM,
                 enabled: bool = False, start_stop_sync: bool = True,
                 join_wait: float = JOIN_WAIT) -> None:
        import link

        self._quantum = checked_quantum(quantum)
        self._link = link.Link(clamp_tempo(tempo))
        self._link.startStopSyncEnabled = start_stop_sync
        self._sync = start_stop_sync
        self._join_wait = join_wait
        self._created = now()
        self._want_enabled = False
        self._timer: threading.Timer | None = None
        self._anchor = (None, 0.0)  # (timeForIsPlaying in us, start beat), replaced whole
        self._lock = threading.Lock()
        self._joining_until: float | None = None  # while joining: when alone is decided
        self._held: bool | None = None  # a transport change asked for while joining
        self._logged_tempo = clamp_tempo(tempo)
        self._link.setNumPeersCallback(self._peers_changed)  # called on Link's own thread
        self._link.setTempoCallback(self._tempo_changed)
        self.set_enabled(enabled)

    def _peers_changed(self, peers: int) -> None:
        log.info("Link: %d peer%s", peers, "" if peers == 1 else "s")

    def _tempo_changed(self, bpm: float) -> None:
        if round(bpm, 2) != round(self._logged_tempo, 2):
            self._logged_tempo = bpm
            log.info("Link: tempo %.2f BPM", bpm)

    def _micros(self) -> int:
        return self._link.clock().micros()

    def timeline(self) -> Timeline:
        joining = self._joining_until is not None and self._still_joining()
        state = self._link.captureAppSessionState()
        t = self._micros()
        playing = state.isPlaying() and not joining
        start_beat = self._start_beat(state, t) if playing else self._anchor[1]
        return Timeline(t / 1e6, state.beatAtTime(t, self._quantum), state.tempo(), playing,
                        start_beat, self._quantum)

    def _start_beat(self, state, seen: int) -> float:
        """Step 0's beat for the current start: the first bar line at or after it, or, when it
        is seen more than `LATE_START` after that bar line, the first bar line still ahead."""
        started = state.timeForIsPlaying()
        known, beat = self._anchor
        if started != known:
            first = max(started, seen - int(LATE_START * 1e6))
            beat = next_bar(state.beatAtTime(first, self._quantum), self._quantum)
            self._anchor = (started, beat)
        return beat

    @property
    def joining(self) -> bool:
        """Whether Link is enabled but has neither joined a session nor decided it is alone."""
        return self._joining_until is not None and self._still_joining()

    def _still_joining(self) -> bool:
        """Decide, once, that the session is joined (a peer) or that rvaed is alone (the wait
        is over); then apply the transport change held meanwhile."""
        with self._lock:
            until = self._joining_until
            if until is None:
                return False
            peers = self._link.numPeers()
            if peers == 0 and now() < until:
                return True
            self._joining_until = None
            held, self._held = self._held, None
        log.info("Link: %s", f"joined a session of {peers + 1}" if peers else
                 f"no session found in {self._join_wait:g} s, playing alone")
        if held is not None and not (peers and self._sync):
            self._commit_playing(held)
        return False

    @property
    def tempo(self) -> float:
        return self._link.captureAppSessionState().tempo()

    @property
    def quantum(self) -> float:
        return self._quantum

    @property
    def playing(self) -> bool:
        return self.timeline().playing

    @property
    def peers(self) -> int:
        return self._link.numPeers()

    @property
    def link(self) -> bool:
        return self._want_enabled

    def set_tempo(self, bpm: float) -> None:
        state = self._link.captureAppSessionState()
        state.setTempo(clamp_tempo(bpm), self._micros())
        self._link.commitAppSessionState(state)

    def set_quantum(self, quantum: float) -> None:
        self._quantum = checked_quantum(quantum)

    def set_start_stop_sync(self, on: bool) -> None:
        """Follow (and lead) the session's start/stop, or keep rvaed's transport its own."""
        self._sync = on
        self._link.startStopSyncEnabled = on

    def set_playing(self, playing: bool) -> None:
        """Start (beat 0 on the session's next bar line, or now when alone) or stop; while
        joining, held until joined or alone."""
        with self._lock:
            if self._joining_until is not None:
                self._held = playing
                return
        self._commit_playing(playing)

    def _commit_playing(self, playing: bool) -> None:
        state = self._link.captureAppSessionState()
        if playing == state.isPlaying():
            return
        if playing:
            start = self._micros() + int(START_LEAD * 1e6)
            state.setIsPlayingAndRequestBeatAtTime(True, start, 0.0, self._quantum)
        else:
            state.setIsPlaying(False, self._micros())
        self._link.commitAppSessionState(state)

    def follow(self, line: Timeline, tempo: float) -> bool:
        """Make the session's beat and playing state those of ``line``, an external master's
        (a MIDI clock), and its tempo ``tempo`` (the master's, steadied): the tempo is set
        when more than `FOLLOW_TEMPO` off; while the
        master plays, the beat is forced (Link's `forceBeatAtTime`, meant for exactly this)
        when more than `FOLLOW_PHASE` off (a stopped master's beat stands still: the session
        keeps its own). A start is dated at the master's newest tick. True when something
        was committed."""
        state, t = self._link.captureAppSessionState(), self._micros()
        moved = abs(state.tempo() - tempo) > FOLLOW_TEMPO
        if moved:
            state.setTempo(tempo, t)
        if line.playing:
            beat = line.beat_at(t / 1e6)
            off = abs(state.beatAtTime(t, self._quantum) - beat) * 60.0 / line.tempo
            if moved or off > FOLLOW_PHASE:
                state.forceBeatAtTime(beat, t, self._quantum)
                moved = True
        if line.playing != state.isPlaying():
            state.setIsPlaying(line.playing, int(line.time0 * 1e6) if line.playing else t)
            moved = True
        if moved:
            self._link.commitAppSessionState(state)
        return moved

    def set_enabled(self, on: bool) -> None:
        """Join (or leave) the Link session; joining waits until the object is 0.5 s old.
        Enabled while playing alone, it plays on (no gap) and adopts a session found."""
        with self._lock:
            if on and not self._want_enabled and not self._link.captureAppSessionState(
                    ).isPlaying():  # joining starts: nothing sounds until it is decided
                enable_at = max(now(), self._created + ENABLE_AFTER)
                self._joining_until = enable_at + self._join_wait
            elif not on:
                self._joining_until = None
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
