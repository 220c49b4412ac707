"""The pattern: one loop of drums as three voices x steps matrices, and the hits it plays.

This is the shape of the RhythmVAE model's data:
- onsets: 1 where a voice hits on a step (or the model's probability of a hit);
- velocities: MIDI velocity / 127;
- offsets: microtiming in [-1, 1), the distance from the step in units of half a step
  (-1.0 is a 32nd note early when steps are 16ths).

A Pattern is immutable and always safe to play: non-finite values are cleared and every
value is clipped to its range when the pattern is made.
"""

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

ONSETS, VELOCITIES, OFFSETS = 0, 1, 2
PLANES = ("onsets", "velocities", "offsets")  # in the model's layout order
OFFSET_MAX = 1.0 - 1e-6  # offsets live in [-1, 1): +1 would be the next step's -1
MAX_BARS = 64  # the longest loop rvaed records or captures (automation, capture)


@dataclass(frozen=True)
class Grid:
    """How a loop is divided: default 2 bars of 4/4 in 16ths = 32 steps.

    A beat is a quarter note, as Link's and MIDI clock's beats are, in every meter:
    ``steps_per_beat`` 4 is 16ths, 3 eighth-note triplets, 6 sixteenth triplets, 12 the
    original device's 96 steps over two bars of 4/4. A 6/8 bar is 3 beats (12 steps in 16ths),
    a 7/8 bar 3.5 (14 steps); a meter whose bar is not a whole number of steps is refused.
    """

    steps_per_beat: int = 4
    numerator: int = 4
    denominator: int = 4
    bars: int = 2

    def __post_init__(self) -> None:
        for field in ("steps_per_beat", "numerator", "denominator", "bars"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"grid {field}: expected a positive integer, got {value!r}")
        if self.denominator not in DENOMINATORS:
            raise ValueError(f"grid meter {self.meter}: expected a denominator of "
                             f"{', '.join(map(str, DENOMINATORS))}")
        if self.steps_per_beat * self.numerator * 4 % self.denominator:
            raise ValueError(f"grid meter {self.meter}: a bar is not a whole number of steps "
                             f"at {self.steps_per_beat} steps per beat")

    @classmethod
    def from_dict(cls, data: dict) -> "Grid":
        """A manifest's grid; one written before meters were more than n/4 says beats_per_bar."""
        data = dict(data)
        meter = data.pop("meter", None)
        if meter is not None:
            data["numerator"], data["denominator"] = parse_meter(meter)
        elif "beats_per_bar" in data:
            data["numerator"] = data.pop("beats_per_bar")
        return cls(**data)

    @property
    def meter(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def beats_per_bar(self) -> float:
        """Quarter-note beats in one bar: 4 in 4/4, 3 in 6/8, 3.5 in 7/8."""
        return self.numerator * 4 / self.denominator

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.numerator * 4 // self.denominator

    @property
    def steps(self) -> int:
        return self.steps_per_bar * self.bars

    @property
    def beats(self) -> float:
        return self.beats_per_bar * self.bars

    def holds(self, numerator: int, denominator: int) -> bool:
        """True when a bar of numerator/denominator is one of this grid's bars: the same meter,
        or n/2 read as 2n/4 (cut time holds exactly a 4/4 bar)."""
        return simple_meter(numerator, denominator) == simple_meter(self.numerator,
                                                                    self.denominator)

    def to_dict(self) -> dict:
        return {"steps_per_beat": self.steps_per_beat, "meter": self.meter, "bars": self.bars}


DENOMINATORS = (1, 2, 4, 8, 16, 32)


def parse_meter(text: object) -> tuple[int, int]:
    """"6/8" -> (6, 8); ValueError naming what was expected."""
    numerator, slash, denominator = str(text).strip().partition("/")
    if not (slash and numerator.isdigit() and denominator.isdigit()):
        raise ValueError(f"meter {text!r}: expected a time signature such as 4/4, 6/8 or 7/8")
    return int(numerator), int(denominator)


def simple_meter(numerator: int, denominator: int) -> str:
    """The meter's name with n/2 read as 2n/4: "2/2" -> "4/4", "6/8" -> "6/8"."""
    if denominator == 2:
        numerator, denominator = numerator * 2, 4
    return f"{numerator}/{denominator}"


@functools.lru_cache(maxsize=8)
def _bounds(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's lowest and highest value for a (3, voices, steps) array: same-shape operands
    make numpy's minimum/maximum several times faster than broadcast ones."""
    low = np.empty(shape, dtype=np.float32)
    high = np.empty(shape, dtype=np.float32)
    low[ONSETS], low[VELOCITIES], low[OFFSETS] = 0.0, 0.0, -1.0
    high[ONSETS], high[VELOCITIES], high[OFFSETS] = 1.0, 1.0, OFFSET_MAX
    return low, high


def _safe(array: np.ndarray) -> np.ndarray:
    """A read-only float32 copy of a (3, voices, steps) array: each plane clipped to its range
    (which also takes care of +-inf) and NaN -> 0.

    A few numpy calls on the whole array: this runs on every decode, on the path from a fader
    move to the new pattern playing.
    """
    values = np.array(array, dtype=np.float32)
    low, high = _bounds(values.shape)
    np.maximum(values, low, out=values)
    np.minimum(values, high, out=values)
    total = values.sum()
    if total != total:  # NaN survives clipping and poisons the sum; inf cannot, it was clipped
        values[np.isnan(values)] = 0.0
    values.setflags(write=False)
    return values


class Hit(NamedTuple):
    """One note to play: a voice on a step, with MIDI velocity and microtiming offset.

    A named tuple rather than a dataclass: a dense pattern makes a hundred of these on every
    control change, and tuples are several times cheaper to create.
    """

    voice: int
    step: int
    velocity: int
    offset: float

    def beat(self, grid: Grid, timing: float = 1.0) -> float:
        """Position in beats from the loop start; ``timing`` scales the microtiming."""
        return (self.step + 0.5 * self.offset * timing) / grid.steps_per_beat


@dataclass(frozen=True, eq=False)
class Pattern:
    """Three float32 matrices of shape (voices, steps), sanitized on creation."""

    onsets: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        shape = np.shape(self.onsets)
        if len(shape) != 2 or np.shape(self.velocities) != shape or np.shape(self.offsets) != shape:
            raise ValueError(
                "pattern: expected three matrices of one shape (voices, steps), got "
                f"{np.shape(self.onsets)}, {np.shape(self.velocities)}, {np.shape(self.offsets)}"
            )
        self._set_planes(_safe(np.stack([self.onsets, self.velocities, self.offsets])))

    def _set_planes(self, values: np.ndarray) -> None:
        for plane, name in enumerate(PLANES):
            object.__setattr__(self, name, values[plane])

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Pattern":
        """From the model's layout: an array of shape (3, voices, steps)."""
        array = np.asarray(array)
        if array.ndim != 3 or array.shape[0] != 3:
            raise ValueError(f"pattern: expected shape (3, voices, steps), got {array.shape}")
        pattern = cls.__new__(cls)  # skips __init__: one sanitizing pass, not a stack and two
        pattern._set_planes(_safe(array))
        return pattern

    @classmethod
    def empty(cls, voices: int, steps: int) -> "Pattern":
        zeros = np.zeros((voices, steps), dtype=np.float32)
        return cls(zeros, zeros, zeros)

    @classmethod
    def from_hits(cls, hits: "list[Hit] | tuple[Hit, ...]", voices: int, steps: int) -> "Pattern":
        """Build a binary pattern; of two hits in one cell the louder wins."""
        array = np.zeros((3, voices, steps), dtype=np.float32)
        for hit in hits:
            cell = array[:, hit.voice, hit.step]
            velocity = hit.velocity / 127.0
            if not cell[ONSETS] or cell[VELOCITIES] < velocity:
                cell[:] = (1.0, velocity, hit.offset)
        return cls.from_array(array)

    @property
    def voices(self) -> int:
        return self.onsets.shape[0]

    @property
    def steps(self) -> int:
        return self.onsets.shape[1]

    def to_array(self) -> np.ndarray:
        """The model's layout: shape (3, voices, steps), float32."""
        return np.stack([self.onsets, self.velocities, self.offsets])

    def count(self, threshold: float | np.ndarray = 0.5) -> int:
        """How many cells are hits above ``threshold`` (one, or one per voice)."""
        limits = np.asarray(threshold)
        return int(np.count_nonzero(self.onsets > (limits[:, None] if limits.ndim else limits)))

    def hit_arrays(self, threshold: float | np.ndarray = 0.5) -> tuple[np.ndarray, ...]:
        """The playable hits as four arrays, step by step (voices in order within a step):
        voices, steps, velocities, offsets. ``threshold``: one for all voices, or one per voice.

        This is the fast path for the schedule, which works on whole arrays; velocity is at
        least 1 because a note-on of velocity 0 would be a note-off.
        """
        steps, voices = np.nonzero(np.greater(self.onsets.T, threshold))
        velocities = np.maximum(np.rint(self.velocities[voices, steps] * 127), 1).astype(int)
        offsets = self.offsets[voices, steps].astype(float)
        return voices, steps, velocities, offsets

    def hits(self, threshold: float | np.ndarray = 0.5) -> tuple[Hit, ...]:
        """The cells whose onset exceeds ``threshold`` (one, or one per voice), in time order,
        as playable hits."""
        voices, steps, velocities, offsets = self.hit_arrays(threshold)
        order = np.lexsort((voices, steps + 0.5 * offsets))
        columns = (array[order].tolist() for array in (voices, steps, velocities, offsets))
        return tuple(map(Hit, *columns))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pattern):
            return NotImplemented
        return bool(np.array_equal(self.to_array(), other.to_array()))

    __hash__ = None  # type: ignore[assignment]
