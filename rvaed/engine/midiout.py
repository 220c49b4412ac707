"""MIDI outputs: a port found by part of its name, or a virtual port; lost and reopened.

Every call into the MIDI system happens in a sender process of the output's own
(rvaed/engine/sendproc.py): python-rtmidi holds the GIL in each call, and against a hung JACK
server a call never returns, which froze the whole daemon (OSC, SIGTERM, saving) when it ran
here. The sequencer's `send` only writes a 12-byte record to a non-blocking pipe: it never
waits, and drops the message while the output is lost.

The interface other parts use (a port watcher, the sequencer, the daemon):
- `connected` / `lost`: whether messages reach a port now (`lost` once it was open and is not).
- `send(message, due, slack)`: never blocks; False when dropped. The sender sends it on
  ``due`` (host time; 0: at once), so it may be handed over ahead; one that cannot leave
  within ``slack`` seconds of ``due`` is dropped, not sent late; a negative slack never drops
  (note-offs). `cancel()`: what waits for its due time is dropped (note-offs sent at once).
  `lateness()`: how late the sender sent, as a histogram;
  `dropped_by_sender()`: how many it dropped.
- `reopen(reason)`: abandon the sender process and start a fresh one (a backend-specific
  watcher calls it when it knows better, e.g. an ALSA subscription removed from outside).

A supervisor thread per output starts the sender, follows its status lines and its heartbeat
(a shared page it writes at least every `sendproc.CHECK` seconds), and on any loss (the
backend gone or hung, the port vanished, the sender silent for `HUNG` seconds: then it is
killed) logs one line naming the output, and starts over until the port is back: a JACK
server restarted, a device replugged, a MIDI system that appears after the start. Every port
the sender opens gets the clean slate before its first note: note-offs for every note the
output's drum machine can send (for hardware that ignores All Notes Off) and All Notes Off
(CC 123) on its channels and every channel it played. On SIGHUP `carry_over` keeps every
output whose port is already open (a virtual port cannot be opened twice under one name) and
retunes it to the new drum machine, latency and MIDI clock setting.
"""

import json
import logging
import mmap
import os
import select
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

from rvaed.core.drummachine import DrumMachine
from rvaed.core.midi import ALL_NOTES_OFF, CONTROL_CHANGE
from rvaed.engine import midiapi
from rvaed.engine.clock import now
from rvaed.engine.sendproc import BUCKETS, CHECK, HEADER, RECORD, SHARED_SIZE

log = logging.getLogger(__name__)

VIRTUAL = "virtual"  # port spec for a virtual port other programs connect to
VIRTUAL_NAME = "rvaed"
SENDING_NAME = "rvaed-out"  # the client of a named output: never in the way of a virtual one
HUNG = 2.0       # seconds without a heartbeat after which the sender is abandoned
STARTING = 60.0  # seconds a new sender may take to start Python and beat for the first time
# (only the interpreter: its loop beats before it opens the MIDI API, so a hung open is HUNG;
# an emulated guest starting the daemon beside it took more than 15 s)
RESTART = 0.5    # seconds between a loss and the next sender (doubling to 4 s while it fails)
CLOSE_WAIT = 2.0
HOW_TO_GET_MIDI = ("to get MIDI: start JACK or PipeWire, load the ALSA sequencer "
                   "(modprobe snd-seq), or set midi.api; the output opens when one appears")


@dataclass
class _Sender:
    """One running sender process, its command pipe and its shared page."""

    process: subprocess.Popen
    pipe: int
    shared: mmap.mmap

    def heartbeat(self) -> tuple[float, float, float]:
        """(heartbeat time, sent, dropped) as the sender wrote them."""
        return HEADER.unpack_from(self.shared, 0)

    def lateness(self) -> list[int]:
        return list(struct.unpack_from(f"<{BUCKETS}I", self.shared, HEADER.size))


class Output:
    """One MIDI destination with its drum machine, latency compensation and MIDI clock."""

    def __init__(self, port: str | None = VIRTUAL, drum_machine: DrumMachine | None = None,
                 latency_ms: float = 0.0, clock_out: bool = False, api: str = "auto",
                 poll: float = 0.5, name: str = VIRTUAL_NAME) -> None:
        """``latency_ms``: how late the device sounds; positive sends earlier, negative later.
        On JACK the destination port's playback latency is added (`rvaed.engine.jacklatency`).

        ``drum_machine`` maps voices to notes for this output; None plays the schedule's notes.
        ``name``: the virtual port's name (its JACK client and port, its ALSA client); a
        named output's client is `SENDING_NAME` (its senders start side by side: a shared
        name would go to whichever registers first, and JACK would rename the other).
        """
        self.spec = port or VIRTUAL
        self.virtual_name = name
        self.drum_machine = drum_machine
        self.latency_ms = latency_ms  # as configured; `latency` adds the JACK port's own
        self.latency = latency_ms / 1000.0
        self.clock_out = clock_out
        self.api = api
        self._poll = poll
        self._lock = threading.Lock()
        self._sender: _Sender | None = None   # set while a port is open
        self._port_name: str | None = None
        self._was_open = False
        self._channels: set[int] = set()      # status channels (0-15) notes were sent on
        self._closing = threading.Event()
        self._reopen = threading.Event()
        self._reopen_reason = ""
        self._said: set[str] = set()          # waiting/error lines logged in this outage
        self._thread: threading.Thread | None = None
        self.dropped = 0  # messages dropped because no port was open or the pipe was full
        self._ended_drops = 0  # dropped by the senders that ended

    @property
    def key(self) -> tuple[str, str]:
        """What makes two outputs the same port (kept open across a reload)."""
        return self.spec, self.virtual_name if self.spec == VIRTUAL else ""

    @property
    def label(self) -> str:
        """How the log names this output: its virtual port's name, or its port spec."""
        return self.virtual_name if self.spec == VIRTUAL else self.spec

    @property
    def name(self) -> str:
        return self._port_name or self.label

    @property
    def connected(self) -> bool:
        return self._sender is not None

    @property
    def lost(self) -> bool:
        return self._was_open and self._sender is None

    def open(self) -> None:
        """Start the sender in the background; the port opens when the MIDI system has it."""
        midiapi.api(self.api)  # an unknown or missing API is the user's error, raised here
        self._thread = threading.Thread(target=self._supervise, name=f"midiout {self.label}",
                                        daemon=True)
        self._thread.start()

    def send(self, message, due: float = 0.0, slack: float = -1.0) -> bool:
        """Hand a MIDI message to the sender now; False (dropped) while no port is open.

        ``due``: when it should leave (host time; 0: now); the sender drops it more than
        ``slack`` seconds after that (negative: never)."""
        if message[0] & 0xF0 == 0x90:
            self._channels.add(message[0] & 0x0F)
        return self._write(RECORD.pack(due, slack, len(message), bytes(message)))

    def cancel(self) -> None:
        """Drop the timed messages the sender holds for later; it sends the note-offs among
        them at once (stopping: the caller's note-offs and All Notes Off follow)."""
        self._write(RECORD.pack(0.0, 0.0, 0, b""))

    def _write(self, record: bytes) -> bool:
        with self._lock:
            sender = self._sender
            if sender is None:
                self.dropped += 1
                return False
            try:
                os.write(sender.pipe, record)
            except BlockingIOError:  # the sender stopped reading: its heartbeat will tell
                self.dropped += 1
                return False
        return True

    def lateness(self) -> list[int]:
        """The open sender's histogram of actual send time - due (`sendproc.BUCKETS` buckets
        of `sendproc.BUCKET` seconds) since it opened; empty while none is open."""
        sender = self._sender
        return [] if sender is None else sender.lateness()

    def dropped_by_sender(self) -> int:
        """Messages this output's sender processes dropped (too late after waiting in the
        pipe, or while JACK ran no cycles), over every sender it had."""
        sender = self._sender
        return self._ended_drops + (0 if sender is None else int(sender.heartbeat()[2]))

    def reopen(self, reason: str) -> None:
        """Abandon the sender and open the port afresh (logged once, as any loss)."""
        self._reopen_reason = reason
        self._reopen.set()

    def all_notes_off(self) -> None:
        """CC 123 on every channel this output played (and its drum machine's channels)."""
        for message in self._all_notes_off():
            self.send(message)

    def close(self) -> None:
        """Let the sender send what it was given, then end it and the supervisor."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()

    def retune(self, other: "Output") -> None:
        """Play as ``other`` says (drum machine, latency, MIDI clock), on this open port."""
        measured = self.latency - self.latency_ms / 1000.0  # the port's, kept
        self.drum_machine, self.latency = other.drum_machine, other.latency + measured
        self.latency_ms = other.latency_ms
        self.clock_out = other.clock_out

    def clean_slate(self) -> list[tuple[int, int, int]]:
        """Note-offs for every note the drum machine can send, then All Notes Off."""
        offs = [] if self.drum_machine is None else sorted(
            {d.note_off for d in self.drum_machine.destinations if d is not None})
        return offs + self._all_notes_off()

    def _all_notes_off(self) -> list[tuple[int, int, int]]:
        channels = set(self._channels)
        if self.drum_machine is not None:
            channels |= {c - 1 for c in self.drum_machine.channels}
        return [(CONTROL_CHANGE | channel, ALL_NOTES_OFF, 0) for channel in sorted(channels)]

    # -- the supervisor thread ----------------------------------------------------------------

    def _supervise(self) -> None:
        restart, outage = RESTART, False
        while not self._closing.is_set():
            sender = self._spawn()
            opened, reason = self._follow(sender)
            self._end(sender)
            if self._closing.is_set():
                break
            if opened or not outage:  # an outage is logged once, a loss after a reopen anew
                log.warning("output %s: lost (%s); reopening it when it returns", self.label,
                            reason)
            outage = not opened
            restart = RESTART if opened else min(restart * 2, 4.0)
            self._closing.wait(restart)

    def _spawn(self) -> _Sender:
        shared_fd = os.memfd_create("rvaed-sender")
        os.ftruncate(shared_fd, SHARED_SIZE)
        virtual = self.spec == VIRTUAL
        settings = {"api": self.api, "virtual": virtual, "spec": self.spec,
                    "name": self.virtual_name if virtual else SENDING_NAME,
                    "slate": self.clean_slate(), "shared": shared_fd,
                    "poll": min(self._poll, CHECK)}
        verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
        process = subprocess.Popen(
            [sys.executable, "-m", "rvaed.engine.sendproc", json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            bufsize=0,  # no hidden buffer: a line select() reports is a line readline() gets
            stderr=None if verbose else subprocess.DEVNULL,  # ALSA/JACK library noise: -v
            pass_fds=(shared_fd,), env={**os.environ, "JACK_NO_START_SERVER": "1"})
        shared = mmap.mmap(shared_fd, SHARED_SIZE)  # zeros: no heartbeat yet
        os.close(shared_fd)
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)
        return _Sender(process, process.stdin.fileno(), shared)

    def _follow(self, sender: _Sender) -> tuple[bool, str]:
        """Follow the sender's status until it is lost; (whether a port was open, why lost)."""
        assert sender.process.stdout is not None
        lines, opened, started = sender.process.stdout, False, now()
        while not self._closing.is_set():
            if self._reopen.is_set():
                self._reopen.clear()
                return opened, self._reopen_reason
            if select.select([lines], [], [], CHECK)[0]:
                line = lines.readline().decode(errors="replace").strip()
                if not line:
                    return opened, f"its sender exited with {sender.process.wait()}"
                word, _, text = line.partition(" ")
                if word == "lost":
                    return opened, text
                opened |= self._status(sender, word, text)
            beat = sender.heartbeat()[0]
            silent = now() - (beat or started)
            if silent > (HUNG if beat else STARTING):
                return opened, f"the MIDI system did not answer for {silent:.1f} s"
        return opened, "closed"

    def _status(self, sender: _Sender, word: str, text: str) -> bool:
        """Act on one status line; True when a port opened."""
        if word == "open":  # "open LATENCY PORT": the JACK port's playback latency, seconds
            latency, _, text = text.partition(" ")
            self._said.clear()
            self.latency = self.latency_ms / 1000.0 + float(latency)
            log.warning("output %s: %s %r (clean slate sent)", self.label,
                        "reconnected to" if self._was_open else "connected to", text)
            with self._lock:
                self._sender, self._port_name, self._was_open = sender, text, True
            return True
        if word == "vanished":
            log.warning("output %s: port %r vanished; waiting for it to come back",
                        self.label, text)
            self._detach()
        elif f"{word} {text}" in self._said:
            return False
        self._said.add(f"{word} {text}")
        if word == "waiting":
            log.warning("output %s: no port matching %r yet; waiting for it", self.label, text)
        elif word == "error":
            log.warning("output %s: no MIDI system answers (%s); %s", self.label, text,
                        HOW_TO_GET_MIDI)
        return False

    def _detach(self) -> None:
        with self._lock:
            self._sender = None

    def _end(self, sender: _Sender) -> None:
        """Close the pipe (the sender sends what is left and exits); kill it if it does not."""
        self._detach()
        assert sender.process.stdin is not None
        sender.process.stdin.close()
        try:
            sender.process.wait(CLOSE_WAIT if self._closing.is_set() else 0)
        except subprocess.TimeoutExpired:
            sender.process.kill()
            sender.process.wait()
        sender.process.stdout.close()  # type: ignore[union-attr]
        self._ended_drops += int(sender.heartbeat()[2])
        sender.shared.close()


def carry_over(running: list[Output], wanted: list[Output]) -> list[Output]:
    """``wanted`` (not opened yet), where each output on a port already open in ``running``
    is that running output retuned; the rest are opened."""
    by_key = {output.key: output for output in running}
    outputs = []
    for output in wanted:
        kept = by_key.pop(output.key, None)
        if kept is None:
            output.open()
        else:
            kept.retune(output)
        outputs.append(kept or output)
    return outputs

