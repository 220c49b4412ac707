"""The process that talks to the MIDI system for one output, so that no MIDI call can freeze
the daemon.

Why a process: python-rtmidi holds the GIL inside every call into the MIDI system. Against a
hung JACK server (SIGSTOP) creating a client never returns and a send spins once JACK's ring
buffer is full; either stops every thread of the calling process (OSC, SIGTERM, saving), and
no thread can interrupt it (docs/decisions.md). Only the calling process is frozen, so every
rtmidi call for an output happens here, and the daemon abandons this process (SIGKILL) when it
stops answering.

Protocol (`midiout.Output` is the other end):
- argv[1]: JSON settings (api, virtual or a port spec, the client/port name, the clean-slate
  messages, the seconds between checks of the port and the backend: at most `CHECK`).
- stdin: fixed-size records, `RECORD` = (due, slack, length, up to 3 bytes). A message with a
  ``due`` host time waits here until then and is sent on it (the sequencer hands it over a
  few milliseconds ahead: see "Why it keeps the time"); due 0: at once, after whatever is due
  already. A message more than ``slack`` seconds after its due time is dropped instead of
  sent (a negative slack: never dropped; note-offs and All Notes Off), so messages that
  waited while this process was stalled never burst out late. A record of length 0 cancels:
  the timed messages waiting are dropped, those never dropped are sent at once (the
  sequencer stops or silences an output; its note-offs follow). End of file: the same, then
  exit; when the daemon died (killed with -9, crashed) first send the clean slate, so no note
  it started is left sounding until it is restarted.
- signals: SIGINT is ignored (a Ctrl-C is the daemon's), SIGTERM (the daemon's death, or
  systemd stopping the unit's processes together) only arms a hard end in `ORPHAN_GRACE`
  seconds: the daemon, if alive, still sends its note-offs and closes the pipe.
- stdout: status lines, `open NAME`, `waiting TEXT`, `vanished NAME`, `error TEXT`,
  `lost TEXT` (then it exits).
- the descriptor ``shared`` of the settings: a page the daemon watches, `HEADER` = (heartbeat
  time, written at least every `CHECK` seconds, also while waiting for a port; messages sent;
  messages dropped), then `BUCKETS` counts of how late each timed message left (actual send
  time - due, in `BUCKET` seconds: the send error, as close to the MIDI system as Python gets).

Why it keeps the time: the daemon's sequencer thread shares the interpreter lock with the
event loop, and on a saturated machine the lock's holder can be descheduled while the
real-time thread waits for it (send error p99 3.4 ms, max 6.2 ms, docs/decisions.md). This
process has one thread and nothing to wait for: under SCHED_FIFO it sleeps until `SPIN`
before the next due time and spins the rest. The sequencer only has to hand a message over
within its lead (`sequencer.LEAD`).

Before the first message of every opened port it sends the clean slate (note-offs for every
note the output's drum machine can send, then All Notes Off on its channels). On JACK it also
checks that the server still runs cycles (`jack_last_frame_time` advances; libjack through
ctypes): while it has paused for `PAUSED` seconds nothing is sent (a send into JACK's ring
buffer that no cycle drains spins for good, and under SCHED_FIFO starves the server it waits
for: a 35 s stall seen on a saturated machine), and a server stopped for `STALLED` seconds is
reported `lost`.
"""

import contextlib
import ctypes
import heapq
import json
import mmap
import os
import select
import signal
import struct
import sys
import time
from typing import Any

import rtmidi

from rvaed.core.midi import NOTE_OFF, NOTE_ON
from rvaed.engine import jacklatency, midiapi
from rvaed.engine.clock import now

RECORD = struct.Struct("<dfB3s")  # due (host time; 0: now), slack (<0: never dropped), message
HEADER = struct.Struct("<ddd")  # the shared page: heartbeat, sent, dropped; then the histogram
BUCKET = 1e-5  # send lateness (actual send - due) in 10 us buckets
BUCKETS = 2048  # the last: 20.47 ms or more (later than `sequencer.LATE_MAX` is dropped)
SHARED_SIZE = HEADER.size + 4 * BUCKETS
FIFO_PRIORITY = 50
PR_SET_PDEATHSIG = 1
# JACK runs a cycle every period (1.3 ms at 64 frames, 170 ms at 8192 frames / 48 kHz): a
# frame counter that stands still this long means the server stopped serving. (0.3 s was too
# short: a server without real-time priority on a saturated machine paused that long.)
STALLED = 1.0
# Beyond any usual period (2048 frames at 48 kHz = 43 ms): JACK paused, nothing is sent.
PAUSED = 0.1
HELD = 256  # note-offs kept while JACK is paused, at most
# Busy-wait before each due time: covers the sleep's wake-up lateness (p99 0.07 ms under
# SCHED_FIFO, 1.2 ms without: docs/decisions.md).
SPIN_REALTIME, SPIN_NORMAL = 0.0003, 0.001
ROOM = 0.002  # the checks wait while a message is due sooner than this
CHECK = 0.1  # the longest wait for records: the heartbeat and the checks run at least this often
RETRY = 1.0  # seconds between attempts to reach a MIDI system that did not answer
SETTLE = 0.05  # JACK makes a new connection live a few periods after it is made
SETTLE_CYCLES = 4  # on JACK: counted in its cycles, which a loaded machine runs late
ORPHAN_GRACE = 2  # seconds a sender lives on after SIGTERM (the daemon's death), at most


def lateness_figures(histogram: list[int]) -> dict:
    """p50/p99/max of a lateness histogram in ms (upper bucket edges; the last bucket is open)
    and how many left more than 1 ms late."""
    total = sum(histogram)
    if not total:
        return {"messages": 0}
    edges, seen, ms = {}, 0, BUCKET * 1e3
    for bucket, count in enumerate(histogram):
        seen += count
        for name, share in (("p50_ms", 0.5), ("p99_ms", 0.99)):
            if name not in edges and seen >= share * total:
                edges[name] = round((bucket + 1) * ms, 3)
    top = max(bucket for bucket, count in enumerate(histogram) if count)
    late = sum(histogram[int(1e-3 / BUCKET):])
    return {"messages": total, **edges, "max_ms": round((top + 1) * ms, 3), "late": late}


def ask_realtime() -> str | None:
    """SCHED_FIFO for the calling thread: None when granted, else why not (most desktops
    refuse; everything works without it)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
    except (AttributeError, OSError) as exc:
        return str(exc)
    return None


class _JackPulse:
    """Whether the JACK server still runs its cycles, read from its shared frame counter."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libjack.so.0")
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        lib.jack_last_frame_time.restype = ctypes.c_uint32
        lib.jack_last_frame_time.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._client = lib.jack_client_open(b"rvaed-pulse", 1, None)  # JackNoStartServer
        self._frame, self._moved = -1, now()

    def stalled(self) -> float:
        """Seconds since the frame counter was last seen moving (0 when it cannot be read:
        the heartbeat the daemon watches still guards)."""
        if not self._client:
            return 0.0
        frame = self._lib.jack_last_frame_time(self._client)
        if frame != self._frame:
            self._frame, self._moved = frame, now()
        return now() - self._moved

    def cycles(self, count: int, timeout: float) -> None:
        """Wait until the server has run ``count`` more cycles (or ``timeout`` seconds)."""
        if not self._client:
            time.sleep(SETTLE)
            return
        deadline, seen = now() + timeout, 0
        self.stalled()
        while seen < count and now() < deadline:
            last = self._frame
            time.sleep(0.001)
            self.stalled()
            seen += self._frame != last


class _Sender:
    """The loop: open the port, send what arrives, watch the port and the backend."""

    def __init__(self, settings: dict, shared: mmap.mmap, spin: float) -> None:
        self.settings = settings
        self.shared = shared
        self.spin = spin
        self.slate = [tuple(message) for message in settings["slate"]]
        self.client: Any = None  # the rtmidi MidiOut, once the MIDI system answered
        self.port_name = ""    # the open port's name, "" while none is open
        self.sent = self.dropped = 0
        self.lateness = memoryview(shared)[HEADER.size:].cast("I")  # the shared histogram
        self.waiting: list[tuple[float, int, float, bytes]] = []  # (due, seq, slack, message)
        self._seq = 0
        self.held: list[bytes] = []  # note-offs kept while JACK paused (see `_hold`)
        self.sounding: set[tuple[int, int]] = set()  # (channel, note) sent on and not off
        self.pulse: _JackPulse | None = None
        self._retry = 0.0
        self._missing = 0      # checks in a row that did not list the open port's destination
        self._said = ""

    def say(self, line: str, once: bool = False) -> None:
        if once and line == self._said:
            return
        self._said = line
        sys.stdout.write(line.replace("\n", " ") + "\n")
        sys.stdout.flush()

    def run(self) -> None:
        """Until the daemon closes the pipe (or the backend is lost: the process exits)."""
        parent = os.getppid()
        try:
            self._loop()
        finally:
            if self.port_name and _orphaned(parent):
                self.slate_if_running()

    def slate_if_running(self) -> None:
        """A note-off for each note still sounding (a note played live in place of the drum
        machine's is not in the slate), then the clean slate; unless JACK runs no cycles (a
        send then spins for good)."""
        if self.pulse is None or self.pulse.stalled() <= PAUSED:
            offs = [(NOTE_OFF | channel, note, 0) for channel, note in sorted(self.sounding)]
            for message in [*offs, *self.slate]:
                self.client.send_message(message)

    def _loop(self) -> None:
        checked = 0.0
        while True:
            HEADER.pack_into(self.shared, 0, now(), self.sent, self.dropped)
            if self._time_to_check(now() - checked):
                self._check()
                checked = now()
            wait = self.settings["poll"]
            if self.waiting:
                wait = min(wait, max(self.waiting[0][0] - now() - self.spin, 0.0))
            if _readable(sys.stdin.buffer, wait) and not self._take():
                self._cancel()
                return
            self._send_due()

    def _time_to_check(self, since: float) -> bool:
        """Every `poll` seconds, when no message is due within `ROOM` (asking JACK for its
        ports can take a millisecond), and at the latest `CHECK` seconds after that."""
        poll = self.settings["poll"]
        busy = bool(self.waiting) and self.waiting[0][0] - now() < ROOM
        return since >= poll + CHECK or (since >= poll and not busy)

    def _check(self) -> None:
        """The backend, the held note-offs, the port."""
        if self.pulse is not None and self.pulse.stalled() > STALLED:
            self.say("lost the JACK server stopped running cycles")
            os._exit(3)  # closing JACK clients here would wait on that server
        if self.held and self.pulse is not None and self.pulse.stalled() <= PAUSED:
            self._flush()
        if not self.port_name:
            self._open()
        elif not self.settings["virtual"]:
            self._watch_port()

    def _watch_port(self) -> None:
        """Close the port when its destination is gone (missing twice in a row: JACK can list
        no ports at all for a moment when it is busy)."""
        self._missing = 0 if self.port_name in self.client.get_ports() else self._missing + 1
        if self._missing >= 2:
            self.say(f"vanished {self.port_name}")
            self.client.close_port()
            self.port_name = ""
            self._missing = 0

    def _open(self) -> None:
        if self.client is None and not self._client():
            return
        if self.settings["virtual"]:
            self.client.open_virtual_port(self.settings["name"])
            self._ready(self.settings["name"])
            return
        ports = self.client.get_ports()
        index = midiapi.match_port(ports, self.settings["spec"])
        if index is None:
            self.say(f"waiting {self.settings['spec']}", once=True)
            return
        self.client.open_port(index, name=f"to {ports[index]}"[:60])
        self._ready(ports[index])

    def _client(self) -> bool:
        if now() < self._retry:
            return False
        try:
            self.client = midiapi.open_client(self.settings["api"], "output",
                                              self.settings["name"])
        except Exception as exc:  # no MIDI system (yet): the daemon says how to get one
            self.say(f"error {exc}", once=True)
            self._retry = now() + RETRY
            return False
        if self.client.get_current_api() == rtmidi.API_UNIX_JACK:
            self.pulse = _JackPulse()
        return True

    def _ready(self, name: str) -> None:
        if self.pulse is not None and self.pulse.stalled() <= PAUSED:
            self.pulse.cycles(SETTLE_CYCLES, timeout=1.0)
        else:
            time.sleep(SETTLE)
        self.slate_if_running()
        self.port_name = name
        # with how late the destination sounds: on JACK its playback latency (LinkHut's rule)
        latency = jacklatency.playback_latency(name) if self.pulse is not None else 0.0
        self.say(f"open {latency!r} {name}")

    def _take(self) -> bool:
        """Queue what arrived (a cancel or a message due now acts at once); False at end of
        file."""
        data = os.read(0, RECORD.size * 256)
        if not data:
            return False
        data += _rest(data)
        for due, slack, length, raw in RECORD.iter_unpack(data):
            if not length:
                self._cancel()
            elif due:
                self._seq += 1
                heapq.heappush(self.waiting, (due, self._seq, slack, raw[:length]))
            else:
                self._send_due()
                self._deliver(raw[:length], due, slack)
        return True

    def _send_due(self) -> None:
        """Send every waiting message due within `spin`, each on its due time."""
        while self.waiting and self.waiting[0][0] - now() <= self.spin:
            due, _, slack, message = heapq.heappop(self.waiting)
            while now() < due:
                pass
            self._deliver(message, due, slack)

    def _cancel(self) -> None:
        """Forget the timed messages waiting (not counted as dropped: they were called off,
        not late); send the ones never dropped (note-offs) now."""
        kept = sorted(entry for entry in self.waiting if entry[2] < 0)
        self.waiting.clear()
        for _, _, slack, message in kept:
            self._deliver(message, 0.0, slack)

    def _deliver(self, message: bytes, due: float, slack: float) -> None:
        """Send, or drop (late, or while no port is open), or hold (JACK paused)."""
        if not self.port_name or (slack >= 0 and now() - due > slack):
            self.dropped += 1
        elif self.pulse is not None and self.pulse.stalled() > PAUSED:
            self._hold(message, slack)
        else:
            self._send(message, due)

    def _hold(self, message: bytes, slack: float) -> None:
        """While JACK runs no cycles its ring buffer does not drain, and a send into a full
        one spins for good: timed messages are dropped, note-offs kept for when it runs."""
        if slack >= 0 or len(self.held) >= HELD:
            self.dropped += 1
        else:
            self.held.append(message)

    def _flush(self) -> None:
        for held in self.held:
            self.client.send_message(held)
            self._track(held)
            self.sent += 1
        self.held.clear()

    def _send(self, message: bytes, due: float) -> None:
        self._flush()
        self.client.send_message(message)
        self._track(message)
        self.sent += 1
        if due:
            self.lateness[min(max(int((now() - due) / BUCKET), 0), BUCKETS - 1)] += 1

    def _track(self, message: bytes) -> None:
        """Keep `sounding` up to date with a message sent (a note-on of velocity 0 is off)."""
        if len(message) == 3 and message[0] & 0xE0 == NOTE_OFF:
            key = (message[0] & 0x0F, message[1])
            if message[0] & 0xF0 == NOTE_ON and message[2]:
                self.sounding.add(key)
            else:
                self.sounding.discard(key)


def _readable(stream, timeout: float) -> bool:
    return bool(select.select([stream], [], [], timeout)[0])


def _orphaned(parent: int) -> bool:
    """Whether the daemon ``parent`` is dead: this process is re-parented, which the kernel
    does just after it closed the daemon's end of the pipe (so wait a moment for it)."""
    deadline = now() + 0.05
    while os.getppid() == parent:
        if now() > deadline:
            return False
        time.sleep(0.002)
    return True


def _rest(data: bytes) -> bytes:
    """The rest of a record cut by a short read (writes of whole records are atomic)."""
    missing = -len(data) % RECORD.size
    rest = b""
    while len(rest) < missing:
        rest += os.read(0, missing - len(rest)) or b"\0" * missing
    return rest


def main() -> None:
    settings = json.loads(sys.argv[1])
    with contextlib.suppress(OSError):  # Linux: end with the daemon even when it is killed
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the daemon's to handle
    signal.signal(signal.SIGTERM, lambda *_: signal.alarm(ORPHAN_GRACE))  # SIGALRM ends it
    spin = SPIN_NORMAL if ask_realtime() else SPIN_REALTIME
    with mmap.mmap(settings["shared"], SHARED_SIZE) as shared:
        sender = _Sender(settings, shared, spin)
        sender.run()
        sender.lateness.release()  # the page closes only once no view of it is left
    time.sleep(SETTLE)  # what was sent last leaves in JACK's next periods


if __name__ == "__main__":
    main()
