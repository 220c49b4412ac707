"""The OSC API: every performance field settable over UDP, state queries and live feedback.

python-osc parses and builds the messages; the socket is read by the asyncio loop itself
(``add_reader``) so that each wake-up drains every datagram waiting: a flood of 2,000 faders
a second becomes a handful of state changes and one decode of the newest value, not a
queue. Packet arrival is taken from the kernel's receive timestamp (SO_TIMESTAMPNS) where
the system has one, so the measured control latency includes any time spent in the socket
buffer. Anything malformed is dropped with a rate-limited log line; the state never leaves
its valid ranges (see rvaed.core.state).

Every input address is a `Route`: its arguments, its effect in one line, whether it touches
files and its handler, all with one signature. The performance's routes are `ROUTES` below (one
per parameter of the state's table, and the rest); the daemon adds its commands and the tools'
(the whole registry: `rvaed.daemon.routes.ROUTES`, which renders the README's OSC tables).

Who may do what. Performance controls are open plain OSC. A route that touches files (train,
model switch, capture, groove from a file) is obeyed only with the daemon's secret as its
first argument (a string; the daemon logs at start where to find it), checked by a `Guard`
(rvaed.daemon.policy.FilePolicy), whatever the source address: `/rvaed/train SECRET PATH ...`.
On the daemon's machine `rvaed train --daemon` uses a local socket instead.

The daemon never answers more than a few bytes to a datagram from an unproven sender, and
never obeys itself: datagrams from its own address and port are dropped, as is a subscription
to them. Each source (address and port) may send `SOURCE_RATE` messages a second besides
setters (of a burst of those only the newest is parsed, so they cost next to nothing and the
last value of a fader is never lost); what it sends beyond is read and dropped unparsed, so
a flood from one host does not starve the phone. python-osc's own warnings (one per odd
datagram) are rate-limited like ours.

Feedback: the subscription handshake (rvaed.control.subscribers has the why):

1. send ``/rvaed/subscribe [PORT]`` (PORT: where you listen; default the port you send from);
2. the daemon sends ``/rvaed/hello NONCE`` (one string) to your IP at that port;
3. send ``/rvaed/subscribe/confirm NONCE`` (from any port of the same IP): feedback starts,
   the whole state first, then what changes (at most every 50 ms, within a byte budget of
   32 KB/s per subscriber);
4. the daemon sends a fresh ``/rvaed/hello NONCE`` every 20 s: echo each one as in step 3, or
   the subscription ends 60 s after the last echo. ``/rvaed/unsubscribe NONCE`` ends it now.

A phone layout does step 1 when it opens and answers every /rvaed/hello with step 3 (a TouchOSC
script: ``if message[1] == '/rvaed/hello' then sendOSC('/rvaed/subscribe/confirm',
message[2][1].value) end`` in onReceiveOSC; Open Stage Control: a script run by a received
value cannot send, so a timer of the root sends the echo; the shipped controllers/rvaed.json
does). At most 16 subscribers (4 per
IP) are live; more are refused, never evicted. /rvaed/state and the daemon's replies
(/rvaed/models) go to the sender's live subscriptions, not back to the sending port.

Feedback uses the same addresses as the input, so a TouchOSC control bound to /rvaed/threshold
shows the value, plus:

| address                    | arguments                                              |
| -------------------------- | ------------------------------------------------------ |
| /rvaed/hello               | NONCE: echo it to /rvaed/subscribe/confirm             |
| /rvaed/pattern             | voices steps, voices*steps ints row by row (velocity, 0 = none) |
| /rvaed/pattern/N           | steps floats 1.0/0.0 for voice N (1-based): a TouchOSC grid row |
| /rvaed/steps               | VOICE STEP CONDITION (1-based) for each hit's own condition |
| /rvaed/mute, /rvaed/freeze | VOICE-NUMBER 0/1, one message per voice                 |
| /rvaed/preset/N            | x y of preset N, or no arguments when it is empty      |
| /rvaed/model               | model name                                             |
| /rvaed/peers               | Link peers                                             |
| /rvaed/training            | progress 0..1, status text                             |

Controller maps (rvaed.control.mapfile) may bind any other address (TouchOSC's /1/xy1 and so on).
"""

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from rvaed.control.controls import Controls
from rvaed.control.hub import Hub
from rvaed.control.ratelimit import RateLimitedLog, RateLimitFilter, TokenBucket
from rvaed.control.subscribers import Client, Subscriber, Subscriptions
from rvaed.core.errors import RvaedError
from rvaed.core.parameters import CLOCK, Parameter
from rvaed.core.state import PARAMETERS, PRESETS, SEED_MAX, number

log = logging.getLogger(__name__)

MAX_DATAGRAM = 16384  # larger datagrams are refused (controllers send a few hundred bytes)
DRAIN_LIMIT = 512  # datagrams read per wake-up before giving the loop back
FEEDBACK_INTERVAL = 0.05
RECEIVE_BUFFER = 4 << 20  # bytes asked for (the kernel caps it at net.core.rmem_max)
SOURCE_RATE = 500  # messages a second from one source (address, port) besides setters, burst
MAX_SOURCES = 4096  # sources with a budget held at once (the least recently seen go first)
HELLO_RATE = 200  # hellos a second to all unproven senders together: ~7 KB/s at most
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux
Handler = Callable[[Any, tuple, tuple, int], None]  # (owner, sender, args, arrival_ns)


class Guard(Protocol):
    """Decides whether a command that touches files is obeyed (rvaed.daemon.policy)."""

    def admit(self, address: str, host: str, args: tuple) -> tuple:
        """The command's own arguments (the credential taken off), or RvaedError."""


@dataclass(frozen=True)
class Route:
    """One input address. ``handler(owner, sender, args, arrival_ns)`` gets the object the
    route is served for; a ValueError or RvaedError is bad input (logged, rate-limited)."""

    address: str
    arguments: str  # as documented ("" for none)
    effect: str  # one line
    handler: Handler
    files: bool = False  # touches files: obeyed only when its `Guard` admits it (the secret)
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
        self.over_budget = 0  # datagrams dropped unparsed: their source was over its budget
        self.own = 0  # datagrams from the daemon's own socket, dropped
        self.subscriptions = Subscriptions()
        self.training: tuple[float, str] = (0.0, "idle")
        self._sock: socket.socket | None = None
        self._dirty = True
        self._sent_clock: tuple = ()
        self._feedback: asyncio.Task | None = None
        self._routes: dict[str, tuple[Route, object, Guard | None]] = {}
        self._setters: set[bytes] = set()
        self._sources: OrderedDict[tuple, TokenBucket] = OrderedDict()
        self._hellos = TokenBucket(HELLO_RATE, HELLO_RATE)
        self._local: dict[str, bool] = {}
        self._library_log = RateLimitFilter("pythonosc")
        self.serve(ROUTES, self)

    @property
    def subscribers(self) -> dict[Client, Subscriber]:
        """The live (confirmed) subscriptions."""
        return self.subscriptions.live

    @property
    def addresses(self) -> list[str]:
        return sorted(self._routes)

    def serve(self, routes: Iterable[Route], owner: object, guard: Guard | None = None,
              ) -> None:
        """Serve ``routes`` for ``owner`` (their handlers' first argument); those that touch
        files only when ``guard`` admits them (required for them)."""
        for route in routes:
            if route.files and guard is None:
                raise ValueError(f"{route.address}: touches files, served without a guard")
            if route.address in self._routes:
                raise ValueError(f"{route.address}: served twice")
            self._routes[route.address] = (route, owner, guard)
            if route.latest:
                self._setters.add(route.address.encode())

    def route(self, address: str) -> tuple[Route, object] | None:
        """The route served at ``address`` and its owner (the web page dispatches through
        them too), or None."""
        served = self._routes.get(address)
        return None if served is None else (served[0], served[1])

    def reply(self, sender: tuple, address: str, args: list) -> None:
        """Answer ``sender`` at its live subscriptions, within their budgets (never back to
        the sending port: the source may be forged)."""
        datagram = build_msg(address, args).dgram
        for subscriber in self._subscribed(address, sender[0]):
            subscriber.replies[address] = datagram
            subscriber.behind = True

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
        with contextlib.suppress(OSError):  # room for a flood's burst while the loop is busy
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._drain)
        self.performance.listeners.append(self._pattern_changed)
        self._feedback = loop.create_task(self._feedback_loop())
        logging.getLogger().addFilter(self._library_log)  # python-osc logs on the root logger
        log.debug("OSC: socket bound to %s:%d", self.host, self.port)

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
        logging.getLogger().removeFilter(self._library_log)

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
            if self._admitted(sender, data):
                if len(data) > MAX_DATAGRAM or flags & socket.MSG_TRUNC:
                    self.rejected(f"datagram from {sender[0]} larger than {MAX_DATAGRAM} "
                                  "bytes ignored")
                    continue
                burst.append((data, sender, _arrival(ancillary)))
        self.apply_burst(burst)

    def _admitted(self, sender: tuple, data: bytes) -> bool:
        """Not from the daemon's own socket, and its source within its budget."""
        if self._is_self((sender[0], sender[1])):
            self.own += 1
            return False
        key = sender[:2]
        budget = self._sources.pop(key, None) or TokenBucket(SOURCE_RATE, SOURCE_RATE)
        self._sources[key] = budget  # most recently seen last
        if len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)
        if data[:data.find(b"\0")] in self._setters or budget.take():
            return True
        self.over_budget += 1
        self.rejected(f"{sender[0]}:{sender[1]} sends more than {SOURCE_RATE} messages a second "
                      "besides setters: the rest is dropped")
        return False

    def _is_self(self, client: Client) -> bool:
        """``client`` is this daemon's socket: its port at one of this machine's addresses."""
        return client[1] == self.port and self._is_local(client[0])

    def _is_local(self, host: str) -> bool:
        known = self._local.get(host)
        if known is None:
            known = self._local[host] = _local_address(host)
            if len(self._local) > MAX_SOURCES:
                self._local.clear()
        return known

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
            route, owner, guard = served
            try:
                if route.files:
                    args = guard.admit(address, sender[0], args)  # type: ignore[union-attr]
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

    def _step(self, sender, args, at) -> None:
        if len(args) != 3:
            raise ValueError(f"/rvaed/step: expected VOICE STEP CONDITION, got {len(args)} "
                             "arguments")
        voice = self._voice_index("/rvaed/step", args[0])
        step = numbers("/rvaed/step", args[1:2], 1)[0]
        if step != int(step):
            raise ValueError(f"/rvaed/step: expected a whole step number, got {step:g}")
        self.performance.set_step(voice, int(step) - 1, args[2], at)

    def _fill_now(self, sender, args, at) -> None:
        self.performance.fill_next_bar()

    def _new_seed(self, sender, args, at) -> None:
        other = _dice.randrange(SEED_MAX)  # of the SEED_MAX seeds but the current one
        self.performance.set("seed", (self.performance.state.seed + 1 + other) % (SEED_MAX + 1),
                             at)

    def _subscribed(self, address: str, host: str) -> list[Subscriber]:
        """``host``'s live subscriptions, where its answers go; ValueError if none."""
        targets = self.subscriptions.of_host(host)
        if not targets:
            raise ValueError(f"{address}: no reply to {host}: subscribe first "
                             "(/rvaed/subscribe), replies go to subscribers")
        return targets

    def _state(self, sender, args, at) -> None:
        for subscriber in self._subscribed("/rvaed/state", sender[0]):  # all again, in budget
            subscriber.sent.clear()
            subscriber.behind = True

    def _subscribe(self, sender, args, at) -> None:
        client = (sender[0], sender[1])
        if args:
            port = numbers("/rvaed/subscribe", args, 1)[0]
            if port != int(port) or not 1 <= port <= 65535:
                raise ValueError("/rvaed/subscribe: expected a UDP port 1-65535")
            client = (sender[0], int(port))
        if self._is_self(client):
            raise ValueError(f"/rvaed/subscribe: {client[0]}:{client[1]} is this daemon")
        if not self._hellos.take():
            raise ValueError(f"/rvaed/subscribe: more than {HELLO_RATE} a second, "
                             f"{client[0]} not answered")
        self._hello(client)

    def _hello(self, client: Client) -> None:
        self._send(build_msg("/rvaed/hello", self.subscriptions.nonce(client)).dgram, client)

    def _verified(self, address: str, sender, args) -> Client:
        client = self.subscriptions.verify(sender[0], args[0] if len(args) == 1 else None)
        if client is None:
            raise ValueError(f"{address}: expected the NONCE of a recent /rvaed/hello to "
                             f"{sender[0]}")
        return client

    def _confirm(self, sender, args, at) -> None:
        self.subscriptions.confirm(self._verified("/rvaed/subscribe/confirm", sender, args))

    def _unsubscribe(self, sender, args, at) -> None:
        client = self._verified("/rvaed/unsubscribe", sender, args)
        self.subscriptions.end(client, "asked")

    # -- feedback --------------------------------------------------------------------------

    def _pattern_changed(self, performance: Hub) -> None:
        self._dirty = True

    async def _feedback_loop(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            for client in self.subscriptions.expire():
                self._hello(client)
            clock = self.performance.clock
            clock_now = (clock.tempo, clock.peers, clock.playing)
            changed = self._dirty or clock_now != self._sent_clock
            if not any(changed or s.behind for s in self.subscribers.values()):
                continue
            self._dirty, self._sent_clock = False, clock_now
            current = self._feedback_messages()
            for subscriber in list(self.subscribers.values()):
                self._deliver(subscriber, current)

    def _deliver(self, subscriber: Subscriber, current: dict[str, bytes]) -> None:
        """What ``subscriber`` has not had yet, as far as its byte budget goes now."""
        due = subscriber.due(current)
        for address, datagram in due:
            if not subscriber.budget.take(len(datagram)):
                subscriber.behind = True
                return
            self._send(datagram, subscriber.client)
            subscriber.bytes_sent += len(datagram)
            if subscriber.replies.pop(address, None) is None:
                subscriber.sent[address] = datagram
        subscriber.behind = False

    def _feedback_messages(self) -> dict[str, bytes]:
        perf = self.performance
        state, clock = perf.state, perf.clock
        hits = perf.pattern.hits(perf.thresholds())
        voices, steps = perf.pattern.voices, perf.pattern.steps
        cells = [0] * (voices * steps)
        for hit in hits:
            cells[hit.voice * steps + hit.step] = hit.velocity
        messages = [build_msg("/rvaed/pattern", [voices, steps, *cells])]
        messages += [build_msg(f"/rvaed/pattern/{v + 1}",
                               [float(c > 0) for c in cells[v * steps:(v + 1) * steps]])
                     for v in range(voices)]
        messages += [build_msg("/rvaed/xy", [state.x, state.y]),
                     build_msg("/rvaed/steps", [item for voice, step, name in state.steps
                                                for item in (voice + 1, step + 1, name)])]
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
        keyed = {m.address: m.dgram for m in messages}
        keyed |= {f"{address} {v + 1}": build_msg(address, [v + 1, int(v in getattr(state, name))])
                  .dgram for name, address in VOICE_SETS.items() for v in range(voices)}
        keyed |= {f"/rvaed/preset/{n + 1}": build_msg(f"/rvaed/preset/{n + 1}",
                                                      list(p) if p else []).dgram
                  for n, p in enumerate(state.presets)}
        return keyed

    def _send(self, datagram: bytes, client: tuple[str, int]) -> None:
        try:
            self._sock.sendto(datagram, client)  # type: ignore[union-attr]
        except OSError as exc:  # a full buffer or a vanished client must not stop anything
            log.debug("OSC: feedback to %s:%d: %s", client[0], client[1], exc)


def _setter(row: Parameter) -> Handler:
    def handler(server: OscServer, sender: tuple, args: tuple, at: int) -> None:
        if row.choices and len(args) == 1 and isinstance(args[0], str):  # a choice by name
            server.performance.set(row.name, args[0], at)
            return
        value = numbers(row.address, args, 1)[0]
        server.performance.set(row.name, row.inward(value), at)
    return handler


def _voice(name: str) -> Handler:
    address = VOICE_SETS[name]

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


VOICE_SETS = {"mutes": "/rvaed/mute", "freezes": "/rvaed/freeze"}  # state field -> address
X = PARAMETERS["x"]
_dice = random.SystemRandom()  # a new seed is any other, not one a restart would repeat
# The performance's routes: a setter per parameter (a switch, playing, is an event: a stop and
# a start in one burst both count), then the rest.
ROUTES = (
    *(Route(row.address, row.arguments, row.doc, _setter(row), latest=row.kind is not bool)
      for row in PARAMETERS.values()),
    Route("/rvaed/xy", f"x y ({X.low:g}..{X.high:g})", "move in the latent space (both axes)",
          OscServer._xy, latest=True),
    Route(VOICE_SETS["mutes"], "VOICE 0/1",
          "mute a voice (VOICE: its name in the kit, or its number from 1)", _voice("mutes")),
    Route(VOICE_SETS["freezes"], "VOICE 0/1", "freeze a voice: it keeps the hits it plays now",
          _voice("freezes")),
    Route("/rvaed/preset/store", f"N (1..{PRESETS})", "store x/y in preset N", _preset(True)),
    Route("/rvaed/preset/recall", f"N (1..{PRESETS})", "glide to preset N",
          _preset(False)),
    Route("/rvaed/step", "VOICE STEP CONDITION",
          "a condition on one hit (STEP from 1; always: the voice's again), in place of its "
          "voice's: as /rvaed/condition/VOICE, or N% (its chance)", OscServer._step),
    Route("/rvaed/fill/now", "", "a fill in the next bar (as busy as /rvaed/fill says)",
          OscServer._fill_now),
    Route("/rvaed/seed/new", "", "re-roll: a new seed, any but the current one (then "
          "/rvaed/seed says which, to recall it)", OscServer._new_seed),
    Route("/rvaed/transition", "amount [ms or bars]",
          "glide time of a preset recall (default unit ms)", OscServer._transition),
    Route("/rvaed/state", "", "send every feedback message again, to the sender's live "
          "subscriptions", OscServer._state),
    Route("/rvaed/subscribe", "[PORT]",
          "ask for feedback at the sender's IP (at PORT): the answer is /rvaed/hello NONCE",
          OscServer._subscribe),
    Route("/rvaed/subscribe/confirm", "NONCE",
          "echo a /rvaed/hello: feedback (pattern grid, state, model, training) starts or "
          "goes on for 60 s", OscServer._confirm),
    Route("/rvaed/unsubscribe", "NONCE", "stop that feedback now", OscServer._unsubscribe),
)


def sender_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a sender ``host`` stands for: IPv4-mapped IPv6 (``::ffff:127.0.0.1``,
    what a dual-stack socket reports) as IPv4, a zone (``fe80::1%eth0``) left out; None for
    anything that is not an IP address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _local_address(host: str) -> bool:
    """True when ``host`` is an address of this machine (loopback, or one it can bind)."""
    address = sender_address(host)
    if address is None:
        return False
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


def _arrival(ancillary: list) -> int:
    """perf_counter_ns when the datagram reached the kernel (now, if it gave no timestamp)."""
    now = time.perf_counter_ns()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            waited = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
            return now - max(0, waited)
    return now
