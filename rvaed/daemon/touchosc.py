"""The layout as a TouchOSC document (.tosc): zlib-compressed XML, as TouchOSC's editor saves it.

The XML is what the editor writes (a ``lexml`` root of ``node`` elements with their
properties, values, OSC messages and children; see `rvaed.daemon.layouts` for what is on each
page). A fader, the XY pad and a switch send and receive their own OSC message (TouchOSC
scales the value between the message's range and the control both ways). What TouchOSC cannot
match by address alone (a voice's mute among nine on /rvaed/mute, the pattern rows, texts,
the training bar, the glide in bars) and the subscription are done by the document's root
script, generated here from the same description. Node IDs are derived from the control names,
so the same description gives the same bytes.
"""

import uuid
import zlib
from collections.abc import Iterable

from rvaed.daemon import layouts

WIDTH, HEIGHT, TABBAR = 1280, 800, 48  # document and tab bar size (TouchOSC scales to fit)
COLORS = {"Play": (0.2, 0.6, 1.0), "Sound": (1.0, 0.6, 0.1), "Voices": (0.4, 0.9, 0.4)}
NORTH, EAST = 0, 1  # TouchOSC's Orientation: the direction a fader's value grows
NATIVE = ("xy", "fader", "toggle")  # kinds that receive their own message (when unqualified)
ID_SPACE = uuid.UUID("5f0e0c3c-9a1d-4c47-9a63-7276616564a1")


def render(pages: list["layouts.Page"]) -> bytes:
    """The compressed .tosc document for ``pages``."""
    height = HEIGHT - TABBAR
    children = [_page(page, height) for page in pages]
    pager = _node("PAGER", "pages", (0, 0, WIDTH, HEIGHT), (0.1, 0.1, 0.1),
                  [_int("tabbarSize", TABBAR), _bool("tabLabels", True)],
                  [_value("page", 0)], children=children)
    root = _node("GROUP", "root", (0, 0, WIDTH, HEIGHT), (0, 0, 0),
                 [_string("script", script(pages))], [], children=[pager])
    xml = f"<?xml version='1.0' encoding='UTF-8'?>\n<lexml version='3'>{root}</lexml>\n"
    return zlib.compress(xml.encode(), 9)


def _page(page: "layouts.Page", height: int) -> str:
    color = COLORS.get(page.name, (0.8, 0.8, 0.8))
    nodes: list[str] = []
    for control in page.controls:
        frame = _frame(control.box, WIDTH, height)
        nodes += [_control(control, frame, color), *_caption(control, frame)]
    return _node("GROUP", page.name.lower(), (0, TABBAR, WIDTH, height), (0.05, 0.05, 0.05),
                 [_string("tabLabel", page.name)], [], children=nodes)


def _frame(box: tuple[float, ...], width: int, height: int) -> tuple[int, ...]:
    x, y, w, h = box
    return (round(x * width / 100), round(y * height / 100), round(w * width / 100),
            round(h * height / 100))


def _control(control: "layouts.Control", frame: tuple[int, ...],
             color: tuple[float, ...]) -> str:
    kind = control.kind
    if kind == "xy":
        return _node("XY", control.name, frame, color, [], [_value("x", 0.5), _value("y", 0.5)],
                     [_osc(control, ("x", "y"))])
    if kind in ("fader", "meter"):
        interactive = kind == "fader"
        across = frame[2] > frame[3]  # a wide fader moves left to right
        return _node("FADER", control.name, frame, color,
                     [_bool("bar", True), _int("orientation", EAST if across else NORTH)],
                     [_value("x", 0)], [_osc(control, ("x",))] if interactive else [],
                     interactive=interactive)
    if kind in ("toggle", "tap"):
        button_type = 2 if kind == "toggle" else 0  # toggle on press / momentary
        return _node("BUTTON", control.name, frame, color, [_int("buttonType", button_type)],
                     [_value("x", 0)], [_osc(control, ("x",))])
    if kind == "cells":
        return _cells(control, frame, color)
    return _label(control.name, frame, "", 18)


def _cells(control: "layouts.Control", frame: tuple[int, ...], color: tuple[float, ...]) -> str:
    w, h = frame[2:]
    step = w / control.count
    cells = [_node("BUTTON", f"step{i + 1}", (round(i * step), 0, round(step) - 2, h),
                   color if i % 4 else tuple(c * 0.7 for c in color),
                   [_int("buttonType", 1)], [_value("x", 0)], interactive=False)
             for i in range(control.count)]
    return _node("GROUP", control.name, frame, (0, 0, 0), [], [], children=cells,
                 interactive=False)


def _caption(control: "layouts.Control", frame: tuple[int, ...]) -> list[str]:
    """A label naming the control (texts and bars get theirs left of or above them)."""
    x, y, w, h = frame
    if control.kind in ("text", "meter"):
        return [_label(f"{control.name}_caption", (x, y, w, 14), control.label, 11)]
    if control.kind == "cells":
        return [_label(f"{control.name}_caption", (x + 4, y, 120, 18), control.label, 12)]
    return [_label(f"{control.name}_caption", (x, y, w, min(h, 28)), control.label, 13)]


def _label(name: str, frame: tuple[int, ...], text: str, size: int) -> str:
    return _node("LABEL", name, frame, (1, 1, 1),
                 [_int("textSize", size)],
                 [_value("text", text)], interactive=False)


def _osc(control: "layouts.Control", keys: tuple[str, ...]) -> str:
    """The control's OSC message: ``before``, its value(s) scaled low..high (a tap: its
    constant), ``after``; received as is when nothing else qualifies it."""
    receive = control.kind in NATIVE and not control.before and not control.after
    if control.kind == "tap":
        values = [_partial("CONSTANT", "INTEGER", f"{control.press:g}")]
        triggers = [("x", "RISE")]
    else:
        values = [_partial("VALUE", "FLOAT", key, control.low, control.high) for key in keys]
        triggers = [(key, "ANY") for key in keys]
    arguments = [*(_partial("CONSTANT", "INTEGER", str(v)) for v in control.before), *values,
                 *(_partial("CONSTANT", "STRING", v) for v in control.after)]
    trigger_xml = "".join(f"<trigger><var>{_cdata(var)}</var><condition>{condition}"
                          "</condition></trigger>" for var, condition in triggers)
    return (f"<osc><enabled>1</enabled><send>1</send><receive>{int(receive)}</receive>"
            "<feedback>0</feedback><noDuplicates>0</noDuplicates>"
            f"<connections>00001</connections><triggers>{trigger_xml}</triggers>"
            f"<path>{_partial('CONSTANT', 'STRING', control.address)}</path>"
            f"<arguments>{''.join(arguments)}</arguments></osc>")


def _partial(kind: str, conversion: str, value: str, low: float = 0, high: float = 1) -> str:
    return (f"<partial><type>{kind}</type><conversion>{conversion}</conversion>"
            f"<value>{_cdata(value)}</value><scaleMin>{low:g}</scaleMin>"
            f"<scaleMax>{high:g}</scaleMax></partial>")


# -- the root script ---------------------------------------------------------------------

SCRIPT = """-- rvaed: generated by rvaed.daemon.layouts (edit the generator, not this script)
-- Subscribes to rvaed's feedback when the layout opens and every RESUBSCRIBE ms, answers the
-- daemon's hello with its nonce, and shows the feedback no control receives by itself.
local RESUBSCRIBE = {resubscribe}
-- Feedback goes to the port this layout sends from; if nothing shows, set PORT to the receive
-- port of the OSC connection (Connections > OSC), e.g. local PORT = 9001
local PORT = nil
local SHOW = {{
{show}
}}
local last = -RESUBSCRIBE

function update()
  if getMillis() - last >= RESUBSCRIBE then
    last = getMillis()
    if PORT then sendOSC('{subscribe}', PORT) else sendOSC('{subscribe}') end
  end
end

local function matches(args, match)
  for i, want in pairs(match) do
    if args[i] == nil or args[i].value ~= want then return false end
  end
  return true
end

local function show(entry, args)
  local control = root:findByName(entry[1], true)
  if control == nil then return end
  if entry[2] == 'cells' then
    for i = 1, #args do
      local cell = control:findByName('step' .. i)
      if cell ~= nil then cell.values.x = args[i].value end
    end
    local i = #args + 1  -- a model of fewer steps than the row's cells: the rest stay empty
    local cell = control:findByName('step' .. i)
    while cell ~= nil do
      cell.values.x = 0
      i = i + 1
      cell = control:findByName('step' .. i)
    end
  elseif entry[2] == 'text' then
    control.values.text = tostring(args[entry[3]].value)
  else
    control.values.x = (args[entry[3]].value - entry[4]) / (entry[5] - entry[4])
  end
end

function onReceiveOSC(message, connections)
  local path, args = message[1], message[2]
  if path == '{hello}' and args[1] ~= nil then
    sendOSC('{confirm}', args[1].value)
    return true
  end
  for _, entry in ipairs(SHOW[path] or {{}}) do
    if args[entry[3]] ~= nil and matches(args, entry[6]) then show(entry, args) end
  end
end
"""


def script(pages: list["layouts.Page"]) -> str:
    """The root script: subscription, hello answers and the displays of ``pages``."""
    entries: dict[str, list[str]] = {}
    for control in _scripted(pages):
        entries.setdefault(control.listens, []).append(_entry(control))
    show = ",\n".join(f"  ['{address}'] = {{{', '.join(found)}}}"
                      for address, found in entries.items())
    return SCRIPT.format(resubscribe=layouts.RESUBSCRIBE_SECONDS * 1000, show=show,
                         subscribe=layouts.SUBSCRIBE, hello=layouts.HELLO,
                         confirm=layouts.CONFIRM)


def _scripted(pages: list["layouts.Page"]) -> Iterable["layouts.Control"]:
    for page in pages:
        for control in page.controls:
            native = control.kind in NATIVE and not control.before and not control.after
            if control.listens and not native:
                yield control


def _entry(control: "layouts.Control") -> str:
    """{name, key, argument (1-based), low, high, {position = wanted value}} for the script."""
    key = {"cells": "cells", "text": "text"}.get(control.kind, "x")
    position = control.shows + 1
    wanted = [*(f"[{i + 1}] = {v}" for i, v in enumerate(control.before)),
              *(f"[{position + 1 + i}] = '{v}'" for i, v in enumerate(control.after))]
    return (f"{{'{control.name}', '{key}', {position}, {control.low:g}, {control.high:g}, "
            f"{{{', '.join(wanted)}}}}}")


# -- XML pieces, as the editor writes them ----------------------------------------------------


def _node(kind: str, name: str, frame: tuple[int, ...], color: tuple[float, ...],
          properties: list[str], values: list[str], messages: Iterable[str] = (),
          children: Iterable[str] = (), interactive: bool = True) -> str:
    node_id = uuid.uuid5(ID_SPACE, f"{kind}/{name}/{frame}")
    common = [_string("name", name), _rect("frame", frame), _color("color", color),
              _bool("interactive", interactive), _bool("visible", True),
              _bool("background", kind != "LABEL"), _bool("outline", kind != "LABEL"),
              _float("cornerRadius", 1)]
    body = "".join([*common, *properties])
    parts = [f"<node ID='{node_id}' type='{kind}'><properties>{body}</properties>",
             f"<values>{_value('touch', 'false')}{''.join(values)}</values>"]
    messages, children = list(messages), list(children)
    if messages:
        parts.append(f"<messages>{''.join(messages)}</messages>")
    if children:
        parts.append(f"<children>{''.join(children)}</children>")
    return "".join([*parts, "</node>"])


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _property(kind: str, key: str, value: str) -> str:
    return f"<property type='{kind}'><key>{_cdata(key)}</key><value>{value}</value></property>"


def _string(key: str, value: str) -> str:
    return _property("s", key, _cdata(value))


def _bool(key: str, value: bool) -> str:
    return _property("b", key, str(int(value)))


def _int(key: str, value: int) -> str:
    return _property("i", key, str(value))


def _float(key: str, value: float) -> str:
    return _property("f", key, f"{value:g}")


def _rect(key: str, frame: tuple[int, ...]) -> str:
    x, y, w, h = frame
    return _property("r", key, f"<x>{x}</x><y>{y}</y><w>{w}</w><h>{h}</h>")


def _color(key: str, rgb: tuple[float, ...]) -> str:
    r, g, b = (f"{c:g}" for c in rgb)
    return _property("c", key, f"<r>{r}</r><g>{g}</g><b>{b}</b><a>1</a>")


def _value(key: str, default: object) -> str:
    return (f"<value><key>{_cdata(key)}</key><locked>0</locked>"
            f"<lockedDefaultCurrent>0</lockedDefaultCurrent>"
            f"<default>{_cdata(str(default))}</default><defaultPull>0</defaultPull>"
            "</value>")
