"""Controller MIDI input: ports found by part of their name, waited for and reconnected.

python-rtmidi delivers each message on its own thread (for JACK, the process callback). That
thread only stamps the message and appends it to a bounded buffer, then wakes the asyncio
loop once (``call_soon_threadsafe``) if no wake-up is pending; the loop drains the buffer and
routes every message through the mappings, whose changes coalesce into one decode. Under a
flood the buffer keeps the newest messages (the oldest are dropped), so memory stays flat.

SysEx, MIDI clock, active sensing and every other system message are ignored (filtered by
rtmidi and again here). A missing port is waited for, a vanished one is reconnected when it
returns; each of these is one log line. After a SIGHUP the ports follow the new mappings:
new ones are opened, those no mapping names any more are closed (`follow_inputs` does the same
for the configured default inputs).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from rvaed.control.ratelimit import RateLimitedLog
from rvaed.engine import midiapi

log = logging.getLogger(__name__)

BUFFER = 4096  # messages held between two wake-ups of the loop; older ones are dropped
POLL = 1.0  # seconds between port checks


class _Port:
    """One rtmidi input following the ports whose name contains ``spec``."""

    def __init__(self, spec: str, mapping_port: str | None, api: str, name: str) -> None:
        self.spec = spec
        self.mapping_port = mapping_port
        self.rtmidi = midiapi.open_client(api, "input", name)
        self.rtmidi.ignore_types(sysex=True, timing=True, active_sense=True)
        self.connected: str | None = None

    def check(self, callback) -> None:
        """Connect to a matching port, or notice that the connected one has gone."""
        ports = self.rtmidi.get_ports()
        if self.connected is not None and self.connected in ports:
            return
        if self.connected is not None:
            self.rtmidi.cancel_callback()
            self.rtmidi.close_port()
            log.warning("MIDI in: %s disconnected; waiting for it to return", self.connected)
            self.connected = None
        index = midiapi.match_port(ports, self.spec)
        if index is None:
            return
        self.rtmidi.open_port(index, "control-in")
        self.rtmidi.set_callback(callback, self.mapping_port)
        self.connected = ports[index]
        log.info("MIDI in: connected to %s", self.connected)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.rtmidi.cancel_callback()
        self.rtmidi.close_port()
        self.rtmidi.delete()


class Receiver(Protocol):
    """Where the messages go: `rvaed.control.controls.Controls`, or the groove input."""

    @property
    def ports(self) -> Sequence[str | None]: ...
    def midi(self, port: str | None, message: list[int], at: int) -> bool: ...


class MidiControlInput:
    """Feeds controller MIDI from the ports the mappings name into ``controls``.

    Mappings without a ``port`` use ``default_port``; with none, they get no MIDI input.
    """

    def __init__(self, controls: Receiver, api: str = "auto", default_port: str | None = None,
                 client_name: str = "rvaed-control", poll: float = POLL) -> None:
        self.controls = controls
        self.api = api
        self.default_port = default_port
        self.client_name = client_name
        self.poll = poll
        self.rejected = RateLimitedLog(log, "MIDI in")
        self.received = 0
        self._buffer: deque = deque(maxlen=BUFFER)
        self._wake_pending = False
        self._ports: list[_Port] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.follow_mappings()
        self._watch = self._loop.create_task(self._watch_ports())

    def follow_mappings(self) -> None:
        """Open the ports the mappings ask for now and close those they no longer name."""
        wanted = self._wanted()
        for port in [p for p in self._ports if (p.mapping_port, p.spec) not in wanted]:
            port.close()
            self._ports.remove(port)
            log.info("MIDI in: closed %s (no mapping names it now)", port.connected or port.spec)
        have = {(p.mapping_port, p.spec) for p in self._ports}
        for mapping_port, spec in wanted:
            if (mapping_port, spec) not in have:
                self._ports.append(_Port(spec, mapping_port, self.api, self.client_name))
                log.info("MIDI in: waiting for a port named like %r", spec)
        self._check()

    def _wanted(self) -> list[tuple[str | None, str]]:
        """(mapping port, port spec) of every input the mappings need."""
        wanted = []
        for mapping_port in self.controls.ports:
            spec = mapping_port or self.default_port
            if spec is None:
                log.info("MIDI in: mappings without a port and no default input: no MIDI")
                continue
            wanted.append((mapping_port, spec))
        return wanted

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for port in self._ports:
            port.close()
        self._ports.clear()

    @property
    def connected(self) -> list[str]:
        return [p.connected for p in self._ports if p.connected]

    def _check(self) -> None:
        for port in self._ports:
            try:
                port.check(self._receive)
            except Exception as exc:  # an rtmidi error must not end the watch
                self.rejected(f"{port.spec}: {exc}")

    async def _watch_ports(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            self._check()

    def _receive(self, event: tuple, mapping_port: str | None) -> None:
        """rtmidi's thread: stamp, buffer, wake the loop once."""
        message = event[0]
        if not message or message[0] >= 0xF0:
            return
        self._buffer.append((mapping_port, message, time.perf_counter_ns()))
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._drain)  # type: ignore[union-attr]

    def _drain(self) -> None:
        """The loop: route everything buffered; changes coalesce into one decode."""
        self._wake_pending = False
        while self._buffer:
            mapping_port, message, at = self._buffer.popleft()
            self.received += 1
            try:
                self.controls.midi(mapping_port, message, at)
            except ValueError as exc:
                self.rejected(str(exc))


async def follow_inputs(running: list[MidiControlInput], controls: Receiver,
                        specs: tuple[str | None, ...], api: str) -> list[MidiControlInput]:
    """The controller inputs for the default ports ``specs`` (none: one without a default),
    following the mappings of ``controls``: an input whose spec stays is kept and follows
    them, the others are closed, new ones started."""
    by_spec = {part.default_port: part for part in running}
    inputs = []
    for spec in list(specs) or [None]:
        part = by_spec.pop(spec, None)
        if part is None:
            part = MidiControlInput(controls, api=api, default_port=spec)
            await part.start()
        else:
            part.follow_mappings()
        inputs.append(part)
    for part in by_spec.values():
        await part.close()
    return inputs
