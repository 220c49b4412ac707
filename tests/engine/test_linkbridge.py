"""A MIDI clock master bridged into a Link session: rvaed follows the hardware's clock and the
session (here a Link peer in its own process) takes its tempo, beat and start/stop.

Real parts: a MIDI clock source in its own process through a private JACK server, a second
Link peer in its own process, inside the loopback-only network namespace (link_network).
"""

import json
import subprocess
import sys
import time

import numpy as np
from clocksource import SOURCE

from rvaed.benchmarks.linkpeer import Peer, eventually
from rvaed.engine.bridge import LinkBridge
from rvaed.engine.linkclock import LinkClock
from rvaed.engine.midiclockin import TICKS_PER_BEAT, MidiClockIn

BPM, BEATS, QUANTUM = 132.0, 8, 4.0


def test_a_midi_clock_master_leads_the_link_session(link_network, jack_server):
    peer = Peer(100)  # a session of its own first, stopped, at another tempo
    time.sleep(1.0)
    source = subprocess.Popen([sys.executable, "-c", SOURCE, str(BPM), "0", "48",
                               str(BEATS * TICKS_PER_BEAT), str(1 << 30), "0"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert source.stdout.readline().strip() == "ready"
        master = MidiClockIn(quantum=QUANTUM)
        master.listen("clock-source", api="jack")
        bridge = LinkBridge(master, LinkClock(tempo=120, quantum=QUANTUM, enabled=True))
        try:
            assert eventually(lambda: bridge.peers == 1 and peer.ask()["peers"] == 1, 5)
            source.stdin.write("go\n")
            source.stdin.flush()
            assert eventually(lambda: master.playing, 5), "the master's Start was not seen"
            assert eventually(lambda: peer.ask()["playing"], 1), "the session did not start"
            time.sleep(2 * 60 / BPM)  # two beats in
            samples = []
            for _ in range(20):
                samples.append((peer.ask(), master.timeline()))
                time.sleep(0.04)
            json.loads(source.stdout.readline())  # the master played its beats and stopped
            assert eventually(lambda: not peer.ask()["playing"], 2), "the session did not stop"
        finally:
            bridge.close()
    finally:
        source.wait(10)
        peer.close()
    tempos = np.array([state["tempo"] for state, _ in samples])
    off = np.array([state["beat"] - line.beat_at(state["time"]) for state, line in samples])
    phase_ms = ((off + QUANTUM / 2) % QUANTUM - QUANTUM / 2) * 60 / BPM * 1000
    print(f"peer vs master: tempo {tempos.min():.3f}-{tempos.max():.3f} BPM, phase median "
          f"{np.median(phase_ms):+.3f} ms, max |e| {np.abs(phase_ms).max():.3f} ms, "
          f"{bridge.commits} commits")
    assert np.abs(tempos - BPM).max() < 0.1
    assert np.abs(phase_ms).max() < 2.0
