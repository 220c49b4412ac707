"""The sequencer thread: plays the installed schedule on the clock, on time, with no stuck notes.

How it keeps time:
- Everything is placed in beats and turned into host time at the last moment with a fresh
  clock snapshot, so a tempo change (even 60 -> 999 BPM mid-bar) moves every pending note,
  note-off and MIDI clock tick with it.
- It hands each message to its output's sender process `lead` seconds (`LEAD`) before it is
  due, with its due time; the sender, a process of one thread under SCHED_FIFO when allowed,
  sends it on that time (rvaed/engine/sendproc.py). So this thread may wake late by up to the
  lead without a note being late: on a saturated machine it waits for the GIL, whose holder
  the OS may have descheduled (docs/decisions.md). A tempo change within the lead moves a
  hit by at most lead x change / tempo (1 ms for a 5 % change); stopping cancels what was
  handed over.
- It sleeps until the next hand-over, in naps of at most `poll` seconds (so it notices tempo,
  transport and pattern changes); it never spins.
- It asks for SCHED_FIFO and carries on without it. Python's GIL can keep a thread waiting up
  to `sys.getswitchinterval()` (5 ms by default) when another thread computes; `start` lowers
  the interval for the process (see `rvaed bench timing` for the measured effect).
- A full pass of Python's cyclic garbage collector walks every object and holds the GIL
  meanwhile: once the decoder and its libraries are loaded, long enough to
  make a note late and a control change wait. `start` freezes everything that exists by then
  (`gc.freeze`: it is never collected, and later passes only walk newer objects).

How a new schedule takes over: the steps of the loop are queued one by one, each as soon as its
earliest possible hit (a step minus the largest microtiming pull) comes within reach. Queued
events are committed and play from the schedule they came from; `install` swaps one reference,
and the first step not yet queued onwards plays the new schedule. Nothing is sent twice, nothing
is dropped, and the hot path takes no lock.

How a variation plays: each step is queued with its number from the start of play, from
which it takes whether it lies in a fill (the last bars of every phrase, or the bars
`fill_next_bar` asked for: then its events come from the schedule's fill) and which of its hits
play in that loop (`Schedule.played`: conditions and chances, with what each voice's last
decided hit did). All are decided here, step by step, so fills land exactly on their bars,
A:B counts loops from the start of play, and a seed replays the same loops.

How the outputs change while it plays (SIGHUP): `use_outputs` hands the thread a new list of
open outputs and waits until the thread has taken it at the top of a cycle. An output in both
lists keeps its queue and sounding notes; one that is gone is silenced there and then (its
note-offs, All Notes Off) and handed back for the caller to close; a new one plays every
note still ahead, from the steps queued already (`RECENT`) on.

How late is never a burst: a note-on or MIDI clock tick that is due more than `late` seconds
ago (a quarter step, at most `LATE_MAX`, unless configured) when the thread gets to it, after
a stall of this process or of the machine, is dropped and counted in `Timing.dropped`, and no
note-off is owed for it; each message handed to an output carries that same expiry, so its
sender process drops what waited too long in its pipe. The music resumes on the grid with the
next message that is on time. Note-offs are never dropped.

How no note is left hanging: a note-off is queued the moment its note-on is sent, and stays
queued whatever happens to the schedule or the tempo; stopping the transport sends every
pending note-off at once, and the thread's `finally` does the same plus All Notes Off (CC 123),
on shutdown and on a crash.
"""

import gc
import heapq
import logging
import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rvaed.core.midi import NOTE_OFF
from rvaed.core.pattern import Grid
from rvaed.engine.clock import Clock, Timeline, now
from rvaed.engine.midiclock import Message, MidiClock
from rvaed.engine.midiout import Output
from rvaed.engine.schedule import MAX_PULL_STEPS, Event, Schedule
from rvaed.engine.sendproc import ask_realtime

log = logging.getLogger(__name__)

OFF, CLOCK, ON = 0, 1, 2  # message kinds; at one instant note-offs go first, note-ons last
SWITCH_INTERVAL = 0.0001  # much tighter send errors under an OSC flood (docs/decisions.md)
DEFAULT_GRID = Grid()
# How long before its due time a message is handed to its sender: more than this thread's
# worst wake-up on a saturated machine (18 ms, at load 1 on 2 cores: docs/decisions.md).
LEAD = 0.020
LATE_MAX = 0.020  # late is never a burst: a later note-on or clock tick is dropped, counted
NO_FILL = -(1 << 30)  # `_fill_bar` while no fill was asked for
RECENT = 16  # steps remembered as queued, for an output added while they are still ahead


class _Note(NamedTuple):
    """A note-on ready to send on one output: its offset from its step and both messages."""

    shift: float
    on: tuple[int, int, int]
    off: tuple[int, int, int]


class Pace(NamedTuple):
    """Where the steps are: step ``step`` (counted from the session's start) sounds at ``beat``,
    each next one 1 / (steps per beat x ``speed``) beats later."""

    step: int
    beat: float
    speed: float


@dataclass(frozen=True)
class _Prepared:
    """A schedule with its events grouped by the step they belong to, each group in time
    order (the events come in play order)."""

    schedule: Schedule
    steps: tuple[tuple[Event, ...], ...]
    fill: tuple[tuple[Event, ...], ...]  # the fill bar's, by step (the same without phrases)


class _Queued(NamedTuple):
    """A step as it was queued: its beat, its length factor (1 / speed), its events and the
    notes played live in place of the drum machine's."""

    beat: float
    slow: float
    events: tuple[Event, ...]
    live: tuple[int | None, ...]


class _Lane:
    """One output's queue of pending messages, ordered by (beat, kind, sequence number)."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.queue: list[tuple[float, int, int, _Note | Message]] = []
        self.sounding: dict[tuple[int, int], float] = {}  # (status, note) -> its note-off beat
        self.clock: MidiClock | None = None

    def push(self, beat: float, kind: int, seq: int, message: _Note | Message) -> None:
        heapq.heappush(self.queue, (beat, kind, seq, message))

    def notes(self, events: tuple[Event, ...], live: tuple[int | None, ...] = ()) -> list[_Note]:
        """The note messages of ``events`` on this output (its drum machine's notes, or the
        schedule's own when it has none; ``live``: per voice, a note played in place of the
        machine's); voices the machine lacks are left out."""
        machine = self.output.drum_machine
        notes = []
        for event in events:
            where = event.destination if machine is None else machine.destinations[event.voice]
            if where is None:
                continue
            note = live[event.voice] if event.voice < len(live) else None
            if note is None:
                notes.append(_Note(event.shift, (where.note_on_status, where.note,
                                                 event.velocity), where.note_off))
            else:
                notes.append(_Note(event.shift, (where.note_on_status, note, event.velocity),
                                   (where.note_off[0], note, 0)))
        return notes


class Timing:
    """Scheduled time vs the time each message was handed to its sender (about `LEAD`
    earlier; later than scheduled when this thread was held up past its lead), in a
    preallocated ring buffer. How late each left: `Output.lateness`."""

    def __init__(self, capacity: int) -> None:
        self._rows = np.zeros((capacity, 3))
        self._count = 0
        self.sent = [0, 0, 0]  # messages ever sent, per kind (OFF, CLOCK, ON)
        self.dropped = [0, 0, 0]  # messages dropped too late, per kind (never a note-off)

    def add(self, scheduled: float, sent: float, kind: int) -> None:
        row = self._rows[self._count % len(self._rows)]
        row[0], row[1], row[2] = scheduled, sent, kind
        self._count += 1
        self.sent[kind] += 1

    def rows(self) -> np.ndarray:
        """A copy of the rows recorded so far (the newest `capacity`), oldest first."""
        count, capacity = self._count, len(self._rows)
        if count <= capacity:
            return self._rows[:count].copy()
        start = count % capacity
        return np.concatenate([self._rows[start:], self._rows[:start]])

    def clear(self) -> None:
        self._count = 0


class Sequencer:
    """The thread that owns MIDI output and plays the installed `Schedule` on a `Clock`."""

    def __init__(self, clock: Clock, outputs: list[Output], grid: Grid = DEFAULT_GRID,
                 lead: float = LEAD, poll: float = 0.002, records: int = 1 << 16,
                 switch_interval: float | None = SWITCH_INTERVAL,
                 late: float | None = None) -> None:
        """``late``: seconds a note-on or MIDI clock tick may be late before it is dropped
        (None: a quarter step, at most `LATE_MAX`); ``lead``: seconds each message is handed
        to its sender ahead of its due time."""
        self.clock = clock
        self.late = late
        self.outputs = list(outputs)
        self.grid = grid
        self.lead = lead
        self.poll = poll
        self.switch_interval = switch_interval
        self.timing = Timing(records)
        self.realtime = False  # whether SCHED_FIFO was granted
        self._prepared = self._prepare(Schedule.empty(grid))
        self._lanes = [_Lane(output) for output in self.outputs]
        self._seq = 0
        self._anchor: float | None = None  # start beat of the session being played
        self._next_step = 0                # steps counted from the anchor, not yet queued
        self._first_step = 0               # the step (from the anchor) played as step 0
        self._floor = 0.0                  # no event is placed before this beat
        self._fill_asked = False           # `fill_next_bar` was called
        self._fill_bar = NO_FILL           # the first step of the bar asked to be a fill
        self._decided: dict[int, bool] = {}  # per voice, how its last decided hit went
        self._recent: deque[_Queued] = deque(maxlen=RECENT)  # the last steps queued
        self._pace = Pace(0, 0.0, 1.0)     # where the steps fall (the speed changes it)
        self._origin = 0.0                 # the beat of the first step 0: loop lines at x1
        self._quit = threading.Event()
        self._next_outputs: list[Output] | None = None
        self._outputs_taken = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_switch_interval = sys.getswitchinterval()

    # -- the control side (any thread) --------------------------------------------------------

    def install(self, schedule: Schedule) -> None:
        """Play ``schedule`` from the first step not yet queued (lock-free: one reference)."""
        if schedule.grid != self.grid:
            raise ValueError(f"schedule grid {schedule.grid} is not the sequencer's {self.grid}")
        self._prepared = self._prepare(schedule)

    def fill_next_bar(self) -> None:
        """Play the next bar (from its first step not yet queued) from the installed
        schedule's fill, if it has one."""
        self._fill_asked = True

    def use_outputs(self, outputs: list[Output], timeout: float = 2.0) -> list[Output]:
        """Play to ``outputs`` (open already) from the thread's next cycle; blocks until then.
        Returns the outputs no longer played to, silenced, for the caller to close."""
        removed = [output for output in self.outputs if output not in outputs]
        self._outputs_taken.clear()
        self._next_outputs = list(outputs)
        if not self.running:
            self._take_outputs()
        elif not self._outputs_taken.wait(timeout):
            raise RuntimeError(f"the sequencer did not take the new outputs in {timeout} s")
        return removed

    @property
    def schedule(self) -> Schedule:
        return self._prepared.schedule

    def start(self) -> None:
        for output in self.outputs:
            output.open()
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
        gc.freeze()  # see the module docstring: full collections then skip what exists now
        self._quit.clear()
        self._thread = threading.Thread(target=self._run, name="sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Silence everything (note-offs, All Notes Off), end the thread, close the outputs."""
        self._quit.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        sys.setswitchinterval(self._previous_switch_interval)
        gc.unfreeze()
        for output in self.outputs:
            output.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cpu_time(self) -> float:
        """CPU seconds the sequencer thread has used (0 when it is not running)."""
        if self._thread is None or self._thread.ident is None:
            return 0.0
        return time.clock_gettime(time.pthread_getcpuclockid(self._thread.ident))

    def _prepare(self, schedule: Schedule) -> _Prepared:
        """Group the events by step: all `install` does on the control side (each output's
        messages are made when a step is queued, on the sequencer thread)."""
        steps = self._by_step(schedule)
        return _Prepared(schedule, steps,
                         steps if schedule.fill is None else self._by_step(schedule.fill))

    def _by_step(self, schedule: Schedule) -> tuple[tuple[Event, ...], ...]:
        steps: list[list[Event]] = [[] for _ in range(self.grid.steps)]
        for event in schedule.events:
            steps[event.step].append(event)
        return tuple(map(tuple, steps))

    # -- the sequencer thread -----------------------------------------------------------------

    def _run(self) -> None:
        self.realtime = _ask_realtime()
        try:
            while not self._quit.is_set():
                self._cycle()
        except Exception:
            log.exception("sequencer stopped by an error; silencing all outputs")
        finally:
            self._silence(all_notes_off=True)

    def _cycle(self) -> None:
        """One wake-up: follow the transport, queue steps, then wait for or send what is due."""
        if self._next_outputs is not None:
            self._take_outputs()
        line = self.clock.timeline()
        if not line.playing or line.start_beat != self._anchor:
            if self._anchor is not None:
                self._silence(all_notes_off=False)
            if not line.playing:
                time.sleep(self.poll)
                return
            self._begin(line)
        self._queue_steps(line)
        deadline = min((self._deadline(line, lane) for lane in self._lanes), default=math.inf)
        wait = deadline - self.lead - now()
        if wait > 0:
            time.sleep(min(wait, self.poll))
            return
        for lane in self._lanes:
            self._send_due(line, lane)

    def _take_outputs(self) -> None:
        """The thread (or a stopped sequencer): swap in the outputs `use_outputs` was given."""
        outputs, self._next_outputs = self._next_outputs or [], None
        lanes = {id(lane.output): lane for lane in self._lanes}
        kept = [lanes.pop(id(output)) if id(output) in lanes else _Lane(output)
                for output in outputs]
        new = {id(lane) for lane in kept} - {id(lane) for lane in self._lanes}
        for lane in lanes.values():
            self._silence_lane(lane, all_notes_off=True)
        if self._anchor is not None:
            line = self.clock.timeline()
            for lane in kept:
                if id(lane) in new:
                    self._catch_up(lane, line.beat_at(now()))
                self._follow_clock_out(lane, line)
        self._lanes, self.outputs = kept, outputs
        self._outputs_taken.set()

    def _catch_up(self, lane: _Lane, beat: float) -> None:
        """A new lane: the notes of the steps queued already that are still ahead of ``beat``
        (up to the lead and the largest pull), so an output added mid-play misses none."""
        for step in self._recent:
            for note in lane.notes(step.events, step.live):
                at = max(step.beat + note.shift * step.slow, self._floor)
                if at > beat:
                    lane.push(at, ON, self._count(), note)

    def _follow_clock_out(self, lane: _Lane, line: Timeline) -> None:
        """Start or stop the MIDI clock of a playing lane whose output turned it on or off."""
        if lane.output.clock_out and lane.clock is None and self._anchor is not None:
            lane.clock = MidiClock(self._anchor, line.beat_at(now()))
        elif not lane.output.clock_out and lane.clock is not None:
            lane.output.send(MidiClock.stop())
            lane.clock = None

    def _begin(self, line: Timeline) -> None:
        """Start playing a session from the pattern's step 0: on the session's start if it is
        still ahead (or passed by no more than the clock's `late_start`: then played that
        late), else on the next bar line; never mid-pattern, never skipping step 0."""
        self._anchor = line.start_beat
        t = now()
        beat = line.beat_at(t)
        spb = self.grid.steps_per_beat
        passed = line.beat_at(t - self.clock.late_start) - line.start_beat
        bars = max(0, math.ceil(passed / line.quantum - 1e-9))
        self._next_step = self._first_step = round(bars * line.quantum * spb)
        self._origin = line.start_beat + self._first_step / spb
        self._pace = Pace(self._first_step, self._origin, self._prepared.schedule.speed)
        self._fill_bar = NO_FILL
        self._decided.clear()
        self._recent.clear()
        self._floor = max(beat, line.start_beat)
        for lane in self._lanes:
            if lane.output.clock_out:
                lane.clock = MidiClock(line.start_beat, beat)

    def _reach(self, line: Timeline) -> float:
        """The latest beat whose messages may need sending before the next wake-up."""
        lead = max((lane.output.latency for lane in self._lanes), default=0.0)
        lead += self._prepared.schedule.push  # the groove pushed ahead is due earlier
        return line.beat_at(now() + max(lead, 0.0) + self.lead + self.poll)

    def position(self) -> tuple[float, int, float]:
        """(beat, step played since the start, speed): where the playhead is and how fast it
        moves, for the page."""
        pace = self._pace
        return pace.beat, pace.step - self._first_step, pace.speed

    def _beat_of(self, step: float) -> float:
        pace = self._pace
        return pace.beat + (step - pace.step) / (self.grid.steps_per_beat * pace.speed)

    def _repace(self, played: int) -> None:
        """Take the installed schedule's speed from this step if it starts a loop on a loop
        line of normal speed (at x2 every other loop line is one), so loops stay on bars."""
        speed = self._prepared.schedule.speed
        if speed == self._pace.speed or played % self.grid.steps:
            return
        beat = self._beat_of(self._next_step)
        loops = (beat - self._origin) / self.grid.beats
        if abs(loops - round(loops)) < 1e-9:
            self._pace = Pace(self._next_step, beat, speed)

    def _queue_steps(self, line: Timeline) -> None:
        reach = self._reach(line)
        prepared = self._prepared
        push = prepared.schedule.push * line.tempo / 60.0  # ms ahead -> beats at this tempo
        while self._beat_of(self._next_step - MAX_PULL_STEPS) <= reach:
            played = self._next_step - self._first_step
            self._repace(played)
            step_beat, slow = self._beat_of(self._next_step) - push, 1.0 / self._pace.speed
            if self._fill_asked:
                self._fill_asked, bar = False, self.grid.steps_per_bar
                self._fill_bar = -(-played // bar) * bar  # the next bar line, or this one
            queued = _Queued(step_beat, slow, self._step(prepared, played, self._fill_bar,
                                                          self._decided),
                             prepared.schedule.notes)
            self._recent.append(queued)
            for lane in self._lanes:
                for note in lane.notes(queued.events, queued.live):
                    lane.push(max(step_beat + note.shift * slow, self._floor), ON,
                              self._count(), note)
            self._next_step += 1
        for lane in self._lanes:
            if lane.clock is not None:
                for beat, message in lane.clock.until(reach):
                    lane.push(beat, CLOCK, self._count(), message)

    def _step(self, prepared: _Prepared, played: int, fill_bar: int,
              decided: dict[int, bool]) -> tuple[Event, ...]:
        """The events that play on step ``played`` (from the start of play): from the fill in
        a fill bar (a phrase's, or ``fill_bar``'s), as its conditions and chances decide."""
        loop, index = divmod(played, self.grid.steps)
        filling = prepared.schedule.in_fill(played) or (
            fill_bar <= played < fill_bar + prepared.schedule.fill_steps)
        source = prepared.fill if filling else prepared.steps
        return prepared.schedule.played(source[index], loop, filling, decided)

    def coming(self, bars: int) -> tuple[int, list[tuple[Event, ...]]]:
        """What the ``bars`` bars from the next bar line not yet queued will play unless a
        control changes them: (the first step's number from the start of play, each step's
        events), decided as they will be (conditions on a copy of the voices' memory, chances,
        fills). Stopped: the first bars of the next start."""
        prepared, playing, bar = self._prepared, self._anchor is not None, self.grid.steps_per_bar
        decided = self._decided.copy() if playing else {}  # one C call: whole, never torn
        now = self._next_step - self._first_step if playing else 0
        fill_bar = self._fill_bar if playing else NO_FILL
        first = -(-now // bar) * bar
        if self._fill_asked:
            fill_bar = first
        steps = [self._step(prepared, played, fill_bar, decided)
                 for played in range(now, first + bars * bar)]  # from now: the memory
        return first, steps[first - now:]

    def _count(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _deadline(line: Timeline, lane: _Lane) -> float:
        if not lane.queue:
            return math.inf
        return line.time_at(lane.queue[0][0]) - lane.output.latency

    def _send_due(self, line: Timeline, lane: _Lane) -> None:
        output, queue, reach = lane.output, lane.queue, now() + self.lead
        while queue and (scheduled := line.time_at(queue[0][0]) - output.latency) <= reach:
            beat, kind, _, item = heapq.heappop(queue)
            if isinstance(item, _Note):  # kind ON
                self._note_on(line, lane, beat, item, scheduled)
            elif kind == OFF:
                key = (item[0], item[1])
                if lane.sounding.get(key) == beat:
                    del lane.sounding[key]
                    self._send(output, item, scheduled, OFF)
            else:
                self._send(output, item, scheduled, CLOCK, self._tolerance(line, beat))

    def _note_on(self, line: Timeline, lane: _Lane, beat: float, note: _Note,
                 scheduled: float) -> None:
        key = (note.off[0], note.off[1])
        if key in lane.sounding:  # the same note again before its note-off: end it first
            self._send(lane.output, note.off, scheduled, OFF)
        if not self._send(lane.output, note.on, scheduled, ON, self._tolerance(line, beat)):
            return  # too late: dropped, and no note-off is owed
        off_beat = beat + self._prepared.schedule.gate / self._pace.speed
        lane.sounding[key] = off_beat
        lane.push(off_beat, OFF, self._count(), note.off)

    def _tolerance(self, line: Timeline, beat: float) -> float:
        """Seconds a note-on or clock tick may be late: `late`, else a quarter step, at most
        `LATE_MAX`."""
        if self.late is not None:
            return self.late
        step = line.time_at(beat + 1 / (self.grid.steps_per_beat * self._pace.speed)) \
            - line.time_at(beat)
        return min(step / 4, LATE_MAX)

    def _send(self, output: Output, message: tuple[int, ...], scheduled: float,
              kind: int, tolerance: float | None = None) -> bool:
        """Hand over to be sent on ``scheduled``, or drop (and count) a message already later
        than ``tolerance`` (None: never dropped, as note-offs); the sender drops it too should
        it leave later than that."""
        handed = now()
        if tolerance is not None and handed - scheduled > tolerance:
            self.timing.dropped[kind] += 1
            return False
        output.send(message, scheduled, -1.0 if tolerance is None else tolerance)
        self.timing.add(scheduled, handed, kind)
        return True

    def _silence(self, all_notes_off: bool) -> None:
        """Send every pending note-off now and forget the queues; MIDI clock Stop; CC 123."""
        for lane in self._lanes:
            self._silence_lane(lane, all_notes_off)
        self._anchor = None

    def _silence_lane(self, lane: _Lane, all_notes_off: bool) -> None:
        lane.output.cancel()  # what was handed over ahead: not played
        for status, note in lane.sounding:
            lane.output.send((NOTE_OFF | (status & 0x0F), note, 0))
            self.timing.sent[OFF] += 1
        lane.sounding.clear()
        lane.queue.clear()
        if lane.clock is not None:
            lane.output.send(MidiClock.stop())
            lane.clock = None
        if all_notes_off:
            lane.output.all_notes_off()


def _ask_realtime() -> bool:
    """Ask for SCHED_FIFO for this thread; fine without it (most desktops refuse)."""
    refusal = ask_realtime()
    if refusal is not None:
        log.info("sequencer runs without SCHED_FIFO (%s)", refusal)
    return refusal is None
