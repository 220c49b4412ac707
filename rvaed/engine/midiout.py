"""MIDI outputs: a port found by part of its name (waited for, reconnected) or a virtual port.

Connecting is slow and can fail; sending must not. So each named output has a watcher thread
that finds the port, notices when it vanishes and reconnects when it returns (a log line each
time), and hands the sequencer a ready port by swapping one reference. The sequencer's `send`
takes an uncontended lock (the watcher holds it only for that swap) and drops messages while no
port is there. On reconnecting, All Notes Off goes to the channels played so far, so a note cut
off by an unplugged cable cannot hang once the device is back. On SIGHUP `carry_over` keeps
every output whose port is already open (a virtual port cannot be opened twice under one name)
and retunes it to the new drum machine, latency and MIDI clock setting.
"""

import logging
import threading
import time

from rvaed.core.drummachine import DrumMachine
from rvaed.core.midi import ALL_NOTES_OFF, CONTROL_CHANGE
from rvaed.engine import midiapi

log = logging.getLogger(__name__)

VIRTUAL = "virtual"  # port spec for a virtual port named `rvaed` that other programs connect to
VIRTUAL_NAME = "rvaed"
# JACK delivers what was sent in its next period, and closing any JACK client of this process
# while messages are in flight garbled them at a python-rtmidi JACK input of the same process
# (ten note-offs arrived as ten copies of the first: docs/decisions.md). Closing waits first,
# several periods at any usual buffer size.
DRAIN = 0.05


class Output:
    """One MIDI destination with its drum machine, latency compensation and MIDI clock."""

    def __init__(self, port: str | None = VIRTUAL, drum_machine: DrumMachine | None = None,
                 latency_ms: float = 0.0, clock_out: bool = False, api: str = "auto",
                 poll: float = 0.5) -> None:
        """``latency_ms``: how late the device sounds; positive sends earlier, negative later.

        ``drum_machine`` maps voices to notes for this output; None plays the schedule's notes.
        """
        self.spec = port or VIRTUAL
        self.drum_machine = drum_machine
        self.latency = latency_ms / 1000.0
        self.clock_out = clock_out
        self.api = api
        self._poll = poll
        self._lock = threading.Lock()
        self._port = None      # an open rtmidi.MidiOut, or None while disconnected
        self._port_name: str | None = None
        self._channels: set[int] = set()  # status channels (0-15) notes were sent on
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self._port_name or self.spec

    @property
    def connected(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        """Open the virtual port now, or start waiting for the named port in the background."""
        midiapi.api(self.api)  # an unknown or missing API is the user's error, raised here
        if self.spec == VIRTUAL:
            port = midiapi.open_client(self.api, "output", VIRTUAL_NAME)
            port.open_virtual_port(VIRTUAL_NAME)
            self._attach(port, VIRTUAL_NAME)
            return
        self._watcher = threading.Thread(target=self._watch, name=f"midiout {self.spec}",
                                         daemon=True)
        self._watcher.start()

    def send(self, message) -> bool:
        """Send a MIDI message now; False (and nothing sent) while the port is away."""
        if message[0] & 0xF0 == 0x90:
            self._channels.add(message[0] & 0x0F)
        with self._lock:
            port = self._port
            if port is None:
                return False
            try:
                port.send_message(message)
            except Exception as exc:  # rtmidi raises its own error types; the show goes on
                log.warning("output %s: send failed: %s", self.name, exc)
                return False
        return True

    def reopen(self, reason: str) -> None:
        """Close the port (logged once) for the watcher to open it afresh on its next look:
        a backend-specific watcher calls it when it knows better than the port list."""
        log.warning("output %s: lost (%s); reopening it", self.name, reason)
        self._detach()

    def all_notes_off(self) -> None:
        """CC 123 on every channel this output played (and its drum machine's channels)."""
        channels = set(self._channels)
        if self.drum_machine is not None:
            channels |= {c - 1 for c in self.drum_machine.channels}
        for channel in sorted(channels):
            self.send((CONTROL_CHANGE | channel, ALL_NOTES_OFF, 0))

    def close(self) -> None:
        """Stop watching and close the port once what was sent has left."""
        if self._port is not None:
            time.sleep(DRAIN)
        self._closing.set()
        if self._watcher is not None:
            self._watcher.join()
        self._detach()

    def retune(self, other: "Output") -> None:
        """Play as ``other`` says (drum machine, latency, MIDI clock), on this open port."""
        self.drum_machine, self.latency = other.drum_machine, other.latency
        self.clock_out = other.clock_out

    def _attach(self, port, name: str) -> None:
        with self._lock:
            self._port, self._port_name = port, name

    def _detach(self) -> None:
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            port.close_port()
            port.delete()

    def _watch(self) -> None:
        """Find the port, then keep checking it is still there; reconnect when it returns."""
        probe = midiapi.open_client(self.api, "output", f"{VIRTUAL_NAME}-probe")
        waiting_logged = False
        try:
            while not self._closing.is_set():
                ports = probe.get_ports()
                if self._port is not None and self._port_name not in ports:
                    log.warning("output %s: port %r vanished; waiting for it to come back",
                                self.spec, self._port_name)
                    self._detach()
                if self._port is None:
                    index = midiapi.match_port(ports, self.spec)
                    if index is not None:
                        self._connect(ports[index], index)
                        waiting_logged = False
                    elif not waiting_logged:
                        log.warning("output %s: no port matching %r yet; waiting for it",
                                    self.spec, self.spec)
                        waiting_logged = True
                self._closing.wait(self._poll)
        finally:
            probe.delete()

    def _connect(self, name: str, index: int) -> None:
        port = midiapi.open_client(self.api, "output", VIRTUAL_NAME)
        try:
            port.open_port(index, name=f"to {name}"[:60])
        except Exception as exc:  # the port went away between listing and opening
            log.warning("output %s: cannot open %r: %s", self.spec, name, exc)
            port.delete()
            return
        reconnect = self._port_name is not None
        log.warning("output %s: %s %r", self.spec, "reconnected to" if reconnect else
                    "connected to", name)  # before it shows as connected: no one waits on it
        self._attach(port, name)
        if reconnect:
            self.all_notes_off()


def carry_over(running: list[Output], wanted: list[Output]) -> list[Output]:
    """``wanted`` (not opened yet), where each output on a port already open in ``running``
    is that running output retuned; the rest are opened."""
    by_spec = {output.spec: output for output in running}
    outputs = []
    for output in wanted:
        kept = by_spec.pop(output.spec, None)
        if kept is None:
            output.open()
        else:
            kept.retune(output)
        outputs.append(kept or output)
    return outputs
