"""From a pattern to the notes of one loop: where each hit sounds, how loud, on which note.

A hit on step s sounds at (s + swing delay + offset x timing / 2) / steps_per_beat beats after
the loop start. Microtiming can pull step 0 before the loop start: such a hit belongs to the end
of the previous loop iteration, so each event keeps its step and its `shift` from the step, and
the sequencer places it relative to the step it belongs to (its `beat` is wrapped into the loop
for display). Swing is MPC-style: 0.5 is straight, 0.75 puts the off-beat 16th three quarters of
the way through its 8th, MPC's most; past it, as the original device's shuffle, up to 1.0: a
whole step late, onto the next step. It delays the odd steps of each beat when a beat has an
even number of steps.

The grid is the grid: a learned groove often sits as a whole ahead of or behind the beat (the
starter's downbeat kicks 7.7 ms early at 120 BPM), which against other Link peers is a flam,
not a feel. So the pattern's overall offset is taken out before timing scales it: the
velocity-weighted mean offset of the hits on the beat (the quarter-note steps; all hits when
none falls on a beat). On-beat hits are what a listener hears as where the beat is, and the
loud ones most; off-beat 16ths keep their push or drag relative to them, so the feel stays.
It is computed before mutes, so muting a voice never moves the others. `push` (ms, the
parameter table's) then moves the whole groove ahead or behind on purpose, in time, not beats:
the sequencer turns it into beats at the tempo the step is queued at.

Whether a hit plays in a loop is decided as the sequencer queues its step (`Schedule.played`):
its condition (its step's, else its voice's; `rvaed.core.conditions`) must hold, then its
chance (a step's N%, else its voice's chance row) is rolled from the seed.
"""

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from rvaed.core.conditions import ALWAYS, BY_INDEX, Condition, parse
from rvaed.core.drummachine import Destination, DrumMachine
from rvaed.core.pattern import Grid, Pattern
from rvaed.core.state import DENSITY_REACH, FILL_BARS_MAX, PARAMETERS, PHRASE_MAX, SEED_MAX

TIMING_MAX = PARAMETERS["timing"].high  # the microtiming amount: 0 quantized .. 2 exaggerated
SPEEDS = (0.5, 1.0, 2.0, 4.0)  # the loop's playback speeds, as the original device's
VELOCITY = PARAMETERS["fixed_velocity"]
MAX_PULL_STEPS = 0.5 * TIMING_MAX  # the earliest a hit can sound before its step, in steps
MASK = (1 << 64) - 1


def roll(seed: int, loop: int, step: int, voice: int) -> float:
    """A number in [0, 1) that depends on its arguments alone (two rounds of splitmix64's
    mixer): the same seed rolls the same variation after a restart, on any machine."""
    return _mix(_mix(seed * 0x9E3779B97F4A7C15 ^ loop) ^ (step << 8 | voice) & MASK) / 2.0 ** 64


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def _finite(value: float, default: float, low: float, high: float) -> float:
    value = float(value)
    return default if not math.isfinite(value) else min(high, max(low, value))


@dataclass(frozen=True)
class Playback:
    """How a pattern is played; every value is made safe (non-finite -> default, clipped)."""

    threshold: float = 0.5       # onset probability above which a step is a hit
    timing: float = 1.0          # microtiming amount, 0 .. TIMING_MAX
    swing: float = 0.5           # 0.5 straight .. 0.75 MPC's most .. 1.0 a whole step late
    velocity_scale: float = 1.0  # 0 .. 2, applied to the pattern's velocities
    fixed_velocity: int | None = None  # when set, every hit plays at this velocity
    mutes: frozenset[int] = field(default_factory=frozenset)  # voice indices not played
    gate: float = 0.5            # note length in steps (drum machines mostly ignore it)
    push: float = 0.0            # ms ahead of the grid (negative: behind)
    density: tuple[float, ...] = ()  # per voice, taken off the threshold (positive = busier)
    chance: tuple[float, ...] = ()  # per voice, how likely each hit plays (voices beyond: 1)
    notes: tuple[int | None, ...] = ()  # per voice, a note in place of the drum machine's
    speed: float = 1.0           # x1/2, x1, x2, x4: the nearest of `SPEEDS`
    seed: int = 0                # what every chance rolls from
    phrase: int = 0              # bars a phrase lasts, its last bar a fill (0: no phrases)
    fill: float = 0.3            # the fill bar's thresholds are this much lower
    fills: bool = False          # make the fill bar's events (one may be played soon)
    fill_bars: int = 1           # bars a fill lasts
    conditions: tuple[int, ...] = ()  # per voice, an index into `CONDITIONS` (0: always)
    steps: tuple[tuple[int, int, str], ...] = ()  # (voice, step, condition) set on one step

    def __post_init__(self) -> None:
        for name, default, low, high in (*NUMBERS, ("gate", 0.5, 0.01, 16.0)):
            object.__setattr__(self, name, _finite(getattr(self, name), default, low, high))
        object.__setattr__(self, "density", tuple(
            _finite(offset, 0.0, -DENSITY_REACH, DENSITY_REACH) for offset in self.density))
        chances = tuple(_finite(chance, 1.0, 0.0, 1.0) for chance in self.chance)
        object.__setattr__(self, "chance", chances if any(c < 1.0 for c in chances) else ())
        conditions = tuple(max(0, min(len(BY_INDEX) - 1, int(c))) for c in self.conditions)
        object.__setattr__(self, "conditions", conditions if any(conditions) else ())
        object.__setattr__(self, "steps", tuple(self.steps))
        _trigs(self.steps)  # a wrong name is a ValueError here, not in the sequencer
        object.__setattr__(self, "seed", max(0, min(SEED_MAX, int(self.seed))))
        object.__setattr__(self, "speed", min(SPEEDS, key=lambda s: abs(math.log2(
            s / self.speed))))
        object.__setattr__(self, "phrase", max(0, min(PHRASE_MAX, int(self.phrase))))
        object.__setattr__(self, "fill_bars", max(1, min(FILL_BARS_MAX, int(self.fill_bars))))
        if self.fixed_velocity is not None:
            object.__setattr__(self, "fixed_velocity", max(VELOCITY.low, min(VELOCITY.high, int(
                self.fixed_velocity))))
        object.__setattr__(self, "mutes", frozenset(int(v) for v in self.mutes))
        notes = tuple(None if n is None else max(0, min(127, int(n))) for n in self.notes)
        object.__setattr__(self, "notes", notes if any(n is not None for n in notes) else ())

    def thresholds(self, voices: int) -> np.ndarray:
        """The onset probability above which each of ``voices`` plays: the threshold less the
        voice's density offset (voices without one: the threshold)."""
        offsets = np.zeros(voices)
        count = min(voices, len(self.density))
        offsets[:count] = self.density[:count]
        return np.clip(self.threshold - offsets, 0.0, 1.0)

    def busier(self) -> "Playback":
        """How a fill bar is played: every threshold `fill` lower, no phrases of its own."""
        return replace(self, threshold=self.threshold - self.fill, phrase=0, fills=False)

    def velocity(self, velocity: int) -> int:
        """The MIDI velocity to send for a hit of ``velocity`` (1-127, never 0 = note-off)."""
        return int(self.velocities(np.array([velocity]))[0])

    def velocities(self, velocities: np.ndarray) -> np.ndarray:
        """`velocity` for a whole array of hits (integers 1-127) at once."""
        if self.fixed_velocity is not None:
            return np.full_like(velocities, self.fixed_velocity)
        if self.velocity_scale == 1.0:
            return velocities
        return np.clip(np.rint(velocities * self.velocity_scale), 1, 127).astype(int)


# the numbers of a Playback that are parameters, clamped as the state clamps them:
# (name, default, low, high)
NUMBERS = tuple((f.name, PARAMETERS[f.name].default, PARAMETERS[f.name].low,
                 PARAMETERS[f.name].high) for f in fields(Playback)
                if f.name in PARAMETERS and PARAMETERS[f.name].kind is float)


class Event(NamedTuple):
    """One note-on: which step it belongs to, how far from that step it sounds, what it plays.

    A named tuple: a dense pattern makes a hundred of these on every control change.
    """

    beat: float      # position in the loop, in [0, loop beats)
    step: int        # the grid step it belongs to
    shift: float     # beats from the step's position (microtiming + swing; may be negative)
    voice: int
    velocity: int
    destination: Destination | None  # None: this drum machine has no such sound


@dataclass(frozen=True)
class Schedule:
    """The immutable note-ons of one loop in the order they sound from the loop start (a hit
    pulled before step 0 comes first), plus the note length in beats."""

    grid: Grid
    events: tuple[Event, ...]
    gate: float  # beats
    push: float = 0.0  # seconds every event sounds ahead of its place (negative: behind)
    chances: tuple[float, ...] = ()  # per voice (empty: every hit plays), see `rolled`
    seed: int = 0
    phrase: int = 0  # steps a phrase lasts (0: no phrases), its last bar played from `fill`
    fill: "Schedule | None" = None  # the same loop, busier: the fill bar's events come from it
    fill_steps: int = 16  # steps a fill lasts (its bars)
    notes: tuple[int | None, ...] = ()  # per voice, a note every output plays in place of its
    # drum machine's (the events' destinations carry it already, for the page)
    speed: float = 1.0  # the loop played at this speed (the sequencer switches on a loop line)
    conditions: tuple[Condition, ...] = ()  # per voice (empty: always; voices beyond: always)
    trigs: Mapping[tuple[int, int], Condition] = field(
        default_factory=lambda: MappingProxyType({}))  # (voice, step): its step's condition

    @classmethod
    def empty(cls, grid: Grid) -> "Schedule":
        return cls(grid, (), Playback().gate / grid.steps_per_beat,
                   fill_steps=grid.steps_per_bar)

    @property
    def loop_beats(self) -> float:
        return float(self.grid.beats)

    def in_fill(self, step: int) -> bool:
        """Whether step number ``step`` from the start of play is in a phrase's fill bar."""
        return bool(self.phrase) and step % self.phrase >= self.phrase - self.fill_steps

    def played(self, events: tuple[Event, ...], loop: int, filling: bool = False,
               decided: dict[int, bool] | None = None) -> tuple[Event, ...]:
        """Those of ``events`` (a step's, or a loop's) that play in loop number ``loop``
        (counted from the start of play), in a fill bar or not: each whose condition holds and
        whose chance, by `roll`, comes up; all of them when nothing is conditional.
        ``decided``: per voice, how its last decided hit went (what ``pre`` and ``nei``
        follow), updated here; hits are decided step by step in kit order, so ``nei`` hears
        its neighbour's hit on the same step."""
        if not (self.chances or self.conditions or self.trigs):
            return events
        decided = {} if decided is None else decided
        plays = {(e.step, e.voice): self._plays(e, loop, filling, decided)
                 for e in sorted(events, key=attrgetter("step", "voice"))}
        return tuple(e for e in events if plays[e.step, e.voice])

    def _plays(self, event: Event, loop: int, filling: bool, decided: dict[int, bool]) -> bool:
        voice = event.voice
        condition = self.trigs.get((voice, event.step)) or (
            self.conditions[voice] if voice < len(self.conditions) else ALWAYS)
        chance = condition.chance if condition.test == "chance" else (
            self.chances[voice] if voice < len(self.chances) else 1.0)
        result = condition.holds(loop, filling, decided.get(voice, False),
                                 decided.get(voice - 1, False))
        if result and chance < 1.0:
            result = roll(self.seed, loop, event.step, voice) < chance
        if condition.decides or (condition.test == "always" and chance < 1.0):
            decided[voice] = result
        return result


def swing_delay(steps, grid: Grid, swing: float):
    """How many steps ``swing`` delays each of ``steps`` (an int or an array): the odd steps
    of a beat, when a beat has an even number of steps."""
    if swing == 0.5:
        return 0.0
    return _swung_steps(grid)[np.asarray(steps) % grid.steps] * (2.0 * (swing - 0.5))


@functools.lru_cache(maxsize=8)
def _swung_steps(grid: Grid) -> np.ndarray:
    """1.0 for each step of the loop that swing delays, else 0.0."""
    steps = np.arange(grid.steps)
    odd = (steps % grid.steps_per_beat % 2 == 1) & (grid.steps_per_beat % 2 == 0)
    return odd.astype(float)


def build_schedule(pattern: Pattern, grid: Grid, playback: Playback,
                   drum_machine: DrumMachine, fill_pattern: Pattern | None = None) -> Schedule:
    """The pattern's hits above their voice's threshold, unmuted, timed, on the drum machine's
    notes; with `fills`, the fill bar's from ``fill_pattern`` (default: the same pattern) at
    thresholds `fill` lower (a
    dense fill costs several times the loop's build: the performance asks for it only when
    a fill bar is near).

    Computed on whole arrays with as few numpy calls as it takes: this runs on every control
    change, within the 1 ms budget from a fader move to the sequencer playing the new pattern.
    """
    schedule = replace(_build(pattern, grid, playback, drum_machine),
                       phrase=playback.phrase * grid.steps_per_bar,
                       fill_steps=min(playback.fill_bars, playback.phrase or FILL_BARS_MAX)
                       * grid.steps_per_bar)
    if not playback.fills or not playback.fill:
        return schedule  # a fill bar without its events plays the loop's (fill conditions hold)
    return replace(schedule, fill=_build(fill_pattern or pattern, grid, playback.busier(),
                                         drum_machine))


def _build(pattern: Pattern, grid: Grid, playback: Playback,
           drum_machine: DrumMachine) -> Schedule:
    if pattern.steps != grid.steps:
        raise ValueError(f"pattern has {pattern.steps} steps, the grid {grid.steps}")
    if pattern.voices != drum_machine.kit.size:
        raise ValueError(f"pattern has {pattern.voices} voices, the drum machine's kit "
                         f"{drum_machine.kit.size}")
    voices, steps, velocities, offsets = pattern.hit_arrays(
        playback.thresholds(pattern.voices))
    offsets = np.clip(offsets - groove_center(steps, velocities, offsets, grid), -1.0, 1.0)
    if playback.mutes:
        keep = ~np.isin(voices, list(playback.mutes))
        voices, steps, velocities, offsets = (a[keep] for a in (voices, steps, velocities,
                                                                 offsets))
    spb = grid.steps_per_beat
    shifts = (offsets * (0.5 * playback.timing) + swing_delay(steps, grid, playback.swing)) / spb
    shifts[np.abs(shifts) < 1e-12] = 0.0  # a pull of 1e-300 beats would wrap to the loop's end
    times = steps / spb + shifts  # from the loop start; negative for step 0 pulled early
    order = np.lexsort((voices, times))
    voices = voices[order].tolist()
    destinations = _renoted(drum_machine.destinations, playback.notes)
    columns = zip((times[order] % grid.beats).tolist(), steps[order].tolist(),
                  shifts[order].tolist(), voices, playback.velocities(velocities[order]).tolist(),
                  [destinations[v] for v in voices], strict=True)
    events = tuple(map(tuple.__new__, itertools.repeat(Event), columns))  # 2x Event(*row)
    return Schedule(grid, events, playback.gate / grid.steps_per_beat, playback.push / 1000.0,
                    playback.chance, playback.seed, notes=playback.notes, speed=playback.speed,
                    conditions=tuple(BY_INDEX[c] for c in playback.conditions),
                    trigs=_trigs(playback.steps))


@functools.lru_cache(maxsize=16)
def _trigs(steps: tuple[tuple[int, int, str], ...]) -> Mapping[tuple[int, int], Condition]:
    """The conditions set on single steps, by (voice, step), parsed once per setting (an
    "always" is its voice's condition again, as the state takes it)."""
    parsed = {(voice, step): parse(name, "steps") for voice, step, name in steps}
    return MappingProxyType({at: c for at, c in parsed.items() if c is not ALWAYS})


def _renoted(destinations: tuple[Destination | None, ...],
             notes: tuple[int | None, ...]) -> tuple[Destination | None, ...]:
    """The drum machine's destinations with the notes played live in place of theirs (a voice
    the machine leaves silent stays silent)."""
    if not notes:
        return destinations
    played = notes + (None,) * (len(destinations) - len(notes))
    return tuple(d if d is None or n is None else replace(d, note=n)
                 for d, n in zip(destinations, played, strict=False))


def groove_center(steps: np.ndarray, velocities: np.ndarray, offsets: np.ndarray,
                  grid: Grid) -> float:
    """The pattern's overall offset: the velocity-weighted mean offset of its on-beat hits
    (of all hits when none is on a beat; 0 without hits)."""
    on_beat = steps % grid.steps_per_beat == 0
    chosen = on_beat if on_beat.any() else np.ones_like(on_beat)
    if not chosen.any():
        return 0.0
    return float(np.average(offsets[chosen], weights=velocities[chosen]))
