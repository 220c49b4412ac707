"""The phone layouts that ship in controllers/: one description, two apps, never out of date.

`pages` describes the layout from the parameter table (`rvaed.core.state.PARAMETERS`: a fader
per number, a switch per switch, with the table's range), the default kit and grid (a row of
the pattern grid, a mute, a freeze, a density and a chance fader per voice), the presets, and
the route registry (`rvaed.daemon.routes.ROUTES`): every address a control sends is checked
against it, so a renamed route fails the generation instead of a gig. `rvaed.daemon.touchosc`
renders it as a TouchOSC layout (.tosc), `rvaed.daemon.openstage` as an Open Stage Control
session (JSON), and `rvaed.daemon.layoutfiles` writes both into controllers/.

The layouts speak rvaed's own addresses and subscribe themselves when they open (the handshake
of `rvaed.control.osc`: /rvaed/subscribe, then every /rvaed/hello NONCE echoed to
/rvaed/subscribe/confirm), so what moves the performance elsewhere (a preset glide,
automation, another phone, a MIDI controller) moves their controls too.
"""

from dataclasses import dataclass

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.parameters import Parameter
from rvaed.core.pattern import Grid
from rvaed.core.state import CHANCE, DENSITY, NOTE, PARAMETERS, PRESETS, TRANSITION_UNITS
from rvaed.daemon import routes

SUBSCRIBE, HELLO, CONFIRM = "/rvaed/subscribe", "/rvaed/hello", "/rvaed/subscribe/confirm"
RESUBSCRIBE_SECONDS = 30  # a layout subscribes again this often (the daemon may have restarted)
ON_THE_PAD = ("x", "y")  # these move together on the XY pad (/rvaed/xy)
# Where a fader's travel is narrower than the table's range, to be playable on a phone
# (the table's 20..999 BPM is Link's range; a fader over it moves ~8 BPM a millimetre).
REACH = {"tempo": (60.0, 200.0)}
GLIDE_BARS = 8.0  # the preset glide fader's travel, in bars (the state takes up to 64)
# Feedback the layouts show that no input route carries (rvaed.control.osc's feedback table).
FEEDBACK = ("/rvaed/pattern/", "/rvaed/training", "/rvaed/peers")


@dataclass(frozen=True)
class Control:
    """One control of a page. ``box`` is x, y, width, height in percent of the page.

    kind: "xy" (sends two values), "fader", "toggle" (1/0), "tap" (sends ``press`` when
    touched), "cells" (``count`` lights, shows a list), "text" or "meter" (show one value).
    It sends ``address`` with ``before`` + its value(s) in ``low``..``high`` + ``after``
    (nothing when ``address`` is empty), and shows argument ``shows`` (0-based) of the
    feedback at ``listens`` whose arguments around it equal ``before`` and ``after``
    (``listens`` empty: shows nothing).
    """

    kind: str
    name: str
    label: str
    box: tuple[float, float, float, float]
    address: str = ""
    listens: str = ""
    low: float = 0.0
    high: float = 1.0
    before: tuple[int, ...] = ()
    after: tuple[str, ...] = ()
    press: float = 1.0
    shows: int = 0
    count: int = 0


@dataclass(frozen=True)
class Page:
    name: str
    controls: tuple[Control, ...]


def pages() -> list[Page]:
    """The layout: Play (pad, transport, presets, model), Sound (a fader per parameter), Voices
    (the pattern grid with a mute, a freeze, a density and a chance fader per voice); checked
    against the routes."""
    layout = [Page("Play", _play()), Page("Sound", _sound()), Page("Voices", _voices())]
    check(layout)
    return layout


def _play() -> tuple[Control, ...]:
    x, y = PARAMETERS["x"], PARAMETERS["y"]
    switches = [row for row in PARAMETERS.values() if row.kind is bool]
    width = 36 / len(switches)
    return (
        Control("xy", "pad", "x / y", (0, 0, 62, 100), "/rvaed/xy", "/rvaed/xy",
                min(x.low, y.low), max(x.high, y.high)),
        *(Control("toggle", row.name, row.name, (64 + i * width, 0, width - 1, 14),
                  row.address, row.address) for i, row in enumerate(switches)),
        *_presets(),
        Control("text", "model", "model", (64, 74, 36, 7), listens="/rvaed/model"),
        Control("meter", "training", "training", (64, 83, 36, 7), listens="/rvaed/training"),
        Control("text", "training_status", "status", (64, 91, 26, 9),
                listens="/rvaed/training", shows=1),
        Control("text", "peers", "Link peers", (91, 91, 9, 9), listens="/rvaed/peers"),
    )


def _presets() -> list[Control]:
    """Recall 1-8 in two rows of big pads, store 1-8 in a row of small ones below, the glide
    and FILL (a fill in the next bar)."""
    columns = PRESETS // 2
    width = 36 / columns
    recall = [Control("tap", f"recall{n}", f"preset {n}",
                      (64 + (n - 1) % columns * width, 16 + (n - 1) // columns * 20,
                       width - 1, 19), "/rvaed/preset/recall", press=n)
              for n in range(1, PRESETS + 1)]
    width = 36 / PRESETS
    store = [Control("tap", f"store{n}", f"store {n}", (64 + (n - 1) * width, 57, width - 1, 9),
                     "/rvaed/preset/store", press=n) for n in range(1, PRESETS + 1)]
    glide = Control("fader", "glide", "glide (bars)", (64, 67, 26, 6), "/rvaed/transition",
                    "/rvaed/transition", 0.0, min(GLIDE_BARS, TRANSITION_UNITS["bars"]),
                    after=("bars",))
    fill = Control("tap", "fill", "FILL", (91, 67, 9, 6), "/rvaed/fill/now")
    return [*recall, *store, glide, fill]


def _sound() -> tuple[Control, ...]:
    # a voice's condition picks one of 44 names: a fader cannot show which (the web page's
    # lists do); the per-voice rows have the voice pages
    rows = [row for row in PARAMETERS.values()
            if row.kind is not bool and not row.choices
            and row.name not in (*ON_THE_PAD, *DENSITY, *CHANCE, *NOTE)]
    width = 100 / len(rows)
    return tuple(
        Control("fader", row.name, _label(row), (i * width, 10, width - 2, 90), row.address,
                row.address, *_reach(row))
        for i, row in enumerate(rows))


def _label(row: Parameter) -> str:
    off = "" if row.off is None else f", {row.off:g} = off"
    return f"{row.name.replace('_', ' ')} ({row.low:g}..{row.high:g}{off})"


def _reach(row: Parameter) -> tuple[float, float]:
    low, high = row.span
    reach_low, reach_high = REACH.get(row.name, (low, high))
    return max(low, reach_low), min(high, reach_high)


def _voices() -> tuple[Control, ...]:
    names, steps = load_kit().names, Grid().steps
    height = 100 / len(names)
    controls: list[Control] = []
    for v, name in enumerate(names):
        top = v * height
        density, chance = PARAMETERS[DENSITY[v]], PARAMETERS[CHANCE[v]]
        controls += [
            Control("toggle", f"mute{v + 1}", f"mute {name}", (0, top, 9, height - 1),
                    "/rvaed/mute", "/rvaed/mute", before=(v + 1,), shows=1),
            Control("toggle", f"freeze{v + 1}", f"freeze {name}", (10, top, 9, height - 1),
                    "/rvaed/freeze", "/rvaed/freeze", before=(v + 1,), shows=1),
            Control("fader", density.name, f"density {name}", (20, top, 7, height - 1),
                    density.address, density.address, *_reach(density)),
            Control("fader", chance.name, f"chance {name}", (27.5, top, 7, height - 1),
                    chance.address, chance.address, *_reach(chance)),
            Control("cells", f"pattern{v + 1}", name, (35, top, 65, height - 1),
                    listens=f"/rvaed/pattern/{v + 1}", count=steps),
        ]
    return tuple(controls)


def check(layout: list[Page]) -> None:
    """Every address a control sends is a route, every one it shows is fed back; else a
    one-line error naming the control."""
    known = {route.address for route in routes.ROUTES}
    if SUBSCRIBE not in known:
        raise RvaedError(f"layouts: they subscribe with {SUBSCRIBE}, which is not an OSC route")
    # CONFIRM is not checked: a daemon without the handshake subscribes on SUBSCRIBE alone,
    # sends no hello and so is never sent a confirm
    for page in layout:
        for control in page.controls:
            _check(f"{page.name}/{control.name}", control, known)


def _check(where: str, control: Control, known: set[str]) -> None:
    if control.address and control.address not in known:
        raise RvaedError(f"layout {where}: {control.address} is not an OSC route "
                         "(rvaed.daemon.routes.ROUTES)")
    if control.listens and not (control.listens in known
                                or control.listens.startswith(FEEDBACK)):
        raise RvaedError(f"layout {where}: {control.listens} is not OSC feedback")
