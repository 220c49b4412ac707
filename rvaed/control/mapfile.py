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
      - {osc: /1/toggle1, target: playing, one_way: true}  # no feedback to this control

Sources (exactly one per binding): ``cc`` (with ``lsb`` for 14-bit pairs, or ``relative``:
twos-complement (1 = +1, 127 = -1), signed-bit (1 = +1, 65 = -1), signed-bit-2 (65 = +1,
1 = -1), binary-offset (65 = +1, 63 = -1)); ``note`` (velocity; note-off is 0); ``pitchbend``;
``program`` (a program number fires the target like a button); ``osc`` address with ``arg``
index (default 0).

Targets: every performance parameter by its name in the state's parameter table
(`rvaed.core.state.PARAMETERS`, listed with its range in the README's OSC table): a number is
continuous over its range ("off" included: fixed_velocity 0 = off), a switch (playing) is
``mode: momentary`` (default) or ``toggle``; and transition.ms, transition.bars (continuous),
mute.VOICE, freeze.VOICE (switches) and preset.recall.N, preset.store.N (N 1-8, fired when the
control goes past half way).

Transforms, applied in this order to the control's 0..1 value: ``deadzone`` (0..0.45: that
much at each end reads as the end), ``curve`` (exponent > 0: 2 gives finer control low down),
``invert``, ``range: [low, high]`` (in target units; default the field's whole range).
``smoothing`` (full ranges per second) slews the target instead of jumping; ``takeover: soft``
ignores an absolute knob until it reaches the current value (no jump when it was moved
elsewhere, by a preset or by another controller).

Bindings are two-way: an OSC control bound to a target is sent the target's value on its own
address with the rest of the OSC feedback (to subscribers), through the inverse of its
transforms, so a TouchOSC pad named /xy1 follows a preset glide, automation and every other
controller. Several bindings on one address make one message (/xy1 x y). Preset buttons have
no value and are sent none; ``one_way: true`` (OSC only) leaves any other control out. MIDI
controls get no feedback: rvaed sends MIDI only to the drum machines.

Every mistake in a file is one line: ``controllers/x.yaml:7: bindings[2].cc: expected ...``.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from rvaed.core import yamlfile
from rvaed.core.kit import Kit
from rvaed.core.resources import resolve, shipped
from rvaed.core.state import PARAMETERS, PRESETS, TRANSITION_UNITS
from rvaed.core.yamlfile import integer_in

SOURCES = ("cc", "note", "pitchbend", "program", "osc")
RELATIVE = ("twos-complement", "signed-bit", "signed-bit-2", "binary-offset")
VALUE_TARGETS = (*(name for name, row in PARAMETERS.items() if row.kind is not bool),
                 *(f"transition.{unit}" for unit in TRANSITION_UNITS))
SWITCH_TARGETS = tuple(name for name, row in PARAMETERS.items() if row.kind is bool)
FIELDS = {"target", "channel", "lsb", "relative", "step", "mode", "arg", "range", "invert",
          "curve", "deadzone", "smoothing", "takeover", "one_way", *SOURCES}
SMOOTHING_TICK = 0.01  # seconds between slew steps
TAKEOVER_CATCH = 0.02  # a soft-takeover knob picks up within 2% of the range


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
    two_way: bool = True  # an OSC control is sent its target's value (feedback)

    def shape(self, value: float) -> float:
        """Control value 0..1 -> target units, through dead zone, curve, invert and range."""
        value = min(1.0, max(0.0, value))
        if self.deadzone:
            value = min(1.0, max(0.0, (value - self.deadzone) / (1 - 2 * self.deadzone)))
        value = value ** self.curve
        if self.invert:
            value = 1.0 - value
        return self.low + (self.high - self.low) * value

    def unshape(self, value: float) -> float:
        """The control value 0..1 that `shape` turns into ``value`` (target units; the nearest
        end when ``value`` lies outside the binding's range): what the control is sent back."""
        span = self.high - self.low
        control = min(1.0, max(0.0, (value - self.low) / span)) if span else 0.0
        if self.invert:
            control = 1.0 - control
        control = control ** (1.0 / self.curve)
        return self.deadzone + (1 - 2 * self.deadzone) * control


@dataclass(frozen=True)
class Mapping:
    """A loaded controller file."""

    name: str
    path: Path
    port: str | None
    bindings: tuple[Binding, ...]


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
    doc.only((), data, sorted({"name", "device", "port", "channel", "swap_xy", "bindings"}))
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


def _real(value: object) -> bool:
    """An int (however large: range checks follow) or a finite float; not a bool."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value))


def _channel(doc: yamlfile.Document, key: tuple, value: object) -> int | None:
    if value is None or value == "any":
        return None
    if not integer_in(value, 1, 16):
        raise doc.error(key, "expected a MIDI channel 1-16 or 'any'")
    return value


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
    doc.only(key, entry, sorted(FIELDS))
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
    for name, allowed_with in (("lsb", "cc"), ("relative", "cc"), ("arg", "osc"),
                               ("one_way", "osc")):
        if name in entry and source != allowed_with:
            raise doc.error((*key, name), f"only for a {allowed_with} source")
    if source in ("cc", "note", "program"):
        if not integer_in(value, 0, 127):
            raise doc.error((*key, source), f"expected a {source} number 0-127")
        binding = replace(binding, number=value)
    if source == "pitchbend" and value is not True:
        raise doc.error((*key, source), "expected true")
    if source == "osc":
        if not isinstance(value, str) or not value.startswith("/") or " " in value:
            raise doc.error((*key, source), "expected an OSC address like /1/xy1")
        arg = entry.get("arg", 0)
        if not integer_in(arg, 0, 63):
            raise doc.error((*key, "arg"), "expected an argument index 0-63")
        binding = replace(binding, address=value, arg=arg)
    if "lsb" in entry:
        if not integer_in(entry["lsb"], 0, 127) or entry["lsb"] == entry["cc"]:
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
    for name in ("invert", "one_way"):
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
                   smoothing=smoothing, soft=takeover == "soft",
                   two_way=not entry.get("one_way", False))


def _target(doc, key: tuple, value: object, swap: bool, kit: Kit) -> Target:
    expected = (f"expected one of {', '.join((*VALUE_TARGETS, *SWITCH_TARGETS))}, mute.VOICE, "
                f"freeze.VOICE, preset.recall.N, preset.store.N")
    if not isinstance(value, str):
        raise doc.error(key, expected)
    if swap and value in ("x", "y"):
        value = {"x": "y", "y": "x"}[value]
    if value in SWITCH_TARGETS:
        return Target("switch", value)
    if value in PARAMETERS:
        return Target("value", value, 0, *PARAMETERS[value].span)
    if value.startswith("transition.") and value[11:] in TRANSITION_UNITS:
        return Target("value", value, 0, 0.0, TRANSITION_UNITS[value[11:]])
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
