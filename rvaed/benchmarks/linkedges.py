"""The edges of a Link session, many times over: joining, a stopped session, late peer starts,
and the steady bar line, against a second Link peer in its own process.

rvaed's sequencer plays a pattern whose only step-0 note is a kick (a closed hat on the other
beats) to a JACK MIDI input in a process of its own that stamps each arrival on Link's clock
(CLOCK_MONOTONIC_RAW); the peer reports its beat at a known time, so every note is placed on
the peer's own grid. Figures are given twice: when the sequencer had each note sent (its
due time, which the output's sender keeps) and when it arrived (which adds the sender's
lateness, up to one JACK period and the receiving callback's wake-up).
- joins: rvaed (start/stop sync off, so it plays once joined) joins a session playing at 140
  BPM: nothing before the join is decided, the first note step 0 on a bar line, no burst.
- stopped: rvaed (start/stop sync on, asked to play) joins a stopped session: silent for two
  bars; the peer then starts and step 0 lands on its bar line.
- downbeats: the peer starts 0-100 ms before a bar line (Link delivers it 0.6-102 ms late):
  the first note after every start is step 0.
- steady: every bar-line kick of a long run, against the peer's grid.
Link multicasts on every interface: run it inside a loopback-only network namespace,
`unshare -n sh -c 'ip link set lo up; ip link set lo multicast on;
ip route add 224.0.0.0/4 dev lo; exec rvaed bench linkedges'`.
"""

import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np

from rvaed.benchmarks.harness import private_jack_server, wait_for
from rvaed.benchmarks.linkpeer import Peer, eventually
from rvaed.benchmarks.startup import only_loopback
from rvaed.core.errors import RvaedError

HELP = "Link joins, stopped sessions, late peer starts and the bar line, against a Link peer"
KICK = 36  # the gm drum machine's note for voice 0
PERIOD = 64 / 48000  # the private JACK server's period


def add_arguments(parser) -> None:
    parser.add_argument("--joins", type=int, default=20, help="joins (default 20)")
    parser.add_argument("--stopped", type=int, default=20,
                        help="joins of a stopped session (default 20)")
    parser.add_argument("--starts", type=int, default=100,
                        help="peer starts 0-100 ms before a bar line (default 100)")
    parser.add_argument("--bars", type=int, default=60, help="steady bars (default 60)")


RECEIVER = """
import sys, time, rtmidi
port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=sys.argv[1])
def stamp(event, _):
    sys.stdout.write(f"{time.clock_gettime(time.CLOCK_MONOTONIC_RAW)!r} "
                     f"{' '.join(map(str, event[0]))}\\n")
    sys.stdout.flush()
port.set_callback(stamp)
port.open_virtual_port(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


class Receiver:
    """A python-rtmidi JACK MIDI input in a process of its own (so the sender's process and
    its GIL delay no stamp), stamping each arrival on Link's clock (CLOCK_MONOTONIC_RAW)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[tuple[float, tuple[int, ...]]] = []
        self._process = subprocess.Popen([sys.executable, "-c", RECEIVER, name], text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._in, self._out = self._process.stdin, self._process.stdout
        if self._out.readline().strip() != "ready":
            raise RvaedError(f"the receiver {name} did not start")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._out:
            stamp, *data = line.split()
            self.messages.append((float(stamp), tuple(map(int, data))))

    def note_ons(self, after: float = 0.0) -> list[tuple[float, int]]:
        return [(t, m[1]) for t, m in list(self.messages)
                if m[0] & 0xF0 == 0x90 and m[2] > 0 and t >= after]

    def close(self) -> None:
        self._in.close()
        self._process.wait(5)
        self._reader.join(5)


class Rig:
    """rvaed's sequencer on a Link clock, playing the downbeat pattern (a kick on the loop's
    step 0, a hat on its other beats; ``grid`` default 2 bars of 4/4) to a `Receiver`."""

    def __init__(self, clock, name: str, grid=None) -> None:
        from rvaed.core.drummachine import load_drum_machine
        from rvaed.core.kit import load_kit
        from rvaed.core.pattern import Grid, Hit, Pattern
        from rvaed.engine.midiout import Output
        from rvaed.engine.schedule import Playback, build_schedule
        from rvaed.engine.sequencer import Sequencer

        kit, grid = load_kit(), grid or Grid()
        machine = load_drum_machine("gm", kit)
        hits = [Hit(0, 0, 100, 0.0), *(Hit(2, s, 80, 0.0)
                                       for s in range(grid.steps_per_beat, grid.steps,
                                                      grid.steps_per_beat))]
        pattern = Pattern.from_hits(hits, kit.size, grid.steps)
        self.clock = clock
        self.receiver = Receiver(name)
        output = Output(name, machine, api="jack", poll=0.05)
        self.sequencer = Sequencer(clock, [output], grid=grid)
        self.sequencer.install(build_schedule(pattern, grid, Playback(), machine))
        self.sequencer.start()
        wait_for(lambda: output.connected, 10, f"no MIDI port {name!r}")

    def due_on(self, after: float = 0.0) -> np.ndarray:
        """The due time of each note-on the sequencer had sent at or after ``after``."""
        from rvaed.engine.sequencer import ON

        rows = self.sequencer.timing.rows()
        return rows[(rows[:, 2] == ON) & (rows[:, 0] >= after)][:, 0]

    def close(self) -> None:
        self.sequencer.stop()
        time.sleep(0.05)
        self.receiver.close()
        self.clock.close()


@contextlib.contextmanager
def rig(clock, name: str, grid=None) -> Iterator[Rig]:
    played = Rig(clock, name, grid)
    try:
        yield played
    finally:
        played.close()


def bar_error_ms(peer: Peer, times) -> np.ndarray:
    """How far (ms) each of ``times`` (Link's clock) lies from the peer's nearest bar line."""
    state, bar = peer.ask(), peer.quantum
    beats = state["beat"] + (np.asarray(times) - state["time"]) * state["tempo"] / 60
    return (beats - np.round(beats / bar) * bar) * 60 / state["tempo"] * 1000


def first_note(peer: Peer, played: Rig, after: float) -> dict:
    """The first note-on from ``after``: whether it is step 0's kick, and its distance from the
    peer's bar line as the sequencer had it sent and as it was heard (ms)."""
    time_heard, note = played.receiver.note_ons(after)[0]
    heard_ms, due_ms = bar_error_ms(peer, [time_heard, played.due_on(after)[0]])
    return {"step0": note == KICK, "due_ms": float(due_ms), "heard_ms": float(heard_ms)}


def join(peer: Peer, name: str) -> dict:
    """rvaed joins ``peer``'s playing session; its first note and the shortest gap after it."""
    from rvaed.engine.clock import now
    from rvaed.engine.linkclock import LinkClock

    clock = LinkClock(tempo=120, enabled=True, start_stop_sync=False)
    clock.set_playing(True)
    with rig(clock, name) as played:
        _until_joined(clock)  # decided alone first (a slow discovery): notes before the join
        joined = now()
        if not eventually(lambda: len(played.receiver.note_ons()) >= 4, 8):
            raise RvaedError("nothing played after the join")
        heard = played.receiver.note_ons()
        figures = first_note(peer, played, 0.0)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(heard)]
    return {**figures, "before_join": heard[0][0] < joined - 0.003,
            "burst": min(gaps) < 0.9 * 60 / peer.ask()["tempo"]}


def stopped(peer: Peer, name: str) -> dict:
    """rvaed, asked to play, joins ``peer``'s stopped session: notes in two bars (should be
    none), then the peer starts: the first note."""
    from rvaed.engine.linkclock import LinkClock

    clock = LinkClock(tempo=120, enabled=True)
    clock.set_playing(True)
    with rig(clock, name) as played:
        _until_joined(clock)
        beat = peer.ask()["beat"]
        eventually(lambda: peer.ask()["beat"] > beat + 8, 10)
        silent = {"notes_while_stopped": len(played.receiver.note_ons()),
                  "peer_started": peer.ask()["playing"]}
        started = peer.ask("play 1")["time"]
        if not eventually(lambda: len(played.receiver.note_ons(started)) >= 2, 8):
            raise RvaedError("nothing played after the peer started")
        figures = first_note(peer, played, started)
        peer.ask("play 0")
    return {**silent, **figures}


def downbeats(peer: Peer, played: Rig, leads_ms) -> list[dict]:
    """For each lead: the peer starts that long before a bar line; the first note after it."""
    rows = []
    for lead in leads_ms:
        started = peer.ask(f"startbefore {lead}")["time"]
        if not eventually(lambda t=started: len(played.receiver.note_ons(t)) >= 2, 8):
            raise RvaedError(f"nothing played after a start {lead} ms before a bar line")
        rows.append({"lead_ms": float(lead), **first_note(peer, played, started)})
        peer.ask("play 0")
        eventually(lambda: not played.clock.playing, 3)
    return rows


def steady(peer: Peer, played: Rig, bars: int) -> dict:
    """Every bar-line kick over ``bars`` bars of a running session."""
    started = peer.ask("play 1")["time"]
    eventually(lambda: sum(n == KICK for _, n in played.receiver.note_ons(started)) >= bars / 2,
               bars * 4 * 60 / peer.ask()["tempo"] + 10)
    kicks = [t for t, n in played.receiver.note_ons(started) if n == KICK]
    peer.ask("play 0")
    due_bars = bar_error_ms(peer, played.due_on(started))
    return {"kicks": len(kicks), "heard": _spread(bar_error_ms(peer, kicks)),
            "due": _spread(due_bars[np.abs(due_bars) < 50])}  # kicks only (hats: off-bar)


def _spread(errors: np.ndarray) -> dict:
    magnitude = np.abs(errors)
    return {"median_ms": round(float(np.median(errors)), 3),
            "p99_abs_ms": round(float(np.percentile(magnitude, 99)), 3),
            "max_abs_ms": round(float(magnitude.max()), 3)}


def run(args) -> dict:
    if not only_loopback():
        raise RvaedError("rvaed bench linkedges enables Ableton Link, which multicasts on every "
                         "interface: run it in a loopback-only network namespace (see "
                         "`rvaed bench linkedges --help`)")
    figures: dict = {}
    with private_jack_server():
        peer = Peer(140)
        try:
            peer.ask("play 1")
            time.sleep(1.0)
            joins = [join(peer, f"linkedges-join-{n}") for n in range(args.joins)]
            peer.ask("play 0")
            stops = [stopped(peer, f"linkedges-stopped-{n}") for n in range(args.stopped)]
            clock = _joined_clock()
            with rig(clock, "linkedges-downbeats") as played:
                leads = np.linspace(0, 100, args.starts)
                starts = downbeats(peer, played, leads)
                figures["steady"] = steady(peer, played, args.bars)
        finally:
            peer.close()
    figures["joins"] = _summary(joins, ("step0",), ("before_join", "burst"))
    figures["stopped"] = {**_summary(stops, ("step0",), ()),
                          "silent": sum(r["notes_while_stopped"] == 0
                                        and not r["peer_started"] for r in stops)}
    figures["downbeats"] = _summary(starts, ("step0",), ())
    _print(figures)
    return figures


def _joined_clock():
    from rvaed.engine.linkclock import LinkClock

    clock = LinkClock(tempo=120, enabled=True)
    _until_joined(clock)
    return clock


def _until_joined(clock) -> None:
    """Wait until ``clock`` has decided and sees the peer."""
    if not (eventually(lambda: not clock.joining, 3) and eventually(lambda: clock.peers, 5)):
        raise RvaedError("rvaed did not join the peer's session")


def _summary(rows: list[dict], good: tuple[str, ...], bad: tuple[str, ...]) -> dict:
    due = np.array([r["due_ms"] for r in rows])
    heard = np.array([r["heard_ms"] for r in rows])
    return {"runs": len(rows), **{k: sum(bool(r[k]) for r in rows) for k in good + bad},
            "due": _spread(due), "heard": _spread(heard)}


def _print(figures: dict) -> None:
    print(f"Link edges against a peer process (JACK period {1000 * PERIOD:.3f} ms; errors from "
          "the peer's bar line, due = when the sequencer had it sent, heard = at the receiver)")
    for name in ("joins", "stopped", "downbeats"):
        row = figures[name]
        counts = ", ".join(f"{k} {v}" for k, v in row.items() if isinstance(v, int))
        print(f"{name:<10} {counts}; due {_fmt(row['due'])}; heard {_fmt(row['heard'])}")
    row = figures["steady"]
    print(f"{'steady':<10} kicks {row['kicks']}; due {_fmt(row['due'])}; "
          f"heard {_fmt(row['heard'])}")


def _fmt(spread: dict) -> str:
    return (f"median {spread['median_ms']:+.3f} p99|.| {spread['p99_abs_ms']:.3f} "
            f"max|.| {spread['max_abs_ms']:.3f} ms")
