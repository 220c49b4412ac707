"""Controller mappings: YAML files that bind MIDI and OSC controls to performance fields.

A mapping is a file in controllers/ (selected by name) or anywhere (by path); several can be
active at once. Example::

    name: my-pad
    port: nanoPAD2          # MIDI input port, by part of its name (omit: every opened input)
    channel: 1              # default MIDI channel 1-16 (omit: any channel)
    swap_xy: false          # exchange the x and y targets of every binding (a turned device)
    bindings:
      - {cc: 1, target: x}                              # 7-bit CC
      - {cc: 2, target: y, invert: true}
      - {cc: 12, lsb: 44, target: threshold}            # 14-bit CC: MSB 12, LSB 44
      - {cc: 16, relative: twos-complement, step: 0.01, target: noise}
      - {note: 36, target: mute.kick, mode: toggle}
      - {pitchbend: true, target: swing, deadzone: 0.02}
      - {program: 0, target: preset.recall.1}
      - {osc: /1/xy1, arg: 0, target: x}               # TouchOSC XY pad, first float
      - {cc: 74, target: tempo, range: [90, 140], takeover: soft, smoothing: 2}

Sources (exactly one per binding): ``cc`` (with ``lsb`` for 14-bit pairs, or ``relative``:
twos-complement (1 = +1, 127 = -1), signed-bit (1 = +1, 65 = -1), signed-bit-2 (65 = +1,
1 = -1), binary-offset (65 = +1, 63 = -1)); ``note`` (velocity; note-off is 0); ``pitchbend``;
``program`` (a program number fires the target like a button); ``osc`` address with ``arg``
index (default 0).

Targets: x, y, threshold, noise, velocity_scale, fixed_velocity (0 = off), timing, swing,
tempo, transition.ms, transition.bars (continuous); playing, mute.VOICE, freeze.VOICE
(switches, ``mode: momentary`` (default) or ``toggle``); preset.recall.N, preset.store.N
(N 1-8, fired when the control goes past half way).

Transforms, applied in this order to the control's 0..1 value: ``deadzone`` (0..0.45: that
much at each end reads as the end), ``curve`` (exponent > 0: 2 gives finer control low down),
``invert``, ``range: [low, high]`` (in target units; default the field's whole range).
``smoothing`` (full ranges per second) slews the target instead of jumping; ``takeover: soft``
ignores an absolute knob until it reaches the current value (no jump when it was moved
elsewhere, by a preset or by another controller).

Every mistake in a file is one line: ``controllers/x.yaml:7: bindings[2].cc: expected ...``.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rvaed import yamlfile
from rvaed.kit import Kit
from rvaed.resources import resolve, shipped
from rvaed.state import PRESETS, RANGES, TRANSITION_UNITS
from rvaed.state import number as finite_number

SOURCES = ("cc", "note", "pitchbend", "program", "osc")
RELATIVE = ("twos-complement", "signed-bit", "signed-bit-2", "binary-offset")
VALUE_TARGETS = (*RANGES, "fixed_velocity", "transition.ms", "transition.bars")
FIELDS = {"target", "channel", "lsb", "relative", "step", "mode", "arg", "range", "invert",
          "curve", "deadzone", "smoothing", "takeover", *SOURCES}
SMOOTHING_TICK = 0.01  # seconds between slew steps
TAKEOVER_CATCH = 0.02  # a soft-takeover knob picks up within 2% of the range
CC, NOTE_ON, NOTE_OFF, PROGRAM, PITCHBEND = 0xB0, 0x90, 0x80, 0xC0, 0xE0


@dataclass(frozen=True)
class Target:
    """What a binding moves: a value field, a voice switch, a preset action or transport."""

    kind: str  # "value", "switch", "trigger"
    name: str  # field, "mutes"/"freezes"/"playing", "recall"/"store", "transition.ms"...
    index: int = 0  # voice (0-based) or preset number (1-8)
    low: float = 0.0
    high: float = 1.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.index)


@dataclass(frozen=True)
class Binding:
    """One control -> one target, with its transforms (validated; see the module doc)."""

    source: str
    target: Target
    number: int = 0  # CC, note or program number
    channel: int | None = None  # 1-16, None = any
    lsb: int | None = None
    relative: str | None = None
    step: float = 1 / 127
    toggle: bool = False
    address: str = ""
    arg: int = 0
    low: float = 0.0
    high: float = 1.0
    invert: bool = False
    curve: float = 1.0
    deadzone: float = 0.0
    smoothing: float = 0.0
    soft: bool = False

    def shape(self, value: float) -> float:
        """Control value 0..1 -> target units, through dead zone, curve, invert and range."""
        value = min(1.0, max(0.0, value))
        if self.deadzone:
            value = min(1.0, max(0.0, (value - self.deadzone) / (1 - 2 * self.deadzone)))
        value = value ** self.curve
        if self.invert:
            value = 1.0 - value
        return self.low + (self.high - self.low) * value


@dataclass(frozen=True)
class Mapping:
    """A loaded controller file."""

    name: str
    path: Path
    port: str | None
    bindings: tuple[Binding, ...]

    @property
    def osc_addresses(self) -> frozenset[str]:
        return frozenset(b.address for b in self.bindings if b.source == "osc")


def shipped_mappings() -> dict[str, Path]:
    """The controller maps that come with rvaed, by name."""
    return shipped("rvaed.controllers", ".")


def load_mappings(names_or_paths: Iterable[str | Path], kit: Kit) -> list[Mapping]:
    return [load_mapping(item, kit) for item in names_or_paths]


def load_mapping(name_or_path: str | Path, kit: Kit) -> Mapping:
    """Load a shipped map by name or a map file by path, validating every field against ``kit``."""
    doc = yamlfile.load(resolve(name_or_path, "rvaed.controllers", ".", "controller map"))
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "expected a mapping with 'name' and 'bindings'")
    _only(doc, (), data, {"name", "device", "port", "channel", "swap_xy", "bindings"})
    name = data.get("name", doc.path.stem)
    if not isinstance(name, str) or not name:
        raise doc.error(("name",), "expected a non-empty string")
    port = data.get("port")
    if port is not None and (not isinstance(port, str) or not port):
        raise doc.error(("port",), "expected part of a MIDI input port name")
    channel = _channel(doc, ("channel",), data.get("channel"))
    swap = data.get("swap_xy", False)
    if not isinstance(swap, bool):
        raise doc.error(("swap_xy",), "expected true or false")
    entries = data.get("bindings")
    if not isinstance(entries, list) or not entries:
        raise doc.error(("bindings",), "expected a non-empty list of bindings")
    bindings = tuple(_binding(doc, ("bindings", i), entry, channel, swap, kit)
                     for i, entry in enumerate(entries))
    return Mapping(name, doc.path, port, bindings)


# -- validation helpers (each failure names file, line, field and what is expected) --------


def _only(doc: yamlfile.Document, key: tuple, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise doc.error((*key, unknown[0]), f"unknown field (expected {expected})")


def _integer(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _real(value: object) -> bool:
    """An int (however large: range checks follow) or a finite float; not a bool."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value))


def _channel(doc: yamlfile.Document, key: tuple, value: object) -> int | None:
    if value is None or value == "any":
        return None
    if not _integer(value, 1, 16):
        raise doc.error(key, "expected a MIDI channel 1-16 or 'any'")
    return value  # type: ignore[return-value]


def _number(doc, key: tuple, entry: dict, name: str, default: float, low: float,
            high: float, what: str) -> float:
    value = entry.get(name, default)
    if not _real(value) or not low <= value <= high:
        raise doc.error((*key, name), f"expected {what}")
    return float(value)


def _binding(doc: yamlfile.Document, key: tuple, entry: object, channel: int | None,
             swap: bool, kit: Kit) -> Binding:
    if not isinstance(entry, dict):
        raise doc.error(key, f"expected a mapping with one source ({', '.join(SOURCES)}) "
                        "and a target")
    _only(doc, key, entry, FIELDS)
    sources = [s for s in SOURCES if s in entry]
    if len(sources) != 1:
        raise doc.error(key, f"expected exactly one source of {', '.join(SOURCES)}, "
                        f"got {', '.join(sources) or 'none'}")
    source = sources[0]
    target = _target(doc, (*key, "target"), entry.get("target"), swap, kit)
    binding = Binding(source, target, channel=_channel(doc, (*key, "channel"),
                                                       entry.get("channel", channel)),
                      low=target.low, high=target.high)
    binding = _source(doc, key, entry, source, binding)
    return _transforms(doc, key, entry, binding)


def _source(doc, key: tuple, entry: dict, source: str, binding: Binding) -> Binding:
    value = entry[source]
    for name, allowed_with in (("lsb", "cc"), ("relative", "cc"), ("arg", "osc")):
        if name in entry and source != allowed_with:
            raise doc.error((*key, name), f"only for a {allowed_with} source")
    if source in ("cc", "note", "program"):
        if not _integer(value, 0, 127):
            raise doc.error((*key, source), f"expected a {source} number 0-127")
        binding = replace(binding, number=value)
    if source == "pitchbend" and value is not True:
        raise doc.error((*key, source), "expected true")
    if source == "osc":
        if not isinstance(value, str) or not value.startswith("/") or " " in value:
            raise doc.error((*key, source), "expected an OSC address like /1/xy1")
        arg = entry.get("arg", 0)
        if not _integer(arg, 0, 63):
            raise doc.error((*key, "arg"), "expected an argument index 0-63")
        binding = replace(binding, address=value, arg=arg)
    if "lsb" in entry:
        if not _integer(entry["lsb"], 0, 127) or entry["lsb"] == entry["cc"]:
            raise doc.error((*key, "lsb"), "expected the LSB controller number 0-127 "
                            "(usually cc + 32)")
        binding = replace(binding, lsb=entry["lsb"])
    if "relative" in entry:
        if entry["relative"] not in RELATIVE:
            raise doc.error((*key, "relative"), f"expected one of {', '.join(RELATIVE)}")
        if "lsb" in entry:
            raise doc.error((*key, "relative"), "a relative encoder has no LSB")
        binding = replace(binding, relative=entry["relative"],
                          step=_number(doc, key, entry, "step", 1 / 127, 1e-6, 1.0,
                                       "a step per tick 0..1 of the range"))
    elif "step" in entry:
        raise doc.error((*key, "step"), "only for a relative encoder")
    return binding


def _transforms(doc, key: tuple, entry: dict, binding: Binding) -> Binding:
    target = binding.target
    mode = entry.get("mode", "momentary")
    if mode not in ("momentary", "toggle"):
        raise doc.error((*key, "mode"), "expected momentary or toggle")
    if "mode" in entry and target.kind != "switch":
        raise doc.error((*key, "mode"), "only for a switch target (playing, mute.*, freeze.*)")
    low, high = target.low, target.high
    if "range" in entry:
        pair = entry["range"]
        if (not isinstance(pair, list) or len(pair) != 2 or not all(map(_real, pair))
                or not all(low <= v <= high for v in pair) or target.kind != "value"):
            raise doc.error((*key, "range"), f"expected [low, high] within {low:g}..{high:g} "
                            "for a value target")
        low, high = float(pair[0]), float(pair[1])
    for name in ("invert",):
        if name in entry and not isinstance(entry[name], bool):
            raise doc.error((*key, name), "expected true or false")
    takeover = entry.get("takeover", "jump")
    if takeover not in ("jump", "soft"):
        raise doc.error((*key, "takeover"), "expected jump or soft")
    if takeover == "soft" and (binding.relative or target.kind != "value"):
        raise doc.error((*key, "takeover"), "soft takeover is for absolute controls of a value")
    smoothing = _number(doc, key, entry, "smoothing", 0.0, 0.0, 1000.0,
                        "a slew rate in ranges per second, 0 (off) to 1000")
    if smoothing and target.kind != "value":
        raise doc.error((*key, "smoothing"), "only for a value target")
    return replace(binding, toggle=mode == "toggle", low=low, high=high,
                   invert=entry.get("invert", False),
                   curve=_number(doc, key, entry, "curve", 1.0, 0.05, 20.0,
                                 "an exponent 0.05..20 (1 is linear)"),
                   deadzone=_number(doc, key, entry, "deadzone", 0.0, 0.0, 0.45,
                                    "a dead zone 0..0.45 at each end"),
                   smoothing=smoothing, soft=takeover == "soft")


def _target(doc, key: tuple, value: object, swap: bool, kit: Kit) -> Target:
    expected = (f"expected one of {', '.join(VALUE_TARGETS)}, playing, mute.VOICE, "
                f"freeze.VOICE, preset.recall.N, preset.store.N")
    if not isinstance(value, str):
        raise doc.error(key, expected)
    if swap and value in ("x", "y"):
        value = {"x": "y", "y": "x"}[value]
    if value in RANGES:
        return Target("value", value, 0, *RANGES[value])
    if value == "fixed_velocity":
        return Target("value", value, 0, 0.0, 127.0)
    if value.startswith("transition.") and value[11:] in TRANSITION_UNITS:
        return Target("value", value, 0, 0.0, TRANSITION_UNITS[value[11:]])
    if value == "playing":
        return Target("switch", "playing")
    head, _, rest = value.partition(".")
    if head in ("mute", "freeze"):
        if rest not in kit.names:
            raise doc.error(key, f"{head}: not a voice of kit {kit.name} "
                            f"(expected one of {', '.join(kit.names)})")
        return Target("switch", head + "s", kit.names.index(rest))
    action, _, number = rest.partition(".")
    if head == "preset" and action in ("recall", "store"):
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= PRESETS:
            raise doc.error(key, f"preset: expected preset.{action}.N with N 1-{PRESETS}")
        return Target("trigger", action, int(number))
    raise doc.error(key, expected)


# -- routing live input ------------------------------------------------------------------


class RateLimitedLog:
    """Bad live input: one warning per interval, the rest counted and reported with the next."""

    def __init__(self, logger: logging.Logger, prefix: str, interval: float = 5.0) -> None:
        self.logger, self.prefix = logger, prefix
        self.interval = interval
        self.count = 0
        self._last = -math.inf
        self._suppressed = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} more ignored)" if self._suppressed else ""
        self.logger.warning("%s: %s%s", self.prefix, message, extra)
        self._last, self._suppressed = now, 0



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

    performance: object
    mappings: list[Mapping]
    _midi: dict[tuple, list[Binding]] = field(default_factory=dict)
    _osc: dict[str, list[Binding]] = field(default_factory=dict)
    _live: dict[int, _Live] = field(default_factory=dict)
    _slews: dict[tuple[str, int], tuple[Binding, float]] = field(default_factory=dict)
    _slewing: asyncio.Task | None = None

    def __post_init__(self) -> None:
        for mapping in self.mappings:
            for binding in mapping.bindings:
                if binding.source == "osc":
                    self._osc.setdefault(binding.address, []).append(binding)
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

    def osc_addresses(self) -> set[str]:
        return set(self._osc)

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
        if target.name == "fixed_velocity":
            return float(state.fixed_velocity or 0)
        if target.name.startswith("transition."):
            unit = target.name[11:]
            return state.transition.amount if state.transition.unit == unit else 0.0
        return float(getattr(state, target.name))

    def _set(self, target: Target, value: float, at: int | None) -> None:
        perf = self.performance
        if target.name == "fixed_velocity":
            perf.set("fixed_velocity", None if value < 1 else value, at)
        elif target.name.startswith("transition."):
            perf.set_transition(value, target.name[11:])
        else:
            perf.set(target.name, value, at)

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
        keys = [(CC, binding.number)]
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

