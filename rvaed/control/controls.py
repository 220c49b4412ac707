"""Routing live input: the active mappings applied to the performance, MIDI bytes and OSC in.

The file format and its checks are in `rvaed.control.mapfile`; this is what happens when a
control moves: transforms, soft takeover, smoothing, switches and triggers; and, the other way,
what each two-way OSC control is sent so that it shows where its target stands (`feedback`,
sent by the OSC server with the rest of its feedback). On SIGHUP the
daemon hands the same `Controls` its new mappings (`use_mappings`), so every input routing
through it follows at once.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from rvaed.control.hub import Hub
from rvaed.control.mapfile import SMOOTHING_TICK, TAKEOVER_CATCH, Binding, Mapping, Target
from rvaed.core.midi import CONTROL_CHANGE as CC
from rvaed.core.midi import NOTE_OFF, NOTE_ON, PITCHBEND, PROGRAM
from rvaed.core.state import PARAMETERS
from rvaed.core.state import number as finite_number


@dataclass
class _Live:
    """What a binding remembers between messages (edges, 14-bit MSB, takeover)."""

    msb: int = 0
    pressed: bool = False
    sent: float | None = None
    previous: float | None = None


@dataclass
class Controls:
    """The active mappings routed to a `Performance`: MIDI bytes and OSC messages in."""

    performance: Hub
    mappings: list[Mapping]
    _midi: dict[tuple, list[Binding]] = field(default_factory=dict)
    _osc: dict[str, list[Binding]] = field(default_factory=dict)
    _shown: dict[str, list[Binding]] = field(default_factory=dict)  # two-way, first last
    _live: dict[int, _Live] = field(default_factory=dict)
    _slews: dict[tuple[str, int], tuple[Binding, float]] = field(default_factory=dict)
    _slewing: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self._index()

    def use_mappings(self, mappings: list[Mapping]) -> None:
        """Route through ``mappings`` from the next message on (SIGHUP): the old bindings are
        forgotten, a glide under way still reaches its goal."""
        self.mappings = list(mappings)
        self._midi.clear()
        self._osc.clear()
        self._shown.clear()
        self._live.clear()
        self._index()

    def _index(self) -> None:
        for mapping in self.mappings:
            for binding in mapping.bindings:
                if binding.source == "osc":
                    self._osc.setdefault(binding.address, []).append(binding)
                    if binding.two_way and binding.target.kind != "trigger":
                        self._shown.setdefault(binding.address, []).insert(0, binding)
                    continue
                for status, number in _midi_keys(binding):
                    key = (mapping.port, status, binding.channel, number)
                    self._midi.setdefault(key, []).append(binding)

    @property
    def ports(self) -> list[str | None]:
        """The MIDI input port specs the mappings ask for (None: the default input)."""
        return sorted({m.port for m in self.mappings if any(b.source != "osc"
                                                             for b in m.bindings)},
                      key=lambda p: p or "")

    def midi(self, port: str | None, message: bytes | list[int], at: int | None = None) -> bool:
        """Apply one MIDI message from input ``port``; False when nothing is bound to it."""
        if len(message) < 2 or message[0] >= 0xF0 or message[0] < 0x80:
            return False
        status, channel = message[0] & 0xF0, (message[0] & 0x0F) + 1
        data1 = message[1]
        data2 = message[2] if len(message) > 2 else 0
        if status == NOTE_ON and data2 == 0:
            status = NOTE_OFF
        number = None if status in (PITCHBEND,) else data1
        if status == NOTE_OFF:
            status = NOTE_ON
            data2 = -1
        found = False
        for spec in {port, None}:
            for chan in (channel, None):
                for binding in self._midi.get((spec, status, chan, number), ()):
                    found = True
                    self._midi_value(binding, status, data1, data2, at)
        return found

    def osc(self, address: str, args: tuple | list, at: int | None = None) -> bool:
        """Apply one OSC message; False when no mapping binds ``address``.

        A bad argument (missing, not a number, NaN) raises ValueError for the caller to log.
        """
        bindings = self._osc.get(address)
        if not bindings:
            return False
        for binding in bindings:
            if binding.arg >= len(args):
                raise ValueError(f"{address}: expected at least {binding.arg + 1} arguments")
            value = finite_number(args[binding.arg], f"{address}: argument {binding.arg}")
            self.apply(binding, value, at)
        return True

    def feedback(self) -> list[tuple[str, list[float]]]:
        """(address, arguments) for every two-way OSC control: each bound argument the control
        value (0..1) that would set its target where it stands now; an argument no binding
        fills is 0.0, and of two bindings on one argument the first counts."""
        messages = []
        for address, bindings in self._shown.items():
            shown = {b.arg: b.unshape(self.get(b.target)) for b in bindings}
            messages.append((address, [shown.get(i, 0.0) for i in range(max(shown) + 1)]))
        return messages

    def _midi_value(self, binding: Binding, status: int, data1: int, data2: int,
                    at: int | None) -> None:
        live = self._live.setdefault(id(binding), _Live())
        if status == PITCHBEND:
            self.apply(binding, (data1 | data2 << 7) / 16383, at)
        elif status == PROGRAM:
            self.apply(binding, 1.0, at)
            self.apply(binding, 0.0, at)
        elif status == NOTE_ON:  # any note-on presses a switch; velocity sets a value
            pressed = data2 > 0 if binding.target.kind != "value" else max(0, data2) / 127
            self.apply(binding, float(pressed), at)
        elif binding.relative:
            self._nudge(binding, _relative(binding.relative, data2) * binding.step, at)
        elif binding.lsb is None:
            self.apply(binding, data2 / 127, at)
        elif data1 == binding.number:
            live.msb = data2  # a new MSB resets the LSB (MIDI 1.0, control change 0-31)
            self.apply(binding, (data2 << 7) / 16383, at)
        else:
            self.apply(binding, (live.msb << 7 | data2) / 16383, at)

    def apply(self, binding: Binding, value: float, at: int | None = None) -> None:
        """Feed one control value (0..1) through ``binding`` into the performance."""
        target = binding.target
        live = self._live.setdefault(id(binding), _Live())
        if target.kind != "value":
            self._press(binding, live, value >= 0.5 if not binding.invert else value < 0.5, at)
            return
        wanted = binding.shape(value)
        if binding.soft and not self._caught(binding, live, wanted):
            return
        if binding.smoothing:
            self._slew(binding, wanted)
            return
        self._set(target, wanted, at)
        live.sent = self.get(target)

    def _caught(self, binding: Binding, live: _Live, wanted: float) -> bool:
        """Soft takeover: follow only once the knob meets the value where it stands."""
        current = self.get(binding.target)
        previous, live.previous = live.previous, wanted
        if live.sent is not None and abs(current - live.sent) < 1e-9:
            return True
        span = abs(binding.high - binding.low) or 1.0
        if abs(wanted - current) <= TAKEOVER_CATCH * span:
            return True
        return previous is not None and (previous - current) * (wanted - current) <= 0

    def _press(self, binding: Binding, live: _Live, down: bool, at: int | None) -> None:
        target = binding.target
        edge = down and not live.pressed
        live.pressed = down
        if target.kind == "trigger":
            if edge:
                perf = self.performance
                if target.name == "recall":
                    perf.recall_preset(target.index, at)
                else:
                    perf.store_preset(target.index)
            return
        if binding.toggle:
            if edge:
                self._switch(target, not self.get(target), at)
        else:
            self._switch(target, down, at)

    def _switch(self, target: Target, on: bool, at: int | None) -> None:
        if target.name == "playing":
            self.performance.set("playing", on, at)
        else:
            self.performance.set_voice(target.name, target.index, on, at)

    def _nudge(self, binding: Binding, delta: float, at: int | None) -> None:
        span = binding.high - binding.low
        value = self.get(binding.target) + delta * span
        self._set(binding.target, min(max(value, min(binding.low, binding.high)),
                                      max(binding.low, binding.high)), at)

    def get(self, target: Target) -> float:
        """The target's current value in its own units (switches: 0 or 1)."""
        state = self.performance.state
        if target.name in ("mutes", "freezes"):
            return float(target.index in getattr(state, target.name))
        if target.name.startswith("transition."):
            unit = target.name[11:]
            return state.transition.amount if state.transition.unit == unit else 0.0
        return float(PARAMETERS[target.name].outward(getattr(state, target.name)))

    def _set(self, target: Target, value: float, at: int | None) -> None:
        perf = self.performance
        if target.name.startswith("transition."):
            perf.set_transition(value, target.name[11:])
        else:
            perf.set(target.name, PARAMETERS[target.name].inward(value), at)

    # -- smoothing: a slew task on the loop moves the targets towards their goals ---------

    def _slew(self, binding: Binding, goal: float) -> None:
        self._slews[binding.target.key] = (binding, goal)
        if self._slewing is None or self._slewing.done():
            self._slewing = asyncio.get_running_loop().create_task(self._run_slews())

    async def _run_slews(self) -> None:
        last = time.monotonic()
        while self._slews:
            await asyncio.sleep(SMOOTHING_TICK)
            now = time.monotonic()
            elapsed, last = now - last, now
            for key, (binding, goal) in list(self._slews.items()):
                current = self.get(binding.target)
                step = binding.smoothing * abs(binding.high - binding.low) * elapsed
                value = current + min(step, max(-step, goal - current))
                self._set(binding.target, value, None)
                self._live.setdefault(id(binding), _Live()).sent = self.get(binding.target)
                if abs(goal - value) <= 1e-9:
                    del self._slews[key]

    async def close(self) -> None:
        if self._slewing is not None:
            self._slewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._slewing


def _midi_keys(binding: Binding) -> list[tuple[int, int | None]]:
    if binding.source == "cc":
        keys: list[tuple[int, int | None]] = [(CC, binding.number)]
        return [*keys, (CC, binding.lsb)] if binding.lsb is not None else keys
    if binding.source == "note":
        return [(NOTE_ON, binding.number)]
    if binding.source == "program":
        return [(PROGRAM, binding.number)]
    return [(PITCHBEND, None)]


def _relative(mode: str, value: int) -> int:
    """Ticks (signed) from one relative-encoder byte in ``mode``."""
    if mode == "twos-complement":
        return value - 128 if value >= 64 else value
    if mode == "binary-offset":
        return value - 64
    magnitude, sign_set = value & 0x3F, bool(value & 0x40)
    negative = sign_set if mode == "signed-bit" else not sign_set
    return -magnitude if negative else magnitude
