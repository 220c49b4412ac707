"""The layout as an Open Stage Control session (JSON, the format its editor saves, v1).

One tab per page of `rvaed.daemon.layouts`, positions in percent. The XY pad, faders and
switches send and receive their own address (a voice's switch carries its voice number as a
pre-argument, which Open Stage Control also matches on what it receives). What needs more
than an address (the pattern rows, texts, the training bar, the glide in bars) is shown by a
variable widget per feedback address whose script sets the controls. The root's script
subscribes when the session opens and every 30 s, and answers the daemon's hello: a variable on
/rvaed/hello holds the nonce, and a timer of the root's sends it back. (A script run by a
received value cannot send: Open Stage Control runs it with sending off, against loops; a
timer started when the session opens can.) Start Open Stage Control with ``--send HOST:9000``
(rvaed's OSC port) and load this session.
"""

import json

from rvaed.daemon import layouts

VERSION = "1.26.2"  # the Open Stage Control version whose session format this follows
NATIVE = ("xy", "fader", "toggle")  # kinds that receive their own address (when unqualified)
HELLO_ID = "hello"  # the variable that receives the daemon's hello
ANSWER_MS = 250  # how often the root looks for a new hello to answer


def render(pages: list["layouts.Page"]) -> bytes:
    """The session file for ``pages``: JSON text."""
    tabs = [{"type": "tab", "id": page.name.lower(), "label": page.name,
             "widgets": [_widget(c) for c in page.controls] + (_variables(pages) if i == 0
                                                                else [])}
            for i, page in enumerate(pages)]
    root = {"type": "root", "id": "root", "onCreate": _subscribe(), "tabs": tabs,
            "widgets": []}
    session = {"createdWith": "Open Stage Control", "version": VERSION, "type": "session",
               "content": root}
    return (json.dumps(session, indent=2) + "\n").encode()


def _native(control: "layouts.Control") -> bool:
    return control.kind in NATIVE and not control.after and control.listens == control.address


def _box(box: tuple[float, ...]) -> dict:
    x, y, w, h = box
    return {"left": f"{x:g}%", "top": f"{y:g}%", "width": f"{w:g}%", "height": f"{h:g}%"}


def _widget(control: "layouts.Control") -> dict:
    """The widget of ``control``: what it sends, at its address (or bypassed to a script)."""
    common = {"id": control.name, "label": control.label, **_box(control.box)}
    sends = {"address": control.address, "preArgs": list(control.before),
             "bypass": False, "target": ""}
    if control.after:  # the value goes with trailing constants: sent by its own script
        arguments = ", ".join(["value", *(json.dumps(v) for v in control.after)])
        sends = {"address": f"/{control.name}", "bypass": True,
                 "onValue": f"send({json.dumps(control.address)}, {arguments})"}
    kind = control.kind
    if kind == "xy":
        span = {"min": control.low, "max": control.high}
        return {"type": "xy", **common, **sends, "rangeX": span, "rangeY": span,
                "value": [0.5, 0.5]}
    if kind in ("fader", "meter"):
        meter = kind == "meter"
        return {"type": "fader", **common, **({} if meter else sends),
                "horizontal": control.box[2] > control.box[3],
                "range": {"min": control.low, "max": control.high},
                "interaction": not meter, **({"bypass": True} if meter else {})}
    if kind in ("toggle", "tap"):
        on, mode = (1, "toggle") if kind == "toggle" else (control.press, "tap")
        return {"type": "button", **common, **sends, "mode": mode, "on": on, "off": 0}
    if kind == "cells":
        return {"type": "panel", **common, "layout": "horizontal", "widgets": [
            {"type": "button", "id": f"{control.name}_{i + 1}", "label": False,
             "mode": "toggle", "interaction": False, "bypass": True, "on": 1, "off": 0,
             "width": f"{100 / control.count:g}%", "height": "100%"}
            for i in range(control.count)]}
    return {"type": "text", **common, "value": ""}


def _variables(pages: list["layouts.Page"]) -> list[dict]:
    """A variable widget per feedback address that some control shows by script."""
    scripts: dict[str, list[str]] = {}
    for page in pages:
        for control in page.controls:
            if control.listens and not _native(control):
                scripts.setdefault(control.listens, []).append(_show(control))
    hello = {"type": "variable", "id": HELLO_ID, "address": layouts.HELLO}
    return [hello, *({"type": "variable", "id": f"show{i + 1}", "address": address,
                      "onValue": "var v = Array.isArray(value) ? value : [value];\n"
                                 + "\n".join(lines)}
                     for i, (address, lines) in enumerate(scripts.items()))]


def _show(control: "layouts.Control") -> str:
    """The script line that shows ``control``'s part of the feedback in ``v``."""
    quiet = "{send: false, sync: false}"
    if control.kind == "cells":
        return (f"for (var i = 0; i < v.length; i++) "
                f"set({json.dumps(control.name + '_')} + (i + 1), v[i], {quiet});")
    tests = [*(f"v[{i}] === {json.dumps(want)}" for i, want in enumerate(control.before)),
             *(f"v[{control.shows + 1 + i}] === {json.dumps(want)}"
               for i, want in enumerate(control.after))]
    condition = " && ".join([f"v.length > {control.shows}", *tests])
    return f"if ({condition}) set({json.dumps(control.name)}, v[{control.shows}], {quiet});"


def _subscribe() -> str:
    """The root's onCreate: subscribe now and every RESUBSCRIBE_SECONDS; answer each new hello
    nonce (polled from the variable that receives it) within ANSWER_MS."""
    subscribe = f"send({json.dumps(layouts.SUBSCRIBE)})"
    return "\n".join([
        "var answered = null;",
        f"{subscribe};",
        f"setInterval('subscribe', function () {{ {subscribe}; }}, "
        f"{layouts.RESUBSCRIBE_SECONDS * 1000});",
        f"setInterval('hello', function () {{ var nonce = get({json.dumps(HELLO_ID)}); "
        f"if (nonce && nonce !== answered) {{ answered = nonce; "
        f"send({json.dumps(layouts.CONFIRM)}, nonce); }} }}, {ANSWER_MS});"])
