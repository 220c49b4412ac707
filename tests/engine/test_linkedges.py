"""The edges of a Link session against a second Link peer in its own process: joining, a
stopped session, and peer starts seen late (Link delivers start/stop 0.6-102 ms late).

The receiver is a JACK MIDI input stamping arrivals on Link's clock (CLOCK_MONOTONIC_RAW), so
every note is placed on the peer's own beat grid. Link runs only inside a loopback-only network
namespace (the link_network fixture). `rvaed bench linkedges` runs the same checks many times.
"""

import contextlib
import itertools
import time

import pytest
from jackmidi import PERIOD, Receiver
from linkpeer import Peer, eventually

from rvaed.core.drummachine import load_drum_machine
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid, Hit, Pattern
from rvaed.engine.clock import LATE_START, now
from rvaed.engine.linkclock import LinkClock
from rvaed.engine.midiout import Output
from rvaed.engine.schedule import Playback, build_schedule
from rvaed.engine.sequencer import ON, Sequencer

KICK, HAT = 36, 42  # the gm drum machine's notes for voices 0 and 2
# At the receiver: its JACK period plus its Python callback's wake-up on a loaded machine. The
# 1 ms target is checked on the sequencer's record of when each note left.
HEARD_MS, SENT_MS = 1000 * PERIOD + 3.0, 1.0


def downbeat_pattern(kit) -> Pattern:
    """A kick on step 0 only, a closed hat on every other beat: the first note heard tells
    whether step 0 played."""
    grid = Grid()
    hits = [Hit(0, 0, 100, 0.0), *(Hit(2, s, 80, 0.0) for s in range(4, grid.steps, 4))]
    return Pattern.from_hits(hits, kit.size, grid.steps)


@contextlib.contextmanager
def playing_on(clock: LinkClock, name: str):
    """rvaed's sequencer on ``clock`` playing the downbeat pattern to a receiver."""
    kit = load_kit()
    machine = load_drum_machine("gm", kit)
    receiver = Receiver(name)
    sequencer = Sequencer(clock, [Output(name, machine, api="jack", poll=0.05)])
    sequencer.install(build_schedule(downbeat_pattern(kit), Grid(), Playback(), machine))
    sequencer.start()
    try:
        yield receiver, sequencer
    finally:
        sequencer.stop()
        time.sleep(0.05)
        receiver.close()
        clock.close()


def note_ons(receiver: Receiver, after: float = 0.0) -> list[tuple[float, int]]:
    return [(t, m[1]) for t, m in receiver.kinds(0x90) if m[2] > 0 and t >= after]


def first_sent(sequencer: Sequencer, after: float) -> float:
    """When the sequencer sent its first note-on at or after ``after``."""
    rows = sequencer.timing.rows()
    sent = rows[(rows[:, 2] == ON) & (rows[:, 1] >= after)][:, 1]
    return float(sent[0])


def on_the_bar(peer: Peer, receiver: Receiver, sequencer: Sequencer, after: float,
               what: str, late: float = 0.0) -> None:
    """The first note-on from ``after`` is step 0's kick, on a bar line of the peer's grid:
    sent within `SENT_MS` (plus ``late`` seconds allowed late), heard within `HEARD_MS`."""
    heard = note_ons(receiver, after)[0]
    assert heard[1] == KICK, f"{what}: step 0 missing (first heard note {heard[1]})"
    sent = grid_error_ms(peer, first_sent(sequencer, after), 4.0)[1]
    assert -SENT_MS < sent < SENT_MS + 1000 * late, f"{what}: sent {sent:.3f} ms off the bar"
    error = grid_error_ms(peer, heard[0], 4.0)[1]
    assert -0.5 < error < HEARD_MS + 1000 * late, f"{what}: heard {error:.3f} ms off"


def grid_error_ms(peer: Peer, arrival: float, unit: float) -> tuple[float, float]:
    """The peer's beat at ``arrival`` and its distance (ms) to the nearest multiple of
    ``unit`` beats on the peer's grid."""
    state = peer.ask()
    beat = state["beat"] + (arrival - state["time"]) * state["tempo"] / 60
    nearest = round(beat / unit) * unit
    return beat, (beat - nearest) * 60 / state["tempo"] * 1000


def test_joining_is_silent_until_joined_and_its_first_note_is_on_the_session_bar_line(
        link_network, jack_server):
    peer = Peer(140)
    try:
        peer.ask("play 1")
        time.sleep(1.0)  # the session exists before rvaed joins, as a running Live set does
        for n in range(3):
            clock = LinkClock(tempo=120, enabled=True, start_stop_sync=False)
            clock.set_playing(True)
            with playing_on(clock, f"rx-join-{n}") as (receiver, sequencer):
                assert eventually(lambda c=clock: not c.joining, 3)
                joined = now()
                assert clock.peers == 1
                assert receiver.wait_for(lambda m: len(m) >= 4, timeout=8)
                heard = note_ons(receiver)
            assert heard[0][0] >= joined - 0.003  # nothing before the join was decided
            on_the_bar(peer, receiver, sequencer, 0.0, f"join {n}")
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(heard)]
            assert min(gaps) > 0.9 * 60 / 140, f"join {n}: a burst ({min(gaps):.4f} s)"
    finally:
        peer.close()


def test_a_stopped_session_keeps_rvaed_stopped_until_a_peer_plays(link_network, jack_server):
    peer = Peer(140)
    try:
        time.sleep(1.0)
        clock = LinkClock(tempo=120, enabled=True)
        clock.set_playing(True)  # as the daemon asks at start
        with playing_on(clock, "rx-stopped") as (receiver, sequencer):
            assert eventually(lambda: not clock.joining, 3) and clock.peers == 1
            beat = peer.ask()["beat"]
            assert eventually(lambda: peer.ask()["beat"] > beat + 8, 10)  # two bars later
            assert note_ons(receiver) == [] and not clock.playing
            assert not peer.ask()["playing"]  # and rvaed did not start the session either
            peer.ask("play 1")
            assert receiver.wait_for(lambda m: len(m) >= 2, timeout=8)
        on_the_bar(peer, receiver, sequencer, 0.0, "start after a stopped join")
    finally:
        peer.close()


@pytest.mark.parametrize("leads", [(0, 8, 20, 35, 50, 100)])
def test_peer_starts_just_before_a_bar_line_never_lose_step_0(link_network, jack_server,
                                                              leads):
    peer = Peer(120)
    try:
        time.sleep(1.0)
        clock = LinkClock(tempo=120, enabled=True)
        with playing_on(clock, "rx-downbeat") as (receiver, sequencer):
            assert eventually(lambda: not clock.joining, 3) and clock.peers == 1
            for lead in leads:
                started = peer.ask(f"startbefore {lead}")["time"]
                assert receiver.wait_for(lambda m, t=started: len(note_ons(receiver, t)) >= 2,
                                         timeout=8)
                on_the_bar(peer, receiver, sequencer, started, f"start {lead} ms before a bar",
                           LATE_START)
                peer.ask("play 0")
                assert eventually(lambda: not clock.playing, 3)
    finally:
        peer.close()
