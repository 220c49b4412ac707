"""Conditional hits in the Elektron sense: whether a hit plays in a given loop.

A condition is set per voice (a row of the parameter table, an index into `CONDITIONS`) and
per voice x step (the state's `steps`, set from OSC and the web grid), the step's in place of
its voice's. It is written as a player says it:
- ``always`` (the default), ``N%`` (per step: the hit plays with that chance, in place of its
  voice's chance row);
- ``A:B``: plays on loop A of every B (``1:4`` the first of four), loops counted from the
  start of play, B from 2 to 8;
- ``1st``: only the first loop after play starts;
- ``fill``: only in a fill bar (a phrase's last bar, or a FILL asked for);
- ``pre``: as the voice's most recently decided hit went (a hit is decided by any condition
  but ``pre``/``nei``, or by a chance below 1; nothing decided yet counts as not played);
- ``nei``: as the neighbour's most recent decided hit went (the voice before it in the kit,
  whose hits on the same step are decided first; the first voice has no neighbour).
Each but ``always`` and ``N%`` has its opposite, ``not fill`` (or ``!fill``) and so on.
"""

import re
from typing import NamedTuple

TESTS = ("fill", "pre", "nei", "1st")
AB_MAX = 8  # loops a condition counts, as Elektron's 1:2 .. 8:8
# The conditions a voice's row chooses from, by index (0: always).
CONDITIONS: tuple[str, ...] = ("always", *(f"{no}{test}" for test in TESTS
                                           for no in ("", "not ")),
                               *(f"{a}:{b}" for b in range(2, AB_MAX + 1)
                                 for a in range(1, b + 1)))


class Condition(NamedTuple):
    """One condition, parsed: its test ("always", "chance", "ab" or one of `TESTS`)."""

    name: str  # as written back (its normal form: "not fill", "1:4", "25%")
    test: str
    negate: bool = False
    a: int = 0
    b: int = 0
    chance: float = 1.0

    @property
    def decides(self) -> bool:
        """Whether its outcome is what a later ``pre`` or ``nei`` follows."""
        return self.test not in ("always", "pre", "nei")

    def holds(self, loop: int, filling: bool, own: bool, neighbour: bool) -> bool:
        """Whether it lets the hit play in loop ``loop`` (from the start of play); ``own``
        and ``neighbour``: how the voice's and its neighbour's last decided hits went. A
        chance is rolled by the caller."""
        test = self.test
        if test == "ab":
            result = loop % self.b == self.a - 1
        elif test == "fill":
            result = filling
        elif test == "1st":
            result = loop == 0
        elif test == "pre":
            result = own
        elif test == "nei":
            result = neighbour
        else:
            result = True
        return result != self.negate


ALWAYS = Condition("always", "always")
_AB = re.compile(r"(\d+):(\d+)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def parse(text: object, where: str = "condition") -> Condition:
    """The condition ``text`` names, or a `ValueError` naming ``where`` and what is expected."""
    words = " ".join(text.lower().split()) if isinstance(text, str) else ""
    negate = words.startswith(("not ", "!"))
    core = words.removeprefix("not ").removeprefix("!").strip()
    if core == "always" and not negate:
        return ALWAYS
    if core in TESTS:
        return Condition(f"{'not ' if negate else ''}{core}", core, negate)
    if (ab := _AB.fullmatch(core)) and not negate:
        a, b = int(ab[1]), int(ab[2])
        if 2 <= b <= AB_MAX and 1 <= a <= b:
            return Condition(f"{a}:{b}", "ab", a=a, b=b)
    if (percent := _PERCENT.fullmatch(core)) and not negate and 0 <= float(percent[1]) <= 100:
        return Condition(f"{float(percent[1]):g}%", "chance", chance=float(percent[1]) / 100)
    raise ValueError(f"{where}: expected always, N% (0-100), A:B (B 2-{AB_MAX}, A 1-B), or "
                     f"{', '.join(TESTS)} (each also as 'not ...'), got {text!r:.40}")


BY_INDEX: tuple[Condition, ...] = tuple(parse(name) for name in CONDITIONS)
