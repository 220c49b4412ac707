"""The performance state: everything a performer changes, valid at every moment.

One mutable dataclass owned by `rvaed.control.performance.Performance` on the asyncio loop. Every
assignment goes through a validator: numbers are clamped to their range, NaN/inf and wrong
types are refused with `ValueError` (the OSC and MIDI layers turn that into a rate-limited log
line), so no controller, file or packet can put the daemon into a state it cannot play.

Ranges (controller maps and the OSC API use the same ones):

| field          | range / values                  | meaning                                   |
| -------------- | ------------------------------- | ----------------------------------------- |
| x, y           | 0 .. 1                          | position in the trained latent region     |
| threshold      | 0 .. 1                          | onset probability to play (lower = busier)|
| noise          | 0 .. 1                          | random jitter added to z once per bar     |
| velocity_scale | 0 .. 2                          | multiplies the decoded velocities         |
| fixed_velocity | None or 1 .. 127                | every hit at this velocity                |
| timing         | 0 .. 2                          | 0 quantized, 1 as learned, 2 exaggerated  |
| swing          | 0.5 .. 0.75                     | MPC-style swing of the off-beat 16ths     |
| mutes, freezes | sets of voice indices           | muted: silent; frozen: keeps its hits     |
| presets        | 8 slots of (x, y) or None       | stored positions                          |
| transition     | 0..60000 "ms" or 0..64 "bars"   | glide time of a preset recall             |
| tempo          | 20 .. 999 BPM                   | Link's tempo range                        |
| playing        | bool                            | transport                                 |
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Real

PRESETS = 8
TRANSITION_UNITS = {"ms": 60000.0, "bars": 64.0}

RANGES: dict[str, tuple[float, float]] = {
    "x": (0.0, 1.0),
    "y": (0.0, 1.0),
    "threshold": (0.0, 1.0),
    "noise": (0.0, 1.0),
    "velocity_scale": (0.0, 2.0),
    "timing": (0.0, 2.0),
    "swing": (0.5, 0.75),
    "tempo": (20.0, 999.0),
}


def number(value: object, name: str) -> float:
    """``value`` as a finite float, or a `ValueError` naming the field and what was expected."""
    result = value
    if type(result) is not float:  # floats (what OSC and the mappings send) skip the ABC checks
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"{name}: expected a number, got {value!r:.80}")
        try:
            result = float(value)
        except OverflowError:  # an integer (or a fraction of integers) beyond any float
            bits = int(math.trunc(value)).bit_length()  # noqa: RUF046 (typed as no int)
            raise ValueError(f"{name}: expected a finite number, got a {bits}-bit "
                             "integer") from None
    if not math.isfinite(result):
        raise ValueError(f"{name}: expected a finite number, got {result}")
    return result


def clamp(value: object, name: str) -> float:
    """A finite number for field ``name``, clamped into its range."""
    low, high = RANGES[name]
    return min(high, max(low, number(value, name)))


@dataclass(frozen=True)
class Transition:
    """How long a preset recall glides from the current x/y to the preset's."""

    amount: float = 0.0
    unit: str = "ms"

    def __post_init__(self) -> None:
        if self.unit not in TRANSITION_UNITS:
            raise ValueError(f"transition unit: expected one of {', '.join(TRANSITION_UNITS)}, "
                             f"got {self.unit!r}")
        amount = number(self.amount, "transition")
        object.__setattr__(self, "amount", min(TRANSITION_UNITS[self.unit], max(0.0, amount)))

    def seconds(self, tempo: float, beats_per_bar: int) -> float:
        """The glide time at ``tempo`` (bars follow the tempo, milliseconds do not)."""
        if self.unit == "ms":
            return self.amount / 1000.0
        return self.amount * beats_per_bar * 60.0 / tempo


def preset_slot(value: object) -> int:
    """The 0-based slot of preset ``value`` (numbered 1-8, as printed on controllers)."""
    slot = number(value, "preset")
    if slot != int(slot) or not 1 <= slot <= PRESETS:
        raise ValueError(f"preset: expected a whole number 1-{PRESETS}, got {value!r}")
    return int(slot) - 1


def _voice_set(value: object, name: str, voices: int) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name}: expected a set of voice indices, got {value!r}")
    result = frozenset(value)
    for voice in result:
        if isinstance(voice, bool) or not isinstance(voice, int) or not 0 <= voice < voices:
            raise ValueError(f"{name}: expected voice indices 0-{voices - 1}, got {voice!r}")
    return result


def _fixed_velocity(value: object) -> int | None:
    if value is None:
        return None
    velocity = number(value, "fixed_velocity")
    return min(127, max(1, round(velocity)))


def _presets(value: object) -> tuple[tuple[float, float] | None, ...]:
    if not isinstance(value, Iterable):
        raise ValueError(f"presets: expected {PRESETS} slots, got {value!r:.80}")
    slots = tuple(value)
    if len(slots) != PRESETS:
        raise ValueError(f"presets: expected {PRESETS} slots, got {len(slots)}")
    return tuple(None if slot is None else (clamp(slot[0], "x"), clamp(slot[1], "y"))
                 for slot in slots)


def _boolean(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    return number(value, name) >= 0.5


@dataclass
class PerformanceState:
    """What the performer has set; assignments are validated (see the module table)."""

    voices: int = 9
    x: float = 0.5
    y: float = 0.5
    threshold: float = 0.5
    noise: float = 0.0
    velocity_scale: float = 1.0
    fixed_velocity: int | None = None
    timing: float = 1.0
    swing: float = 0.5
    mutes: frozenset[int] = frozenset()
    freezes: frozenset[int] = frozenset()
    presets: tuple[tuple[float, float] | None, ...] = field(
        default_factory=lambda: (None,) * PRESETS)
    transition: Transition = field(default_factory=Transition)
    tempo: float = 120.0
    playing: bool = False

    def __setattr__(self, name: str, value: object) -> None:
        if name in RANGES:
            value = clamp(value, name)
        elif name == "fixed_velocity":
            value = _fixed_velocity(value)
        elif name in ("mutes", "freezes"):
            value = _voice_set(value, name, self.voices)
        elif name == "presets":
            value = _presets(value)
        elif name == "transition" and not isinstance(value, Transition):
            raise ValueError(f"transition: expected a Transition, got {value!r}")
        elif name == "playing":
            value = _boolean(value, name)
        elif name == "voices" and (isinstance(value, bool) or not isinstance(value, int)
                                   or value < 1):
            raise ValueError(f"voices: expected a positive integer, got {value!r}")
        elif name not in self.__dataclass_fields__:
            raise AttributeError(f"PerformanceState has no field {name!r}")
        super().__setattr__(name, value)

    def with_voice(self, name: str, voice: int, on: object) -> frozenset[int]:
        """The set ``name`` ("mutes" or "freezes") with ``voice`` added or removed."""
        if isinstance(voice, bool) or not isinstance(voice, int) or not 0 <= voice < self.voices:
            raise ValueError(f"{name}: expected a voice 0-{self.voices - 1}, got {voice!r}")
        current: frozenset[int] = getattr(self, name)
        return current | {voice} if _boolean(on, name) else current - {voice}

    def to_dict(self) -> dict:
        """Plain data (for the OSC state reply, persistence and logs)."""
        return {
            "x": self.x, "y": self.y, "threshold": self.threshold, "noise": self.noise,
            "velocity_scale": self.velocity_scale, "fixed_velocity": self.fixed_velocity,
            "timing": self.timing, "swing": self.swing, "mutes": sorted(self.mutes),
            "freezes": sorted(self.freezes),
            "presets": [list(p) if p else None for p in self.presets],
            "transition": {"amount": self.transition.amount, "unit": self.transition.unit},
            "tempo": self.tempo, "playing": self.playing,
        }
