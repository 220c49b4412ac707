"""The performance state: everything a performer changes, valid at every moment.

One mutable dataclass owned by `rvaed.control.performance.Performance` on the asyncio loop. Every
assignment goes through a validator: numbers are clamped to their range, NaN/inf and wrong
types are refused with `ValueError` (the OSC and MIDI layers turn that into a rate-limited log
line), so no controller, file or packet can put the daemon into a state it cannot play.

The parameters (x, threshold, tempo ...) are the rows of `PerformanceState`: each field made
with `parameter` carries its range, default, what a change invalidates, OSC address, "off"
value, whether it is restored at start and a one-line doc (see `rvaed.core.parameters`);
`PARAMETERS` reads them. Validation, the OSC setters and feedback, controller-map targets,
persistence and the README's OSC table all come from these rows, so a new parameter is one row
here plus the code that gives it meaning. The other fields hold structured values: mutes and
freezes (sets of voice indices), presets (8 slots of (x, y) or None; `preset_conditions`
holds each one's conditions, recalled with it) and the transition (the
glide time of a preset recall, 0..60000 "ms" or 0..64 "bars").

Per-voice density is one row per voice of the default kit (`density_kick` at
/rvaed/density/kick ...), not one vector-valued row: every row stays a single number with
one address, so the OSC setter and feedback, the mapping targets, persistence, the phone
layouts, the web page and the README table take the nine rows as they take any other, with no
per-voice case anywhere. A row's offset is taken off the global threshold for its voice alone
(positive = busier); the rows address voices by position in the kit, as mutes do. The chance
rows (`chance_kick` at /rvaed/chance/kick ...) are made the same way: each of a voice's hits
plays with that chance, decided per loop by `rvaed.engine.schedule.roll` from the `seed` row,
so a variation comes back exactly with its seed. So are the note rows (`note_kick` at
/rvaed/note/kick ...): the note a voice plays on every output, live, in place of its drum
machine's (unset, 0 on the wire: the drum machine's). So are the condition rows
(`condition_kick` at /rvaed/condition/kick ...): whether a voice's hits play in a loop, by
name or index (`rvaed.core.conditions`); `steps` holds the conditions set on single steps,
each in place of its voice's row there.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from rvaed.core.conditions import CONDITIONS, parse
from rvaed.core.parameters import (
    CLOCK,
    DECODE,
    SCHEDULE,
    Parameter,
    boolean,
    number,
    parameter,
    rows,
)

PRESETS = 8
DENSITY_REACH = 0.5  # a density offset moves its voice's threshold this far either way
SEED_MAX = 9999  # seeds a player can say out loud and type on a phone
PHRASE_MAX = 16  # bars
FILL_REACH = 0.5  # the fill bar's thresholds are lowered this much at most
FILL_BARS_MAX = 4
FILL_FROM_MAX = 0.3  # of the pad's width: how far away a fill may be decoded
TRANSITION_UNITS = {"ms": 60000.0, "bars": 64.0}
STEPS_MAX = 1024  # the steps a condition can be set on (a model's loop has fewer)
# a preset's conditions: the voices' condition rows and the (voice, step, condition) entries
Conditions = tuple[tuple[int, ...], tuple[tuple[int, int, str], ...]]

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

    def seconds(self, tempo: float, beats_per_bar: float) -> float:
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


def _preset_conditions(value: object, voices: int) -> tuple[Conditions | None, ...]:
    """8 slots of None or (the voices' condition rows, the steps' conditions)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"preset_conditions: expected {PRESETS} slots, got {value!r:.80}")
    slots = tuple(value)
    if len(slots) != PRESETS:
        raise ValueError(f"preset_conditions: expected {PRESETS} slots, got {len(slots)}")
    rows = [PARAMETERS[name] for name in CONDITION]
    checked: list[Conditions | None] = []
    for slot in slots:
        if slot is None:
            checked.append(None)
            continue
        if not isinstance(slot, (list, tuple)) or len(slot) != 2 or \
                len(slot[0]) != len(rows):
            raise ValueError(f"preset_conditions: expected [{len(rows)} condition rows, "
                             f"steps] or null, got {slot!r:.80}")
        checked.append((tuple(row.valid(v) for row, v in zip(rows, slot[0], strict=True)),
                        _step_conditions(slot[1], voices)))
    return tuple(checked)


def _presets(value: object) -> tuple[tuple[float, float] | None, ...]:
    if not isinstance(value, Iterable):
        raise ValueError(f"presets: expected {PRESETS} slots, got {value!r:.80}")
    slots = tuple(value)
    if len(slots) != PRESETS:
        raise ValueError(f"presets: expected {PRESETS} slots, got {len(slots)}")
    x, y = PARAMETERS["x"], PARAMETERS["y"]
    return tuple(None if slot is None else (x.valid(slot[0]), y.valid(slot[1]))
                 for slot in slots)


def chance(voice: str) -> Any:
    """The chance row of the kit's voice named ``voice``: how likely each of its hits plays,
    rolled anew every loop from the seed."""
    return parameter(1.0, 0.0, 1.0, SCHEDULE, f"/rvaed/chance/{voice}",
                     f"{voice} only: the chance each hit plays, rolled every loop from the seed")


def note(voice: str) -> Any:
    """The note row of the kit's voice named ``voice``: the MIDI note it plays on every output,
    in place of the drum machine's (0 on the wire: the drum machine's again)."""
    return parameter(None, 1, 127, SCHEDULE, f"/rvaed/note/{voice}",
                     f"{voice} only: the note it plays (0: the drum machine's)", off=0)


def condition(voice: str) -> Any:
    """The condition row of the kit's voice named ``voice``: in which loops its hits play."""
    return parameter(0, 0, len(CONDITIONS) - 1, SCHEDULE, f"/rvaed/condition/{voice}",
                     f"{voice} only: when its hits play: always, 1st, fill, pre, nei (each also "
                     "'not ...'), A:B (loop A of every B, 1:2 .. 8:8)", choices=CONDITIONS)


def _step_conditions(value: object, voices: int) -> tuple[tuple[int, int, str], ...]:
    """(voice, step, condition name) triples, one per step at most, in order; "always"
    is no entry."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"steps: expected a list of [voice, step, condition], got {value!r:.80}")
    found: dict[tuple[int, int], str] = {}
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise ValueError(f"steps: expected [voice, step, condition], got {item!r:.80}")
        voice, step, text = item
        for name, index, top in (("voice", voice, voices), ("step", step, STEPS_MAX)):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < top:
                raise ValueError(f"steps: expected a {name} 0-{top - 1}, got {index!r:.40}")
        name = parse(text, "steps").name
        found[voice, step] = name
    return tuple((v, st, name) for (v, st), name in sorted(found.items()) if name != "always")


def density(voice: str) -> Any:
    """The density row of the kit's voice named ``voice``: an offset taken off the threshold
    for that voice alone (positive = busier)."""
    return parameter(0.0, -DENSITY_REACH, DENSITY_REACH, SCHEDULE, f"/rvaed/density/{voice}",
                     f"{voice} only: taken off the threshold (positive = busier)")


@dataclass
class PerformanceState:
    """What the performer has set; assignments are validated. The `parameter` fields are the
    parameter table: default, range, what a change invalidates, OSC address, doc."""

    voices: int = 9
    x: float = parameter(0.5, 0.0, 1.0, DECODE, "/rvaed/x",
                         "position along x in the trained latent region")
    y: float = parameter(0.5, 0.0, 1.0, DECODE, "/rvaed/y",
                         "position along y in the trained latent region")
    threshold: float = parameter(0.5, 0.0, 1.0, SCHEDULE, "/rvaed/threshold",
                                 "onset probability to play (lower = busier)")
    noise: float = parameter(0.0, 0.0, 1.0, DECODE, "/rvaed/noise",
                             "random jitter added to z once per bar")
    velocity_scale: float = parameter(1.0, 0.0, 2.0, SCHEDULE, "/rvaed/velocity",
                                      "multiplies the decoded velocities")
    fixed_velocity: int | None = parameter(None, 1, 127, SCHEDULE, "/rvaed/fixed_velocity",
                                           "every hit at this velocity", off=0)
    timing: float = parameter(1.0, 0.0, 2.0, SCHEDULE, "/rvaed/timing",
                              "microtiming: 0 quantized, 1 as learned, 2 exaggerated")
    swing: float = parameter(0.5, 0.5, 1.0, SCHEDULE, "/rvaed/swing",
                             "swing of the off-beat steps: 0.5 straight, 0.67 triplets, 0.75 "
                             "MPC's most, 1.0 a whole step late (the original's shuffle)")
    push: float = parameter(0.0, -50.0, 50.0, SCHEDULE, "/rvaed/push",
                            "ms the groove plays ahead of the session's grid (negative: lays "
                            "back)")
    speed: float = parameter(1.0, 0.5, 4.0, SCHEDULE, "/rvaed/speed",
                             "x1/2, x1, x2 or x4 (the nearest): the loop at that speed, "
                             "switched on a loop line")
    explore: bool = parameter(False, 0, 1, DECODE, "/rvaed/explore",
                              "the pad spans the prior's +-3 on both axes, beyond the box "
                              "the training data fills (off: that box)")
    tempo: float = parameter(120.0, 20.0, 999.0, CLOCK, "/rvaed/tempo",
                             "tempo in BPM, Link's range (the Link session's, when Link is on)",
                             persisted=False)
    playing: bool = parameter(False, 0, 1, CLOCK, "/rvaed/play", "transport: stop / start")
    link: bool = parameter(True, 0, 1, CLOCK, "/rvaed/link",
                           "Ableton Link: leave / join the session (no beat jump)",
                           persisted=False)
    density_kick: float = density("kick")  # the default kit's voices, in its order
    density_snare: float = density("snare")
    density_closed_hat: float = density("closed-hat")
    density_open_hat: float = density("open-hat")
    density_low_tom: float = density("low-tom")
    density_mid_tom: float = density("mid-tom")
    density_high_tom: float = density("high-tom")
    density_clap: float = density("clap")
    density_rim: float = density("rim")
    chance_kick: float = chance("kick")  # the default kit's voices, in its order
    chance_snare: float = chance("snare")
    chance_closed_hat: float = chance("closed-hat")
    chance_open_hat: float = chance("open-hat")
    chance_low_tom: float = chance("low-tom")
    chance_mid_tom: float = chance("mid-tom")
    chance_high_tom: float = chance("high-tom")
    chance_clap: float = chance("clap")
    chance_rim: float = chance("rim")
    note_kick: int | None = note("kick")  # the default kit's voices, in its order
    note_snare: int | None = note("snare")
    note_closed_hat: int | None = note("closed-hat")
    note_open_hat: int | None = note("open-hat")
    note_low_tom: int | None = note("low-tom")
    note_mid_tom: int | None = note("mid-tom")
    note_high_tom: int | None = note("high-tom")
    note_clap: int | None = note("clap")
    note_rim: int | None = note("rim")
    condition_kick: int = condition("kick")  # the default kit's voices, in its order
    condition_snare: int = condition("snare")
    condition_closed_hat: int = condition("closed-hat")
    condition_open_hat: int = condition("open-hat")
    condition_low_tom: int = condition("low-tom")
    condition_mid_tom: int = condition("mid-tom")
    condition_high_tom: int = condition("high-tom")
    condition_clap: int = condition("clap")
    condition_rim: int = condition("rim")
    phrase: int = parameter(0, 0, PHRASE_MAX, SCHEDULE, "/rvaed/phrase",
                            "bars a phrase lasts; its last bar is a fill (0: no phrases)")
    fill: float = parameter(0.3, 0.0, FILL_REACH, SCHEDULE, "/rvaed/fill",
                            "how much busier the fill bar is: taken off every threshold")
    fill_bars: int = parameter(1, 1, FILL_BARS_MAX, SCHEDULE, "/rvaed/fill/bars",
                               "bars a fill lasts: a phrase's last ones (at most the phrase), or "
                               "from the next bar line on FILL")
    fill_from: float = parameter(0.0, 0.0, FILL_FROM_MAX, DECODE, "/rvaed/fill/from",
                                 "how far across the pad a fill may come from: the busiest of "
                                 "8 points this far around (0: the point playing)")
    seed: int = parameter(0, 0, SEED_MAX, SCHEDULE, "/rvaed/seed",
                          "the variation: chances and noise roll from it, so the same seed, "
                          "point and settings play the same loops again")
    mutes: frozenset[int] = frozenset()
    freezes: frozenset[int] = frozenset()
    steps: tuple[tuple[int, int, str], ...] = ()  # (voice, step, condition) set on one step
    presets: tuple[tuple[float, float] | None, ...] = field(
        default_factory=lambda: (None,) * PRESETS)
    transition: Transition = field(default_factory=Transition)
    preset_conditions: tuple[Conditions | None, ...] = field(
        default_factory=lambda: (None,) * PRESETS)

    def __setattr__(self, name: str, value: object) -> None:
        row = PARAMETERS.get(name)
        if row is not None:
            value = row.valid(value)
        elif name in ("mutes", "freezes"):
            value = _voice_set(value, name, self.voices)
        elif name == "presets":
            value = _presets(value)
        elif name == "steps":
            value = _step_conditions(value, self.voices)
        elif name == "preset_conditions":
            value = _preset_conditions(value, self.voices)
        elif name == "transition" and not isinstance(value, Transition):
            raise ValueError(f"transition: expected a Transition, got {value!r}")
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
        return current | {voice} if boolean(on, name) else current - {voice}

    def with_step(self, voice: int, step: int, text: object) -> tuple[tuple[int, int, str], ...]:
        """`steps` with the condition of ``voice`` on ``step`` set to ``text`` (always: its
        voice's again)."""
        kept = [entry for entry in self.steps if entry[:2] != (voice, step)]
        return _step_conditions([*kept, (voice, step, text)], self.voices)

    def to_dict(self) -> dict:
        """Plain data (for the OSC state reply, persistence and logs)."""
        return {
            **{name: getattr(self, name) for name in PARAMETERS},
            "mutes": sorted(self.mutes), "freezes": sorted(self.freezes),
            "steps": [list(entry) for entry in self.steps],
            "presets": [list(p) if p else None for p in self.presets],
            "preset_conditions": [None if c is None else [list(c[0]), [list(e) for e in c[1]]]
                                  for c in self.preset_conditions],
            "transition": {"amount": self.transition.amount, "unit": self.transition.unit},
        }


PARAMETERS: dict[str, Parameter] = rows(fields(PerformanceState))
# The density rows in voice order: voice v plays above threshold - density of row v (a kit
# with more voices plays the rest at the threshold itself).
DENSITY: tuple[str, ...] = tuple(name for name, row in PARAMETERS.items()
                                 if row.address.startswith("/rvaed/density/"))
# The chance rows in voice order (a kit with more voices plays the rest always).
CHANCE: tuple[str, ...] = tuple(name for name, row in PARAMETERS.items()
                                if row.address.startswith("/rvaed/chance/"))
# The condition rows in voice order (a kit with more voices plays the rest always).
CONDITION: tuple[str, ...] = tuple(name for name, row in PARAMETERS.items()
                                   if row.address.startswith("/rvaed/condition/"))
# The note rows in voice order (a kit with more voices plays the rest on its drum machine's).
NOTE: tuple[str, ...] = tuple(name for name, row in PARAMETERS.items()
                              if row.address.startswith("/rvaed/note/"))
RANGES: dict[str, tuple[float, float]] = {
    name: (row.low, row.high) for name, row in PARAMETERS.items() if row.kind is float}
# Saved fields not restored field by field at start: the parameters not persisted, those of
# the clock (the daemon hands the saved transport to the clock itself) and the freezes (they
# hold hits of the last run).
NOT_RESTORED = frozenset({"freezes", *(name for name, row in PARAMETERS.items()
                                       if not row.persisted or row.invalidates == CLOCK)})
