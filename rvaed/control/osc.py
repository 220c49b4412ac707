"""The OSC API: every performance field settable over UDP, state queries and live feedback.

python-osc parses and builds the messages; the socket is read by the asyncio loop itself
(``add_reader``) so that each wake-up drains every datagram waiting: a flood of 2,000 faders
a second becomes a handful of state changes and one decode of the newest value, not a
queue. Packet arrival is taken from the kernel's receive timestamp (SO_TIMESTAMPNS) where
the system has one, so the measured control latency includes any time spent in the socket
buffer. Anything malformed is dropped with a rate-limited log line; the state never leaves
its valid ranges (see rvaed.core.state).

Every input address is a `Route`: its arguments, its effect in one line, whether it touches
files (then only allowed senders may send it) and its handler, all with one signature. The
performance's routes are `ROUTES` below (one per parameter of the state's table, and the rest);
the daemon adds its commands and the tools' (the whole registry: `rvaed.daemon.routes.ROUTES`,
which renders the README's OSC tables).

Feedback (to subscribers, at most every 50 ms when something changed, and in reply to
/rvaed/state) uses the same addresses, so a TouchOSC control bound to /rvaed/threshold shows
the value, plus:

| address                    | arguments                                              |
| -------------------------- | ------------------------------------------------------ |
| /rvaed/pattern             | voices steps, voices*steps ints row by row (velocity, 0 = none) |
| /rvaed/pattern/N           | steps floats 1.0/0.0 for voice N (1-based): a TouchOSC grid row |
| /rvaed/mute, /rvaed/freeze | VOICE-NUMBER 0/1, one message per voice                 |
| /rvaed/preset/N            | x y of preset N, or no arguments when it is empty      |
| /rvaed/model               | model name                                             |
| /rvaed/peers               | Link peers                                             |
| /rvaed/training            | progress 0..1, status text                             |

Controller maps (rvaed.control.mapfile) may bind any other address (TouchOSC's /1/xy1 and so on).
"""

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from rvaed.control.controls import Controls
from rvaed.control.hub import Hub
from rvaed.control.ratelimit import RateLimitedLog
from rvaed.core.errors import RvaedError
from rvaed.core.parameters import CLOCK, Parameter
from rvaed.core.state import PARAMETERS, PRESETS, number

log = logging.getLogger(__name__)

MAX_DATAGRAM = 16384  # larger datagrams are refused (controllers send a few hundred bytes)
DRAIN_LIMIT = 512  # datagrams read per wake-up before giving the loop back
MAX_SUBSCRIBERS = 16
FEEDBACK_INTERVAL = 0.05
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux
Handler = Callable[[Any, tuple, tuple, int], None]  # (owner, sender, args, arrival_ns)
Allowed = Callable[[str], bool]  # may this host send what touches files?


@dataclass(frozen=True)
class Route:
    """One input address. ``handler(owner, sender, args, arrival_ns)`` gets the object the
    route is served for; a ValueError or RvaedError is bad input (logged, rate-limited)."""

    address: str
    arguments: str  # as documented ("" for none)
    effect: str  # one line
    handler: Handler
    files: bool = False  # touches files: obeyed only from allowed senders (osc.allow)
    latest: bool = False  # only sets state: of a burst of them, the newest is all that counts


def numbers(address: str, args: tuple, count: int) -> list[float]:
    """Exactly ``count`` finite numbers, or ValueError saying what was expected."""
    if len(args) != count:
        raise ValueError(f"{address}: expected {count} number argument(s), got {len(args)}")
    return [number(arg, address) for arg in args]


class OscServer:
    """UDP OSC endpoint of the daemon, bound to ``host:port`` (port 0 picks a free one)."""

    def __init__(self, performance: Hub, controls: Controls | None = None, *,
                 host: str = "127.0.0.1", port: int = 9000, model_name: str = "") -> None:
        self.performance = performance
        self.controls = controls
        self.host, self.port = host, port
        self.model_name = model_name
        self.rejected = RateLimitedLog(log, "OSC")
        self.received = 0
        self.coalesced = 0  # setter messages skipped because a newer one came in the same burst
        self.subscribers: dict[tuple[str, int], None] = {}
        self.training: tuple[float, str] = (0.0, "idle")
        self._sock: socket.socket | None = None
        self._dirty = True
        self._sent_clock: tuple = ()
        self._feedback: asyncio.Task | None = None
        self._routes: dict[str, tuple[Route, object, Allowed | None]] = {}
        self._setters: set[bytes] = set()
        self.serve(ROUTES, self)

    @property
    def addresses(self) -> list[str]:
        return sorted(self._routes)

    def serve(self, routes: Iterable[Route], owner: object, allowed: Allowed | None = None,
              ) -> None:
        """Serve ``routes`` for ``owner`` (their handlers' first argument); those that touch
        files only from the hosts ``allowed`` says yes to (required for them)."""
        for route in routes:
            if route.files and allowed is None:
                raise ValueError(f"{route.address}: touches files, served without a sender check")
            if route.address in self._routes:
                raise ValueError(f"{route.address}: served twice")
            self._routes[route.address] = (route, owner, allowed)
            if route.latest:
                self._setters.add(route.address.encode())

    def reply(self, sender: tuple, address: str, args: list) -> None:
        """Send one message back to ``sender`` (answers to the daemon's own commands)."""
        self._send(build_msg(address, args).dgram, sender[:2])

    async def start(self) -> None:
        """Bind and start reading; a port in use is a one-line error."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RvaedError(f"OSC: cannot listen on {self.host}:{self.port}: "
                             f"{exc.strerror or exc}") from None
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._drain)
        self.performance.listeners.append(self._pattern_changed)
        self._feedback = loop.create_task(self._feedback_loop())
        log.info("OSC: listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._feedback is not None:
            self._feedback.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feedback
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        with contextlib.suppress(ValueError):
            self.performance.listeners.remove(self._pattern_changed)

    def report_training(self, progress: float, status: str) -> None:
        """Training progress for subscribers (0..1 and a short status)."""
        self.training = (min(1.0, max(0.0, progress)), status)
        self._dirty = True

    # -- input ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Read every waiting datagram (bounded per wake-up), then apply them as a burst."""
        burst = []
        for _ in range(DRAIN_LIMIT):
            try:
                data, ancillary, flags, sender = self._sock.recvmsg(  # type: ignore[union-attr]
                    MAX_DATAGRAM + 1, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable from a gone subscriber
                log.debug("OSC: receive: %s", exc)
                continue
            self.received += 1
            if len(data) > MAX_DATAGRAM or flags & socket.MSG_TRUNC:
                self.rejected(f"datagram from {sender[0]} larger than {MAX_DATAGRAM} bytes ignored")
                continue
            burst.append((data, sender, _arrival(ancillary)))
        self.apply_burst(burst)

    def apply_burst(self, burst: list[tuple[bytes, tuple, int]]) -> None:
        """Apply datagrams (data, sender, arrival) in order, except that in a run of setter
        messages (nothing else between them) only the newest to each address is parsed and
        applied, carrying the oldest one's arrival (so the measured latency starts there).

        Within such a run every field ends as it would have, and any other message (a preset
        store, a state query, a mapped control) still sees the state as it was sent. Under a
        fader flood this skips most of the parsing, which is most of the work. (When the
        newest message of a run is invalid, it is logged and the field keeps its value from
        before the run.)
        """
        arrivals = [at for _, _, at in burst]
        skip = [False] * len(burst)
        newest: dict[bytes, int] = {}  # setter address -> its newest message in this run
        for i in range(len(burst) - 1, -1, -1):
            data = burst[i][0]
            address = data[:data.find(b"\0")]
            if address not in self._setters:
                newest.clear()
            elif address in newest:
                skip[i] = True
                arrivals[newest[address]] = arrivals[i]
            else:
                newest[address] = i
        for (data, sender, _), skipped, at in zip(burst, skip, arrivals, strict=True):
            if skipped:
                self.coalesced += 1
            else:
                self.packet(data, sender, at)

    def packet(self, data: bytes, sender: tuple, at: int) -> None:
        """Parse one datagram (message or bundle) and apply every message in it."""
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # python-osc raises several types on garbage: drop them all
            self.rejected(f"malformed packet from {sender[0]} ignored: {exc}")
            return
        for message in messages:
            try:
                self.message(message.address, tuple(message.params), sender, at)
            except ValueError as exc:
                self.rejected(f"{exc} (from {sender[0]})")

    def message(self, address: str, args: tuple, sender: tuple, at: int) -> None:
        served = self._routes.get(address)
        if served is not None:
            route, owner, allowed = served
            if route.files and not allowed(sender[0]):  # type: ignore[misc]
                raise ValueError(f"{address}: refused from {sender[0]} (not in osc.allow)")
            try:
                route.handler(owner, sender, args, at)
            except RvaedError as exc:
                raise ValueError(f"{address}: {exc}") from None
        elif self.controls is None or not self.controls.osc(address, args, at):
            raise ValueError(f"unknown address {address[:80]!r}")

    # -- handlers (ValueError = bad input, logged by the caller) --------------------------

    def _xy(self, sender, args, at) -> None:
        x, y = numbers("/rvaed/xy", args, 2)
        self.performance.set_xy(x, y, at)

    def _voice_index(self, address: str, value: object) -> int:
        names = self.performance.decoder.kit.names
        if isinstance(value, str) and value in names:
            return names.index(value)
        number = numbers(address, (value,), 1)[0]
        if number != int(number) or not 1 <= number <= len(names):
            raise ValueError(f"{address}: expected a voice name or number 1-{len(names)}")
        return int(number) - 1

    def _transition(self, sender, args, at) -> None:
        unit = args[1] if len(args) == 2 else "ms"
        if unit not in ("ms", "bars"):
            raise ValueError("/rvaed/transition: expected amount and ms or bars")
        self.performance.set_transition(numbers("/rvaed/transition", args[:1], 1)[0], unit)
        self._dirty = True

    def _state(self, sender, args, at) -> None:
        for datagram in self._feedback_messages():
            self._send(datagram, sender[:2])

    def _subscriber(self, address: str, sender, args) -> tuple[str, int]:
        if not args:
            return (sender[0], sender[1])
        port = numbers(address, args, 1)[0]
        if port != int(port) or not 1 <= port <= 65535:
            raise ValueError(f"{address}: expected a UDP port 1-65535")
        return (sender[0], int(port))

    def _subscribe(self, sender, args, at) -> None:
        client = self._subscriber("/rvaed/subscribe", sender, args)
        self.subscribers.pop(client, None)
        self.subscribers[client] = None
        while len(self.subscribers) > MAX_SUBSCRIBERS:
            del self.subscribers[next(iter(self.subscribers))]
        self._state((client[0], client[1]), (), at)

    def _unsubscribe(self, sender, args, at) -> None:
        self.subscribers.pop(self._subscriber("/rvaed/unsubscribe", sender, args), None)

    # -- feedback --------------------------------------------------------------------------

    def _pattern_changed(self, performance: Hub) -> None:
        self._dirty = True

    async def _feedback_loop(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            clock = self.performance.clock
            clock_now = (clock.tempo, clock.peers, clock.playing)
            if not self.subscribers or not (self._dirty or clock_now != self._sent_clock):
                continue
            self._dirty, self._sent_clock = False, clock_now
            datagrams = self._feedback_messages()
            for client in list(self.subscribers):
                for datagram in datagrams:
                    self._send(datagram, client)

    def _feedback_messages(self) -> list[bytes]:
        perf = self.performance
        state, clock = perf.state, perf.clock
        hits = perf.pattern.hits(state.threshold)
        voices, steps = perf.pattern.voices, perf.pattern.steps
        cells = [0] * (voices * steps)
        for hit in hits:
            cells[hit.voice * steps + hit.step] = hit.velocity
        messages = [build_msg("/rvaed/pattern", [voices, steps, *cells])]
        messages += [build_msg(f"/rvaed/pattern/{v + 1}",
                               [float(c > 0) for c in cells[v * steps:(v + 1) * steps]])
                     for v in range(voices)]
        messages += [build_msg("/rvaed/xy", [state.x, state.y])]
        if self.controls is not None:  # mapped controls on their own addresses (/xy1 x y)
            messages += [build_msg(a, args) for a, args in self.controls.feedback()]
        messages += [build_msg(row.address, row.outward(
                         getattr(clock if row.invalidates == CLOCK else state, row.name)))
                     for row in PARAMETERS.values()]
        messages += [build_msg("/rvaed/peers", int(clock.peers)),
                     build_msg("/rvaed/model", self.model_name),
                     build_msg("/rvaed/transition", [state.transition.amount,
                                                     state.transition.unit]),
                     build_msg("/rvaed/training", list(self.training))]
        messages += [build_msg(f"/rvaed/{name[:-2]}", [v + 1, int(v in getattr(state, name))])
                     for name in ("mutes", "freezes") for v in range(voices)]
        messages += [build_msg(f"/rvaed/preset/{n + 1}", list(p) if p else [])
                     for n, p in enumerate(state.presets)]
        return [m.dgram for m in messages]

    def _send(self, datagram: bytes, client: tuple[str, int]) -> None:
        try:
            self._sock.sendto(datagram, client)  # type: ignore[union-attr]
        except OSError as exc:  # a full buffer or a vanished client must not stop anything
            log.debug("OSC: feedback to %s:%d: %s", client[0], client[1], exc)


def _setter(row: Parameter) -> Handler:
    def handler(server: OscServer, sender: tuple, args: tuple, at: int) -> None:
        value = numbers(row.address, args, 1)[0]
        server.performance.set(row.name, row.inward(value), at)
    return handler


def _voice(name: str) -> Handler:
    address = "/rvaed/" + name[:-2]

    def handler(server: OscServer, sender: tuple, args: tuple, at: int) -> None:
        if len(args) != 2:
            raise ValueError(f"{address}: expected VOICE and 0/1, got {len(args)} arguments")
        voice = server._voice_index(address, args[0])
        server.performance.set_voice(name, voice, numbers(address, args[1:], 1)[0], at)
    return handler


def _preset(store: bool) -> Handler:
    address = "/rvaed/preset/" + ("store" if store else "recall")

    def handler(server: OscServer, sender: tuple, args: tuple, at: int) -> None:
        number = numbers(address, args, 1)[0]
        if store:
            server.performance.store_preset(number)
        elif not server.performance.recall_preset(number, at):
            raise ValueError(f"{address}: preset {number:g} is empty")
        server._dirty = True
    return handler


X = PARAMETERS["x"]
# The performance's routes: a setter per parameter (a switch, playing, is an event: a stop and
# a start in one burst both count), then the rest.
ROUTES = (
    *(Route(row.address, row.arguments, row.doc, _setter(row), latest=row.kind is not bool)
      for row in PARAMETERS.values()),
    Route("/rvaed/xy", f"x y ({X.low:g}..{X.high:g})", "move in the latent space (both axes)",
          OscServer._xy, latest=True),
    Route("/rvaed/mute", "VOICE 0/1",
          "mute a voice (VOICE: its name in the kit, or its number from 1)", _voice("mutes")),
    Route("/rvaed/freeze", "VOICE 0/1", "freeze a voice: it keeps the hits it plays now",
          _voice("freezes")),
    Route("/rvaed/preset/store", f"N (1..{PRESETS})", "store x/y in preset N", _preset(True)),
    Route("/rvaed/preset/recall", f"N (1..{PRESETS})", "glide to preset N",
          _preset(False)),
    Route("/rvaed/transition", "amount [ms or bars]",
          "glide time of a preset recall (default unit ms)", OscServer._transition),
    Route("/rvaed/state", "", "reply with every feedback message, to the sender",
          OscServer._state),
    Route("/rvaed/subscribe", "[port]",
          "send feedback to the sender's IP (at port): pattern grid, state, model, training",
          OscServer._subscribe),
    Route("/rvaed/unsubscribe", "[port]", "stop that feedback", OscServer._unsubscribe),
)


def _arrival(ancillary: list) -> int:
    """perf_counter_ns when the datagram reached the kernel (now, if it gave no timestamp)."""
    now = time.perf_counter_ns()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            waited = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
            return now - max(0, waited)
    return now
