"""A MIDI backend that hangs, stops or restarts never freezes the sender, and is reopened.

Each test has a private JACK server of its own (dummy driver) that it SIGSTOPs, terminates
and starts again; jackd2's jack_midi_dump (rvaed.benchmarks.harness.Sink, another process)
receives and stamps every message with its JACK frame, so bursts are counted at the receiver.
A ticker thread in this process proves the interpreter never froze (python-rtmidi holds the
GIL in its calls: a send or client creation against a hung server stopped every thread).
"""

import contextlib
import logging
import os
import signal
import threading
import time

import pytest
from checks import require_tools
from jackmidi import OwnServer, densest

from rvaed.benchmarks.harness import Sink, jack_ports, stop_jack
from rvaed.core.drummachine import load_drum_machine
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid, Hit, Pattern
from rvaed.engine.clock import InternalClock
from rvaed.engine.midiout import Output
from rvaed.engine.schedule import Playback, build_schedule
from rvaed.engine.sequencer import Sequencer

KIT = load_kit()
GM = load_drum_machine("gm", KIT)
NOTE_ON = 0x90
DETECT = 3.0    # seconds: loss is seen well within (sendproc.STALLED + midiout.HUNG)
REOPEN = 20.0   # seconds: a new sender starts Python and opens the port (slow when loaded)
HANG = 3.0      # seconds the server stays hung or away: a frozen interpreter stops this long
FROZEN = 1.5    # a ticker gap this long means frozen (a thread of a loaded machine, descheduled,
                # waited up to 1.2 s here)


class Ticker:
    """A thread that notes the longest gap between its 10 ms ticks."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.01):
            self.longest = max(self.longest, time.monotonic() - last)
            last = time.monotonic()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.longest


@pytest.fixture(params=[False, True], ids=["plain", "realtime"])
def server(request, monkeypatch):
    require_tools("jackd", "jack_lsp", "jack_midi_dump")
    made = OwnServer(realtime=request.param)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", made.name)
    yield made
    made.close()


def wait(predicate, timeout: float) -> float:
    """Seconds until ``predicate()``; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - start


def ons(sink: Sink) -> list[float]:
    return [t for t, m in sink.messages() if m[0] & 0xF0 == NOTE_ON]


@contextlib.contextmanager
def playing(port: str, virtual_name: str | None = None):
    """Kicks on every 16th at 240 BPM (62.5 ms apart) to ``port``, plus a virtual output."""
    outputs = [Output(port, GM, api="jack", poll=0.05)]
    if virtual_name:
        outputs.append(Output(api="jack", drum_machine=GM, name=virtual_name))
    clock = InternalClock(240)
    sequencer = Sequencer(clock, outputs)
    pattern = Pattern.from_hits([Hit(0, s, 100, 0.0) for s in range(32)], KIT.size, 32)
    sequencer.install(build_schedule(pattern, Grid(), Playback(gate=0.5), GM))
    sequencer.start()
    try:
        wait(lambda: all(o.connected for o in outputs), REOPEN)
        clock.set_playing(True)
        yield sequencer
    finally:
        sequencer.stop()


def test_a_hung_server_is_detected_logged_once_and_reopened(server, caplog):
    caplog.set_level(logging.WARNING, logger="rvaed.engine.midiout")
    with Sink("rx-hang") as sink, playing("rx-hang") as sequencer:
        output = sequencer.outputs[0]
        wait(lambda: len(ons(sink)) >= 4, 10)
        ticker = Ticker()
        os.kill(server.process.pid, signal.SIGSTOP)
        detected = wait(lambda: output.lost, DETECT)
        time.sleep(HANG - detected)  # the server stays hung; the interpreter goes on
        assert sequencer.running
        os.kill(server.process.pid, signal.SIGCONT)
        resumed = time.monotonic()
        reopened = wait(lambda: output.connected, REOPEN)
        before = len(ons(sink))
        wait(lambda: len(ons(sink)) >= before + 4, 10)  # and it plays again
        longest = ticker.stop()
    print(f"hung server: lost after {detected:.2f} s, reopened {reopened:.2f} s after it "
          f"resumed, longest ticker gap {longest * 1000:.0f} ms, densest "
          f"{densest(ons(sink))} note-ons in 10 ms")
    assert longest < FROZEN, f"the interpreter stopped for {longest:.2f} s"
    assert time.monotonic() - resumed < REOPEN + 10
    lost_lines = [r for r in caplog.records if "lost (" in r.getMessage()]
    assert len(lost_lines) == 1 and "output rx-hang: lost (" in lost_lines[0].getMessage()
    assert "reconnected to 'rx-hang:input' (clean slate sent)" in caplog.text
    # Nothing held back came out at once: what the hang held would be a second's worth (16
    # note-ons); a dummy server catching up its cycles after SIGCONT can bring two of the
    # steps 62.5 ms apart into one 10 ms stretch of its frames (seen once).
    assert densest(ons(sink)) <= 2


def test_a_stopped_server_restarted_reopens_named_and_virtual_outputs(server, caplog):
    caplog.set_level(logging.WARNING, logger="rvaed.engine.midiout")
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(Sink("rx-restart"))
        sequencer = stack.enter_context(playing("rx-restart", virtual_name="drums-b"))
        named, virtual = sequencer.outputs
        wait(lambda: len(ons(sink)) >= 4, 10)
        assert "drums-b:drums-b" in jack_ports()
        ticker = Ticker()
        stop_jack(server.process)
        detected = wait(lambda: named.lost and virtual.lost, DETECT)
        time.sleep(HANG - detected)
        server.restart()
        sink = stack.enter_context(Sink("rx-restart"))
        reopened = wait(lambda: named.connected and virtual.connected, REOPEN)
        wait(lambda: len(ons(sink)) >= 4, 10)
        assert "drums-b:drums-b" in jack_ports()
        longest = ticker.stop()
    print(f"stopped server: lost after {detected:.2f} s, reopened {reopened:.2f} s after the "
          f"restart, longest ticker gap {longest * 1000:.0f} ms")
    assert longest < FROZEN
    for name in ("rx-restart", "drums-b"):
        lost = [r for r in caplog.records if f"output {name}: lost (" in r.getMessage()]
        assert len(lost) == 1, caplog.text
    assert "reconnected to 'rx-restart:input' (clean slate sent)" in caplog.text
