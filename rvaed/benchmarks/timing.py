"""How close to its schedule the sequencer sends each MIDI message, under three loads.

The engine plays a dense pattern (every voice on every step, with microtiming and swing, plus
MIDI clock) at 200 BPM to a real MIDI port: the one given, or a port of a private JACK server
(dummy driver) that this benchmark starts. Each condition records the error of every message
(actual send time - due time, in the output's sender process, next to the MIDI system), how
late the sequencer thread handed messages over against its lead, and its CPU use:
- idle: nothing else running;
- training: a real VAE training job (spawned, niced, one torch thread) on generated patterns;
- OSC flood: another process sends 2,000 OSC messages/s to a python-osc server in this process;
- saturated: a busy process at normal priority on every core, and this process's asyncio loop
  computing (the GIL's other holder). Run it once more as
  `capsh --drop=cap_sys_nice -- -c 'rvaed bench timing'` for the figures without SCHED_FIFO.
"""

import contextlib
import time

import numpy as np

from rvaed.benchmarks.harness import Sink, conditions, control_loop, private_jack_server, wait_for
from rvaed.benchmarks.progress import Progress
from rvaed.engine.sendproc import BUCKETS, lateness_figures
from rvaed.engine.sequencer import SWITCH_INTERVAL

HELP = ("MIDI send-time error (p50/p99/max/late) idle, while training, under an OSC flood, "
        "on a saturated machine")
SINK = "rvaed-bench-sink"
LATE_MS = 1.0


def add_arguments(parser) -> None:
    parser.add_argument("--port", help="MIDI output (part of its name); default: a private "
                        "JACK server with the dummy driver")
    parser.add_argument("--api", default="auto", help="MIDI API (default: jack for the "
                        "private server, else auto)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per condition (default 10)")
    parser.add_argument("--bpm", type=float, default=200.0, help="tempo (default 200)")
    parser.add_argument("--lead", type=float, help="ms each message is handed to the sender "
                        "ahead of its due time (default: the sequencer's)")
    parser.add_argument("--switch-interval", type=float, default=SWITCH_INTERVAL,
                        help="sys.setswitchinterval for this process; 0 leaves Python's "
                        f"default (default {SWITCH_INTERVAL}, the sequencer's)")
    parser.add_argument("--features", action="store_true",
                        help="the dense pattern with every variation on: a chance and a "
                             "condition on every voice, conditions on steps, 2-bar phrases "
                             "with fills (each step decided as it is queued)")


def run(args) -> dict:
    with contextlib.ExitStack() as stack:
        port, api = args.port, args.api
        if port is None:
            stack.enter_context(private_jack_server())
            port, api = SINK, "jack"
            stack.enter_context(Sink(SINK))
        figures = _measure(port, api, args, stack)
    _print(figures)
    return figures


def _measure(port: str, api: str, args, stack: contextlib.ExitStack) -> dict:
    from rvaed.core.drummachine import load_drum_machine
    from rvaed.core.kit import load_kit
    from rvaed.engine.clock import InternalClock
    from rvaed.engine.midiout import Output
    from rvaed.engine.sequencer import Sequencer

    kit = load_kit()
    machine = load_drum_machine("gm", kit)
    clock = InternalClock(args.bpm)
    output = Output(port, machine, api=api, clock_out=True, poll=0.05)
    lead = {} if args.lead is None else {"lead": args.lead / 1000}
    sequencer = Sequencer(clock, [output], switch_interval=args.switch_interval or None, **lead)
    sequencer.install(dense_schedule(kit, machine, args.features))
    sequencer.start()
    stack.callback(sequencer.stop)
    wait_for(lambda: output.connected, 10, f"no MIDI port matching {port!r}")
    clock.set_playing(True)
    time.sleep(0.5)
    figures = {"bpm": args.bpm, "seconds": args.seconds, "port": output.name,
               "lead_ms": sequencer.lead * 1000, "features": args.features,
               "sched_fifo": None, "switch_interval": args.switch_interval or None,
               "conditions": {}}
    loop = stack.enter_context(control_loop())
    progress = Progress("timing")
    for name, note in stack.enter_context(contextlib.closing(conditions(loop, saturated=True))):
        progress.say(f"{name}: {args.seconds:g} s of dense pattern")
        figures["conditions"][name] = send_errors(sequencer, args.seconds)
        if note:
            figures["conditions"][name]["load"] = note()
    figures["sched_fifo"] = sequencer.realtime
    return figures


def send_errors(sequencer, seconds: float) -> dict:
    """Let ``sequencer`` play ``seconds``: how late its first output's sender sent each timed
    message, how late the sequencer handed each over (against ``lead`` before its due time),
    and its CPU use."""
    sequencer.timing.clear()
    output = sequencer.outputs[0]
    histogram0 = np.array(output.lateness() or [0] * BUCKETS)
    dropped0 = sum(sequencer.timing.dropped)
    sender_dropped0 = output.dropped_by_sender()
    cpu0, process0, wall0 = sequencer.cpu_time(), time.process_time(), time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - wall0
    rows = sequencer.timing.rows()
    histogram = np.array(output.lateness() or [0] * BUCKETS) - histogram0
    return {
        **lateness_figures(histogram.tolist()),
        "handed": distribution((rows[:, 1] - rows[:, 0] + sequencer.lead) * 1e3, 4),
        "dropped_late": int(sum(sequencer.timing.dropped) - dropped0
                            + output.dropped_by_sender() - sender_dropped0),
        "sequencer_cpu_percent": round(100 * (sequencer.cpu_time() - cpu0) / wall, 2),
        "process_cpu_percent": round(100 * (time.process_time() - process0) / wall, 2),
    }


def distribution(errors_ms: np.ndarray, digits: int) -> dict:
    """p50/p99/max/min of timing errors in milliseconds, and how many are late."""
    return {"p50_ms": round(float(np.percentile(errors_ms, 50)), digits),
            "p99_ms": round(float(np.percentile(errors_ms, 99)), digits),
            "max_ms": round(float(errors_ms.max()), digits),
            "min_ms": round(float(errors_ms.min()), digits),
            "late": int(np.count_nonzero(errors_ms > LATE_MS))}


def dense_schedule(kit, machine, features: bool = False):
    """Every voice on every step, offsets spread over +-half a step (seeded), light swing;
    ``features``: with a chance (0.9) and a condition on every voice, a condition on every
    fifth step, 2-bar phrases with their fills."""
    from rvaed.core.conditions import CONDITIONS
    from rvaed.core.pattern import Grid, Pattern
    from rvaed.engine.schedule import Playback, build_schedule

    grid = Grid()
    rng = np.random.default_rng(0)
    shape = (kit.size, grid.steps)
    pattern = Pattern(np.ones(shape), rng.uniform(0.3, 1.0, shape), rng.uniform(-0.5, 0.5, shape))
    playback = Playback(swing=0.55)
    if features:
        names = ("not fill", "always", "not pre", "nei", "not 1st", "2:2", "fill", "not nei",
                 "1:2")
        steps = tuple((s % kit.size, s, ("75%", "pre", "not fill")[s % 3])
                      for s in range(0, grid.steps, 5))
        playback = Playback(swing=0.55, chance=(0.9,) * kit.size, seed=7, phrase=2, fills=True,
                            conditions=tuple(CONDITIONS.index(names[v % len(names)])
                                             for v in range(kit.size)), steps=steps)
    return build_schedule(pattern, grid, playback, machine)


def _print(figures: dict) -> None:
    dense = "dense pattern, every variation on" if figures["features"] else "dense pattern"
    print(f"MIDI send-time error at {figures['bpm']:g} BPM, {dense} + MIDI clock, "
          f"{figures['seconds']:g} s per condition, port {figures['port']}, "
          f"lead {figures['lead_ms']:g} ms, "
          f"SCHED_FIFO {'granted' if figures['sched_fifo'] else 'refused'}, "
          f"switch interval {figures['switch_interval'] or 'Python default'}")
    print(f"{'condition':<10} {'messages':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{f'late>{LATE_MS:g}ms':>10} {'seq CPU%':>9} {'proc CPU%':>9}")
    for name, row in figures["conditions"].items():
        print(f"{name:<10} {row['messages']:>8} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
              f"{row['max_ms']:>8.3f} {row['late']:>10} {row['sequencer_cpu_percent']:>9.1f} "
              f"{row['process_cpu_percent']:>9.1f}")
    print("(as sent by the output's sender process, 10 us buckets); the sequencer's hand-over "
          "later than its lead, and messages dropped too late:")
    for name, row in figures["conditions"].items():
        handed = row["handed"]
        print(f"{name:<10} {'':>8} {handed['p50_ms']:>8.3f} {handed['p99_ms']:>8.3f} "
              f"{handed['max_ms']:>8.3f} {row['dropped_late']:>10} dropped")
    print_loads(figures["conditions"])


def print_loads(conditions: dict) -> None:
    """What ran beside the measurement in each condition."""
    for name, row in conditions.items():
        if "load" in row:
            print(f"  {name}: {row['load']}")
