"""An output on JACK sends early by its destination's playback latency, as LinkHut does.

The destination is jackd2's jack_midisine (a real synth client in its own process) whose audio
goes to the dummy driver's playback port; JACK sums the latency along the connection, and
`jack_lsp -l` (JACK's own tool) says what it is.
"""

import re
import subprocess
import time

import pytest
from jackmidi import Receiver

from rvaed.benchmarks.harness import jack_lsp, jack_ports
from rvaed.engine.jacklatency import playback_latency
from rvaed.engine.midiout import Output

RATE = 48000


def lsp_playback_frames(port: str) -> int:
    listing = jack_lsp("-l", port).stdout
    return int(re.search(r"playback latency = \[ \d+ (\d+) \]", listing).group(1))


@pytest.fixture
def synth(jack_server):
    process = subprocess.Popen(["jack_midisine"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "midisine:audio_out" not in jack_ports():
            assert time.monotonic() < deadline, "jack_midisine did not start"
            time.sleep(0.05)
        subprocess.run(["jack_connect", "midisine:audio_out", "system:playback_1"], check=True)
        yield "midisine:midi_in"
    finally:
        process.terminate()
        process.wait(5)


def wait_connected(output: Output) -> None:
    deadline = time.monotonic() + 10
    while not output.connected:
        assert time.monotonic() < deadline, "the output did not connect"
        time.sleep(0.02)


def test_the_destination_playback_latency_is_added_to_the_configured_one(synth):
    frames = lsp_playback_frames(synth)
    assert frames > 0  # the synth's sound goes through the driver's playback buffers
    assert playback_latency(synth) == pytest.approx(frames / RATE)
    output = Output("midisine", latency_ms=1.5, api="jack", poll=0.05)
    output.open()
    try:
        wait_connected(output)
        assert output.latency == pytest.approx(0.0015 + frames / RATE)
        output.retune(Output("midisine", latency_ms=-0.5, api="jack"))  # a reload
        assert output.latency == pytest.approx(-0.0005 + frames / RATE)
    finally:
        output.close()


def test_a_destination_with_no_playback_path_adds_nothing(jack_server):
    receiver = Receiver("rx-latency")
    output = Output("rx-latency", latency_ms=2.0, api="jack", poll=0.05)
    output.open()
    try:
        wait_connected(output)
        assert output.latency == pytest.approx(0.002)
        assert playback_latency("no-such-client:port") == 0.0
    finally:
        output.close()
        receiver.close()
