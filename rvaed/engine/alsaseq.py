"""What the ALSA sequencer knows about an output that the port list does not: its subscription.

rtmidi's ALSA output is a port of our own client subscribed to the destination port. A
patchbay or `aconnect -d` can remove that subscription, and a device unplugged and replugged
between two looks at the port list comes back under the same name without it; either way the
port list looks unchanged and the output plays into nothing. The kernel lists every port's
subscriptions in /proc/asound/seq/clients, readable by anyone, without a sequencer client of
our own. `SubscriptionWatcher`, a thread of its own over the daemon's current outputs, reads
it every half second and calls `reopen` on an output whose subscription is gone: the output
opens its port afresh, which subscribes it again and clears what was left sounding.

Our port is known by the name the output gave it: two processes of rvaed on one destination
under the same port name are told apart by neither, so a subscription removed from one of them
is restored only once the other's is gone too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

CLIENTS = Path("/proc/asound/seq/clients")

Address = tuple[int, int]  # (client, port), as `aconnect` writes client:port

_CLIENT = re.compile(r'^Client\s+(\d+)\s*:\s*"(.*)"')
_PORT = re.compile(r'^\s+Port\s+(\d+)\s*:\s*"(.*)"')
_TO = re.compile(r"^\s+Connecting To:\s*(.*)$")
_ADDRESS = re.compile(r"(\d+):(\d+)")
_RTMIDI_ADDRESS = re.compile(r"\s(\d+):(\d+)$")  # rtmidi's ALSA names end in " client:port"


@dataclass(frozen=True)
class Port:
    """One sequencer port: its address, its client's and its own name, where it sends to."""

    address: Address
    client: str
    name: str
    sends_to: frozenset[Address] = field(default=frozenset())


def parse(text: str) -> list[Port]:
    """The ports in the text of /proc/asound/seq/clients, with their outgoing subscriptions."""
    ports: list[Port] = []
    client, client_name = -1, ""
    for line in text.splitlines():
        if found := _CLIENT.match(line):
            client, client_name = int(found[1]), found[2]
        elif found := _PORT.match(line):
            ports.append(Port((client, int(found[1])), client_name, found[2].rstrip()))
        elif (found := _TO.match(line)) and ports:
            targets = frozenset((int(c), int(p)) for c, p in _ADDRESS.findall(found[1]))
            last = ports[-1]
            ports[-1] = Port(last.address, last.client, last.name, last.sends_to | targets)
    return ports


def address_of(rtmidi_name: str) -> Address | None:
    """The client:port address at the end of an rtmidi ALSA port name, None for other APIs."""
    found = _RTMIDI_ADDRESS.search(rtmidi_name)
    return (int(found[1]), int(found[2])) if found else None


def read_ports() -> list[Port] | None:
    """The sequencer's ports now; None where there is no ALSA sequencer to ask."""
    try:
        return parse(CLIENTS.read_text(errors="replace"))
    except OSError:
        return None


def subscribed(ours: str, destination: str, ports: list[Port] | None = None) -> bool | None:
    """Whether a port named ``ours`` still sends to ``destination`` (an rtmidi ALSA port name).

    None when it cannot be told: no ALSA sequencer here, a name from another API, the
    destination not there at all (gone: the port list tells that), or no port of ours (yet).
    The name is compared as ALSA keeps it (63 bytes at most).
    """
    target = address_of(destination)
    ports = read_ports() if ports is None and target is not None else ports
    if target is None or ports is None or all(p.address != target for p in ports):
        return None
    mine = [p for p in ports if p.name == ours.encode()[:63].decode(errors="ignore").rstrip()]
    if not mine:
        return None
    return any(target in port.sends_to for port in mine)


def own_port_name(destination: str) -> str:
    """The name an output gives the port it opens to reach ``destination`` (midiout's rule)."""
    return f"to {destination}"[:60]


class Watched(Protocol):
    """What the watcher needs of an output (rvaed.engine.midiout.Output)."""

    @property
    def name(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    def reopen(self, reason: str) -> None: ...


class SubscriptionWatcher:
    """Every ``poll`` seconds, reopens each connected output whose subscription is gone."""

    def __init__(self, outputs: Callable[[], Sequence[Watched]], poll: float = 0.5) -> None:
        self._outputs = outputs
        self._poll = poll
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alsa subscriptions",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self, ports: list[Port] | None = None) -> list[Watched]:
        """One look (at ``ports``, default the kernel's): the outputs reopened because their
        subscription was gone."""
        ports = read_ports() if ports is None else ports
        if ports is None:
            return []
        cut = [output for output in self._outputs() if output.connected
               and subscribed(own_port_name(output.name), output.name, ports) is False]
        for output in cut:
            output.reopen(f"subscription to {output.name!r} removed from outside")
        return cut

    def _run(self) -> None:
        if read_ports() is None:
            log.debug("no ALSA sequencer here: subscriptions are not watched")
            return
        while not self._closing.wait(self._poll):
            self.check()
