"""What a performance parameter is: one row of the table in `rvaed.core.state.PerformanceState`.

A parameter is a single value the performer sets (x, threshold, tempo ...). Its row says
everything the rest of rvaed needs to know about it, so that validation, the OSC setter and its
feedback, controller-map targets, persistence and the README's OSC table are all derived from
the one row: its type (the field's annotation), range, default, what a change invalidates, its
OSC address, the wire value that means "off" (fixed_velocity 0 = off, None in the state),
whether it is restored at start, a one-line doc, and for a row that picks one of a list (a
voice's condition) the names of its choices, which stand for their index wherever a value is
taken.
"""

import math
from dataclasses import Field, dataclass, field, replace
from numbers import Real
from typing import Any, get_args

DECODE = "decode"  # a change needs a new decode (a new pattern)
SCHEDULE = "schedule"  # a change needs only a new schedule of the same pattern
CLOCK = "clock"  # the value belongs to the clock (Link's, when Link is on)


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


def boolean(value: object, name: str) -> bool:
    """A switch: a bool as it is, a number as on from 0.5 up."""
    if isinstance(value, bool):
        return value
    return number(value, name) >= 0.5


@dataclass(frozen=True)
class Parameter:
    """One row of the parameter table; `name` and `kind` come from the state's field."""

    default: Any
    low: float
    high: float
    invalidates: str  # DECODE, SCHEDULE or CLOCK
    address: str  # the OSC address that sets it and carries its feedback
    doc: str  # what it does, in one line (the README's OSC table shows it)
    off: float | None = None  # the wire value meaning "off" (None in the state)
    persisted: bool = True  # restored from the state file at start
    choices: tuple[str, ...] = ()  # an int row's values by name (index 0 = choices[0])
    name: str = ""
    kind: type = float  # float, int or bool

    def valid(self, value: object) -> Any:
        """``value`` as the state holds it: clamped into the range, or a `ValueError`."""
        if self.kind is bool:
            return boolean(value, self.name)
        if value is None and self.off is not None:
            return None
        if self.choices and isinstance(value, str):
            return self.choice(value)
        result = min(self.high, max(self.low, number(value, self.name)))
        return round(result) if self.kind is int else result

    def choice(self, name: str) -> int:
        """The index of the choice named ``name`` (case and spacing aside), or ValueError."""
        wanted = " ".join(name.lower().split())
        if wanted not in self.choices:
            raise ValueError(f"{self.name}: expected one of {', '.join(self.choices)}, got "
                             f"{name!r:.40}")
        return self.choices.index(wanted)

    def inward(self, value: float) -> Any:
        """A number from a control or a message as the state takes it (below range = off)."""
        return None if self.off is not None and value < self.low else value

    def outward(self, value: Any) -> float | int:
        """The state's value as a control or a feedback message shows it (off as ``off``)."""
        if value is None:
            return self.off if self.off is not None else 0
        return int(value) if self.kind in (bool, int) else float(value)

    @property
    def span(self) -> tuple[float, float]:
        """The range a control sweeps: off included (a fader down to 0 turns it off)."""
        low = self.low if self.off is None else min(self.off, self.low)
        return (float(low), float(self.high))

    @property
    def arguments(self) -> str:
        """Its OSC argument, as documented."""
        if self.kind is bool:
            return "0 or 1"
        if self.choices:
            return f"NAME or its number 0..{self.high:g}"
        off = f", {self.off:g} = off" if self.off is not None else ""
        return f"v ({self.low:g}..{self.high:g}{off})"


def parameter(default: object, low: float, high: float, invalidates: str, address: str,
              doc: str, *, off: float | None = None, persisted: bool = True,
              choices: tuple[str, ...] = ()) -> Any:
    """A state field that is a parameter: its default, with the row in the field's metadata."""
    row = Parameter(default, low, high, invalidates, address, doc, off, persisted, choices)
    return field(default=default, metadata={"parameter": row})


def rows(fields: tuple[Field, ...]) -> dict[str, Parameter]:
    """The parameters among a dataclass's ``fields``, by name, in table order."""
    found = {}
    for item in fields:
        row = item.metadata.get("parameter")
        if row is not None:
            kind = next(t for t in (get_args(item.type) or (item.type,)) if t is not type(None))
            found[item.name] = replace(row, name=item.name, kind=kind)
    return found
