"""rvaed's sequencer side by side with two other ways of playing MIDI on time, in one run.

The same pattern at the same tempo goes to the same JACK MIDI input port of a private JACK
server (dummy driver, run realtime when allowed), from three schedulers in turn:
- rvaed: the engine's sequencer thread handing each message ahead to the output's sender
  process, which sleeps, then spins the last stretch before its due time (both SCHED_FIFO
  when granted; a short GIL switch interval while it plays);
- isobar (PyPI, MIT): its Timeline, whose clock thread ticks 480 times a beat, sending through
  mido's python-rtmidi backend on the JACK API (`pip install 'rvaed[bench]'`);
- asyncio sleep: a coroutine that awaits `asyncio.sleep` until each message is due and sends it
  (how several live-coding tools schedule), on the asyncio loop that also serves OSC.
Each plays in each condition of `rvaed bench timing`: idle, while a training process runs, and
under an OSC flood of 2,000 messages/s served in the same process.

The receiver is jackd2's jack_midi_dump in its own process, stamping every message with the JACK
frame it arrived in. A note-on's error is its arrival against the ideal grid of the pattern at
the tempo, placed by the note-on that arrived earliest relative to it: so errors are delays
(>= 0) read at the receiver, independent of each scheduler's own bookkeeping, and each includes
the receiver's rounding to its period (0 to one period) alike. The pattern is the timing
benchmark's dense one (every voice on every step, microtimed, swung) with its hits rounded to
isobar's 1/480 beat, so that no scheduler is asked for a time it cannot express.
"""

import asyncio
import contextlib
import itertools
import logging
import time
from importlib import metadata

import numpy as np

from rvaed.benchmarks.harness import (
    RATE,
    Sink,
    conditions,
    control_loop,
    private_jack_server,
    wait_for,
)
from rvaed.benchmarks.progress import Progress
from rvaed.benchmarks.timing import (
    LATE_MS,
    dense_schedule,
    distribution,
    print_loads,
    send_errors,
)

HELP = "timing at the receiver: rvaed vs isobar vs an asyncio-sleep scheduler, three loads"
TICKS_PER_BEAT = 480  # isobar's default resolution
SCHEDULERS = ("rvaed", "isobar", "asyncio sleep")
LEAD = 0.05  # seconds between starting a scheduler and its first note
DRAIN = 0.2  # seconds for the last messages to reach the receiver


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="per scheduler per condition (default 10)")
    parser.add_argument("--bpm", type=float, default=200.0, help="tempo (default 200)")
    parser.add_argument("--period", type=int, default=32,
                        help="JACK period in frames at 48 kHz: the receiver's resolution "
                             "(default 32 = 0.67 ms)")


def run(args) -> dict:
    from rvaed.core.drummachine import load_drum_machine
    from rvaed.core.kit import load_kit

    kit = load_kit()
    machine = load_drum_machine("gm", kit)
    schedule = comparison_schedule(dense_schedule(kit, machine))
    isobar = _isobar_version()
    if isobar is None:
        print("peers: isobar is not installed, so it is left out of the comparison: "
              "pip install 'rvaed[bench]' (or pip install isobar)")
    figures: dict = {"bpm": args.bpm, "seconds": args.seconds, "period_ms":
                     round(1000 * args.period / RATE, 3), "isobar": isobar or "not installed",
                     "note_ons_per_loop": len(schedule.events), "conditions": {}}
    players = {"rvaed": _play_rvaed, "isobar": _play_isobar, "asyncio sleep": _play_asyncio}
    if isobar is None:
        del players["isobar"]
    with private_jack_server(args.period, realtime=True), control_loop() as loop, \
            contextlib.closing(conditions(loop)) as loads:  # closed on errors too: loads end
        sinks = (f"peers-sink-{n}" for n in itertools.count())
        progress = Progress("peers")
        for name, note in loads:
            row: dict[str, object] = {}
            figures["conditions"][name] = row
            for scheduler, play in players.items():
                progress.say(f"{name}: {scheduler}, {args.seconds:g} s")
                row[scheduler] = _measure(play, next(sinks), schedule, machine, loop, args)
            if note:
                row["load"] = note()
    _print(figures)
    return figures


def comparison_schedule(schedule):
    """``schedule`` with every hit on isobar's grid of 1/480 beat, and none before the loop
    start (step 0 pulled early would belong to a loop before the first): every scheduler then
    plays exactly the same note-ons from beat 0."""
    from rvaed.engine.schedule import Event, Schedule

    spb, loop = schedule.grid.steps_per_beat, schedule.loop_beats
    events = []
    for event in schedule.events:
        step_beat = event.step / spb
        beat = round((step_beat + event.shift) * TICKS_PER_BEAT) / TICKS_PER_BEAT
        beat = abs(beat) if event.step == 0 else beat
        events.append(Event(beat % loop, event.step, beat - step_beat, event.voice,
                            event.velocity, event.destination))
    events.sort(key=lambda e: (e.beat, e.voice))
    return Schedule(schedule.grid, tuple(events), schedule.gate)


def _measure(play, sink_name: str, schedule, machine, loop, args) -> dict:
    """One scheduler for ``args.seconds`` into a fresh receiver; its errors at the receiver."""
    notes = _note_ons(schedule, machine)
    try:
        with Sink(sink_name) as sink:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            extra = play(sink, schedule, machine, loop, args)
            cpu = time.process_time() - cpu0
            wall = time.perf_counter() - wall0
            time.sleep(DRAIN)
    except Exception as exc:  # one scheduler failing here must not hide the others' figures
        return {"error": f"{type(exc).__name__}: {exc}"}
    figures = receiver_errors(sink.messages(), notes, schedule.loop_beats, args.bpm)
    figures["process_cpu_percent"] = round(100 * cpu / wall, 1)
    return {**figures, **extra}


def _note_ons(schedule, machine) -> list[tuple[float, tuple[int, int, int]]]:
    """(beat in the loop, note-on) of every hit of ``schedule`` on ``machine``, in time order."""
    played = []
    for event in schedule.events:
        where = machine.destinations[event.voice]
        if where is not None:
            played.append((event.beat, (where.note_on_status, where.note,
                                        event.velocity)))
    return played


def receiver_errors(received, notes, loop_beats: float, bpm: float) -> dict:
    """Each note-on received against the ideal grid: matched to the nearest time its note is
    due (so a lost or an extra note shifts no other match), the grid placed by the arrival
    earliest relative to it. Also how many note-ons arrived."""
    spb = 60.0 / bpm
    beats: dict[tuple[int, int], list[float]] = {}
    for beat, message in notes:
        beats.setdefault(message[:2], []).append(beat)
    due = {key: np.array(sorted(values)) for key, values in beats.items()}
    ons = [(seconds, message[:2]) for seconds, message in received
           if message[0] & 0xF0 == 0x90 and len(message) >= 3 and message[2] > 0
           and message[:2] in due]
    if not ons:
        return {"note_ons": 0, "error": "no note-on arrived"}
    # a first estimate of beat 0: the first arrival is its note's first hit (if not, every
    # match below is off by the same whole hits, which the min() further down takes out)
    origin = ons[0][0] - due[ons[0][1]][0] * spb
    offsets = []
    for seconds, key in ons:
        beat = (seconds - origin) / spb
        loop = np.floor(beat / loop_beats) * loop_beats
        candidates = np.concatenate([due[key] + loop + shift
                                     for shift in (-loop_beats, 0.0, loop_beats)])
        nearest = candidates[np.argmin(np.abs(candidates - beat))]
        offsets.append(seconds - origin - nearest * spb)
    errors = (np.array(offsets) - min(offsets)) * 1e3
    return {"note_ons": len(errors), **distribution(errors, 3)}


def _play_rvaed(sink, schedule, machine, loop, args) -> dict:
    """The engine's sequencer on the internal clock; also its own send-time record."""
    from rvaed.engine.clock import InternalClock
    from rvaed.engine.midiout import Output
    from rvaed.engine.sequencer import Sequencer

    clock = InternalClock(args.bpm)
    output = Output(sink.name, machine, api="jack", poll=0.05)
    sequencer = Sequencer(clock, [output])
    sequencer.install(schedule)
    sequencer.start()
    try:
        wait_for(lambda: output.connected, 10, f"rvaed: no MIDI port matching {sink.name!r}")
        clock.set_playing(True)
        own = send_errors(sequencer, args.seconds)
    finally:
        sequencer.stop()
    return {"own_record": {key: own[key] for key in ("p50_ms", "p99_ms", "max_ms", "late")},
            "sched_fifo": sequencer.realtime}


def _play_isobar(sink, schedule, machine, loop, args) -> dict:
    """isobar's Timeline with the pattern as one track of chords and durations."""
    import isobar
    import mido

    logging.getLogger("isobar").setLevel(logging.WARNING)  # it logs every note at INFO
    mido.set_backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    device = isobar.MidiOutputDevice(sink.port)
    timeline = isobar.Timeline(args.bpm, output_device=device)
    first, track = _isobar_track(schedule, machine)
    timeline.schedule(track, delay=first)
    timeline.background()
    try:
        time.sleep(LEAD + args.seconds)
    finally:
        # Timeline.stop() would also send 2,048 note-offs (every note on every channel) at
        # once, more than JACK's buffer takes in one period: stop its clock thread instead.
        timeline.clock_source.stop()
        time.sleep(0.05)
        device.close()
    return {}


def _isobar_track(schedule, machine) -> tuple[float, dict]:
    """The beat of the first hit and isobar event parameters from there on: one chord per
    distinct beat, each lasting until the next (the last until the first of the next loop)."""
    import isobar

    chords: dict[float, list[tuple[int, int, int]]] = {}
    for beat, message in _note_ons(schedule, machine):
        chords.setdefault(beat, []).append(message)
    starts = sorted(chords)
    durations = np.diff([*starts, schedule.loop_beats + starts[0]]).tolist()
    track = {
        "note": isobar.PSequence([[m[1] for m in chords[b]] for b in starts]),
        "amplitude": isobar.PSequence([tuple(m[2] for m in chords[b]) for b in starts]),
        "channel": isobar.PSequence([tuple(m[0] & 0x0F for m in chords[b]) for b in starts]),
        "duration": isobar.PSequence(durations),
        "gate": isobar.PSequence([schedule.gate / d for d in durations]),
    }
    return starts[0], track


def _play_asyncio(sink, schedule, machine, loop, args) -> dict:
    """A coroutine on the control loop: sleep until each message is due, send it."""
    port = sink.connect("asyncio-sleep")
    messages = sorted(
        [*_note_ons(schedule, machine),
         *((beat + schedule.gate, (on[0] & 0x0F | 0x80, on[1], 0))
           for beat, on in _note_ons(schedule, machine))],
        key=lambda item: (item[0], item[1][0] & 0xF0 == 0x90))
    try:
        asyncio.run_coroutine_threadsafe(
            _sleep_and_send(port, messages, schedule.loop_beats, args.bpm, args.seconds),
            loop).result()
    finally:
        time.sleep(0.05)
        port.close_port()
        port.delete()
    return {}


async def _sleep_and_send(port, messages, loop_beats: float, bpm: float,
                          seconds: float) -> None:
    clock = asyncio.get_running_loop().time
    spb = 60.0 / bpm
    start = clock() + LEAD
    for repeat in itertools.count():
        for beat, message in messages:
            due = start + (repeat * loop_beats + beat) * spb
            if due > start + seconds:
                return
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            port.send_message(message)


def _isobar_version() -> str | None:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("isobar")
    return None


def _print(figures: dict) -> None:
    print(f"note-on timing at the receiver (jack_midi_dump, JACK period "
          f"{figures['period_ms']:g} ms), {figures['bpm']:g} BPM, dense pattern "
          f"({figures['note_ons_per_loop']} note-ons per 2-bar loop), {figures['seconds']:g} s "
          f"per scheduler per condition; error = delay behind the ideal grid; isobar "
          f"{figures['isobar']}")
    print(f"{'condition':<10} {'scheduler':<14} {'note-ons':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {f'late>{LATE_MS:g}ms':>10} {'proc CPU%':>9}")
    for condition, row in figures["conditions"].items():
        for scheduler in SCHEDULERS:
            cell = row.get(scheduler)
            if cell is None:
                continue
            if "p50_ms" not in cell:
                print(f"{condition:<10} {scheduler:<14} failed: {cell['error']}")
                continue
            print(f"{condition:<10} {scheduler:<14} {cell['note_ons']:>8} {cell['p50_ms']:>8.3f} "
                  f"{cell['p99_ms']:>8.3f} {cell['max_ms']:>8.3f} {cell['late']:>10} "
                  f"{cell['process_cpu_percent']:>9.1f}")
    print_loads(figures["conditions"])
