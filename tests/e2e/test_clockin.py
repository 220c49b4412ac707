"""End to end: the real daemon following a MIDI clock master (a JACK clock source in its own
process) and leading a Link peer (its own process, loopback-only namespace) with it."""

import json
import subprocess
import sys
import time

import numpy as np
from clocksource import SOURCE
from jackmidi import PERIOD
from rig import DaemonProcess, free_udp_port, wait_until

from rvaed.benchmarks.linkpeer import Peer, eventually
from rvaed.engine.midiclockin import TICKS_PER_BEAT

BPM, BEATS = 100.0, 12
NOTE_ON = 0x90
TICK = 60 / (BPM * TICKS_PER_BEAT)


def test_the_daemon_plays_on_the_masters_ticks_and_leads_link(tmp_path, jack_server,
                                                               link_network, receiver):
    peer = Peer(140)
    source = subprocess.Popen([sys.executable, "-c", SOURCE, str(BPM), "0", "48",
                               str(BEATS * TICKS_PER_BEAT), str(1 << 30), "0"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    daemon = DaemonProcess(tmp_path, free_udp_port(),
                           midi={"api": "jack", "clock_input": "clock-source"})
    try:
        assert source.stdout.readline().strip() == "ready"
        daemon.start()
        receiver.connect_from("rvaed:rvaed")
        daemon.osc("/rvaed/timing", 0.0)  # quantized: every hit on a step of the master's
        wait_until(lambda: "led by the MIDI clock" in daemon.text(), 10, daemon)
        assert eventually(lambda: peer.ask()["peers"] == 1, 5)
        assert not receiver.kinds(NOTE_ON), "played before the master's Start"
        source.stdin.write("go\n")
        source.stdin.flush()
        ideal = np.array(json.loads(source.stdout.readline()))  # played, then Stop
        state = peer.ask()
        assert eventually(lambda: not peer.ask()["playing"], 2), "the session did not stop"
        stopped = len(receiver.kinds(NOTE_ON))
        time.sleep(0.5)
    finally:
        daemon.stop()
        source.wait(10)
        peer.close()
    ons = np.array([t for t, _ in receiver.kinds(NOTE_ON)])
    assert len(ons) > 2 * BEATS, daemon.text()[-2000:]
    steps = ideal[::TICKS_PER_BEAT // 4]  # the master's 16ths
    late_ms = (ons - steps[np.clip(np.searchsorted(steps, ons + 0.01) - 1, 0, None)]) * 1000
    print(f"{len(ons)} note-ons; first {1000 * (ons[0] - ideal[0]):+.2f} ms after the master's "
          f"first tick; behind the master's 16ths median {np.median(late_ms):.2f} ms, max "
          f"{late_ms.max():.2f} ms; the peer at {state['tempo']:.3f} BPM")
    assert -1.0 < 1000 * (ons[0] - ideal[0]) < 1000 * (TICK + PERIOD)  # Start: its first tick
    assert np.median(late_ms) < 1000 * PERIOD + 3.0
    assert abs(state["tempo"] - BPM) < 0.1  # the Link session took the master's tempo
    assert stopped == len(receiver.kinds(NOTE_ON))  # Stop: silent
