"""A receiving end for tests: a JACK MIDI input port that stamps every arrival.

The port lives in a process of its own (this file run as a script): a python-rtmidi input in
the process under test waits for that process's GIL in JACK's process callback, and on a
loaded machine it lost events and garbled simultaneous ones (a note-off and a note-on in one
period arriving as two copies of one of them), which read as stuck or missing notes that rvaed
never caused. The child stamps each message in the callback on rvaed's host clock
(CLOCK_MONOTONIC_RAW, one clock for every process), so arrival times compare directly with the
times the sequencer scheduled.

The tests' JACK server (tests/conftest.py) runs periods of `FRAMES` frames at 48 kHz: an
arrival is up to one period (plus the callback's wake-up) after the send. Not 64 frames
(1.33 ms): on the shared test machines a dummy-driver server without real-time priority then
runs late cycles about ten times a second, even with only two idle clients, and a cycle a
client misses loses or repeats the MIDI in it, for every receiver (jack_midi_dump too). At 256
frames no message was lost or repeated in 20 runs of a sequencer test under 4 and 8 busy loops
(at 64: 6 runs in 10 lost or repeated some, idle); under a heavier load (a whole test run
beside, load 8) 5 runs in 8 still lost some, and none with the server's real-time priority
(jackd -R, where the machine grants it), which the tests' server asks for. docs/decisions.md
has the figures.
"""

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque

from rvaed.benchmarks.harness import (
    end_with_parent,
    free_jack_name,
    jack_ports,
    start_jack,
    stop_jack,
)
from rvaed.engine.clock import now

FRAMES = 256
PERIOD = FRAMES / 48000
ARRIVAL = struct.Struct("<dB3s")  # arrival (host time), length, up to 3 message bytes
READY = b"R"
DRAIN = 0.002  # seconds between the child's writes of what arrived


class Receiver:
    """A JACK input port ``name:name`` in a child process collecting (arrival, message)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[tuple[float, tuple[int, ...]]] = []
        self._child = subprocess.Popen(
            [sys.executable, __file__, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "JACK_NO_START_SERVER": "1"}, preexec_fn=end_with_parent)
        assert self._child.stdout is not None
        if self._child.stdout.read(1) != READY:
            self._child.wait(5)
            raise RuntimeError(f"the receiver {name} did not open its port "
                               f"(exit {self._child.returncode})")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def port(self) -> str:
        return f"{self.name}:{self.name}"

    def _read(self) -> None:
        assert self._child.stdout is not None
        while record := self._child.stdout.read(ARRIVAL.size):
            if len(record) < ARRIVAL.size:
                break
            arrival, length, data = ARRIVAL.unpack(record)
            self.messages.append((arrival, tuple(data[:length])))

    def connect_from(self, output_client: str) -> None:
        """Connect a JACK output port (part of its name) to this input (no rvaed involved)."""
        deadline = time.monotonic() + 5
        while True:  # jack_lsp can come back empty when the server is slow to accept a client
            outputs = jack_ports()
            sources = [line.strip() for line in outputs.splitlines() if output_client in line]
            if sources or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert sources, f"no JACK port named like {output_client!r} in:\n{outputs}"
        subprocess.run(["jack_connect", sources[0], self.port], check=True)

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def kinds(self, status: int) -> list[tuple[float, tuple[int, ...]]]:
        """The messages whose status high nibble is ``status`` (0x90 note-on, 0x80 ...)."""
        return [(t, m) for t, m in self.messages if m[0] & 0xF0 == status]

    def close(self) -> None:
        """Close the port (what arrived before is kept); the child exits."""
        assert self._child.stdin is not None
        self._child.stdin.close()
        try:
            self._child.wait(5)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._reader.join(5)


def _receive(name: str) -> None:
    """The child: open the port, write what arrives every `DRAIN` seconds, until stdin closes."""
    import select

    import rtmidi

    arrived: deque = deque()
    port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
    port.ignore_types(timing=False)
    port.set_callback(lambda event, _: arrived.append((now(), event[0])))
    port.open_virtual_port(name)
    out = sys.stdout.buffer
    out.write(READY)
    out.flush()
    while True:
        done = bool(select.select([sys.stdin], [], [], DRAIN)[0])
        while arrived:
            arrival, message = arrived.popleft()
            out.write(ARRIVAL.pack(arrival, min(len(message), 3), bytes(message[:3])))
        out.flush()
        if done:
            break
    port.close_port()
    port.delete()


def densest(times: list[float], window: float = 0.010) -> int:
    """The most messages received within any ``window`` seconds: a burst shows as many."""
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


class OwnServer:
    """The test's own JACK server: stoppable, hangable, restartable under one name."""

    def __init__(self, realtime: bool) -> None:
        self.name = free_jack_name("rvaed-loss")
        self.realtime = realtime
        self.process = start_jack(self.name, realtime=realtime)

    def restart(self) -> None:
        self.process = start_jack(self.name, realtime=self.realtime)

    def close(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            stop_jack(self.process)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _receive(sys.argv[1])
