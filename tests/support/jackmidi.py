"""A receiving end for engine tests: a JACK MIDI input port that stamps every arrival.

Arrival times are on rvaed's host clock (CLOCK_MONOTONIC_RAW), so they compare directly with
the times the sequencer scheduled. JACK's dummy driver delivers in periods of 64 frames at
48 kHz: an arrival is up to one period (plus the Python callback's wake-up) after the send.

`MidiDump` receives through jackd2's own jack_midi_dump in a separate process instead: no
python-rtmidi input in the process under test, which under load can garble simultaneous
events (several notes arriving as copies of the first). Its stamps are when a line was read,
good to tens of milliseconds: for counting and pairing notes, not for timing.
"""

import os
import signal
import subprocess
import threading
import time

import rtmidi

from rvaed.benchmarks.harness import free_jack_name, jack_ports, start_jack, stop_jack
from rvaed.engine.clock import now

PERIOD = 64 / 48000


class Receiver:
    """A python-rtmidi JACK input port named ``name`` collecting (arrival, message) pairs."""

    port_suffix = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[tuple[float, tuple[int, ...]]] = []
        self._port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
        self._port.ignore_types(timing=False)
        self._port.set_callback(lambda event, _: self.messages.append((now(), tuple(event[0]))))
        self._port.open_virtual_port(name)

    @property
    def port(self) -> str:
        return f"{self.name}:{self.name}"

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
        self._port.close_port()
        self._port.delete()


class MidiDump(Receiver):
    """The same interface, receiving through a jack_midi_dump process (see the module doc)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages = []
        self._dump = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", name],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 5
        while self.port not in jack_ports():
            if time.monotonic() > deadline:
                raise RuntimeError("jack_midi_dump did not start")
            time.sleep(0.05)

    @property
    def port(self) -> str:
        return f"{self.name}:input"

    def _read(self) -> None:
        for line in self._dump.stdout:
            head = line.split(":", 1)[1].split()[:3] if ":" in line else []
            self.messages.append((now(), tuple(int(byte, 16) for byte in head)))

    def close(self) -> None:
        self._dump.terminate()
        self._dump.wait(5)


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
