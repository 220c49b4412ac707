"""The shipped phone layouts: regenerating them gives the same bytes; opened as the apps open
them (TouchOSC's .tosc: zlib-compressed XML; Open Stage Control's session: JSON), every address
they send is a route and every one they show is a route or feedback the daemon really sends;
and every message the TouchOSC layout's controls send, at both ends of their travel, is
obeyed by a real OSC server over UDP without one rejection."""

import asyncio
import json
import re
import socket
import subprocess
import xml.etree.ElementTree as ET
import zlib
from dataclasses import replace

import pytest
from checks import require_tools
from performer import make_performance, until
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from rvaed.control.osc import OscServer
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.state import NOTE, PARAMETERS
from rvaed.daemon import layoutfiles, layouts, routes

ROUTES = {route.address for route in routes.ROUTES}
SENT_BY_SCRIPT = re.compile(r"\bsend(?:OSC)?\(\s*['\"](/[^'\"]+)['\"]")
SHOWN_BY_SCRIPT = re.compile(r"\['(/[^']+)'\] = ")


def shipped(name: str) -> bytes:
    return (layoutfiles.shipped_folder() / name).read_bytes()


def test_regenerating_gives_the_shipped_bytes():
    for name, data in layoutfiles.files().items():
        assert shipped(name) == data, f"controllers/{name} is stale: run python -m " \
                                      "rvaed.daemon.layoutfiles"


def test_write_rewrites_only_what_changed(tmp_path):
    assert {p.name for p in layoutfiles.write(tmp_path)} == {"rvaed.tosc", "rvaed.json"}
    assert layoutfiles.write(tmp_path) == []
    (tmp_path / "rvaed.json").write_text("{}")
    assert [p.name for p in layoutfiles.write(tmp_path)] == ["rvaed.json"]


# -- the TouchOSC layout as XML -------------------------------------------------------------


def tosc() -> ET.Element:
    return ET.fromstring(zlib.decompress(shipped("rvaed.tosc")))


def prop(node: ET.Element, key: str) -> ET.Element | None:
    return next((p for p in node.iterfind("properties/property") if p.findtext("key") == key),
                None)


def tosc_messages() -> list[tuple[str, ET.Element, list[ET.Element]]]:
    """(name, osc element, argument partials) of every OSC message in the layout."""
    found = []
    for node in tosc().iter("node"):
        name = prop(node, "name").findtext("value")
        for osc in node.iterfind("messages/osc"):
            found.append((name, osc, osc.findall("arguments/partial")))
    return found


def path_of(osc: ET.Element) -> str:
    parts = osc.findall("path/partial")
    assert all(p.findtext("type") == "CONSTANT" for p in parts)
    return "".join(p.findtext("value") for p in parts)


def tosc_script() -> str:
    return next(prop(n, "script").findtext("value") for n in tosc().iter("node")
                if prop(n, "script") is not None)


def test_the_touchosc_layout_sends_and_shows_only_rvaed_addresses(model_dir):
    messages = tosc_messages()
    assert len(messages) >= 30
    for name, osc, _args in messages:
        assert path_of(osc) in ROUTES, f"{name} sends {path_of(osc)}: not a route"
    script = tosc_script()
    assert set(SENT_BY_SCRIPT.findall(script)) == {layouts.SUBSCRIBE, layouts.CONFIRM}
    shown = set(SHOWN_BY_SCRIPT.findall(script))
    received = {path_of(osc) for _n, osc, _a in messages if osc.findtext("receive") == "1"}
    assert shown | received <= ROUTES | feedback_addresses(model_dir) | {layouts.HELLO}
    assert {"/rvaed/xy", "/rvaed/threshold", "/rvaed/play"} <= received
    assert {f"/rvaed/pattern/{v + 1}" for v in range(load_kit().size)} <= shown


def test_the_touchosc_layout_has_every_parameter_mute_freeze_and_preset():
    paths = [path_of(osc) for _n, osc, _a in tosc_messages()]
    # the note rows set up which note each voice plays, the condition rows pick one of 44
    # names: the web page (a list, also on a phone) and OSC have them, a fader does not
    expected = {row.address for name, row in PARAMETERS.items()
                if name not in ("x", "y", *NOTE) and not row.choices}
    assert expected | {"/rvaed/xy", "/rvaed/transition"} <= set(paths)
    voices = load_kit().size
    assert paths.count("/rvaed/mute") == paths.count("/rvaed/freeze") == voices
    assert paths.count("/rvaed/preset/recall") == paths.count("/rvaed/preset/store") == 8
    cells = [n for n in tosc().iter("node") if prop(n, "name").findtext("value") == "step1"]
    assert len(cells) == voices


# -- the Open Stage Control session as JSON -------------------------------------------------


def widgets(node: dict):
    for child in [*node.get("tabs", []), *node.get("widgets", [])]:
        yield child
        yield from widgets(child)


def test_the_open_stage_control_session_sends_and_shows_only_rvaed_addresses(model_dir):
    session = json.loads(shipped("rvaed.json"))
    assert session["type"] == "session" and session["content"]["type"] == "root"
    found = list(widgets(session["content"]))
    sending = [w for w in found if w["type"] in ("xy", "fader", "button")
               and w.get("interaction", True) and not w.get("bypass")]
    assert {w["address"] for w in sending} <= ROUTES
    scripts = [session["content"]["onCreate"], *(w.get("onValue", "") for w in found)]
    sent = {a for s in scripts for a in SENT_BY_SCRIPT.findall(s)}
    assert sent <= ROUTES | {layouts.CONFIRM}
    assert {layouts.SUBSCRIBE, layouts.CONFIRM, "/rvaed/transition"} <= sent
    shown = {w["address"] for w in found if w["type"] == "variable"}
    assert shown <= feedback_addresses(model_dir) | ROUTES | {layouts.HELLO}
    assert {"/rvaed/pattern/1", "/rvaed/training", layouts.HELLO} <= shown
    mutes = [w for w in sending if w["address"] == "/rvaed/mute"]
    assert [w["preArgs"] for w in mutes] == [[v + 1] for v in range(load_kit().size)]


def test_a_layout_control_on_an_unknown_route_stops_the_generation(monkeypatch):
    hiss = replace(PARAMETERS["noise"], address="/rvaed/hiss")
    monkeypatch.setattr(layouts, "PARAMETERS", {**PARAMETERS, "noise": hiss})
    with pytest.raises(RvaedError, match=r"layout Sound/noise: /rvaed/hiss is not an OSC route"):
        layouts.pages()


# -- against a real OSC server -------------------------------------------------------------


def feedback_addresses(model_dir) -> set[str]:
    return {address for address, _args in live_feedback(model_dir)}


def live_feedback(model_dir, prepare=lambda perf, server: None) -> list[tuple[str, list]]:
    """Every message a real OscServer sends a subscriber after ``prepare(perf, server)``
    (the handshake answered if the daemon asks for it), in order."""
    async def scenario():
        perf = make_performance(model_dir)
        server = OscServer(perf, host="127.0.0.1", port=0, model_name="test model")
        await perf.start()
        await server.start()
        prepare(perf, server)
        got: list[tuple[str, list]] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.setblocking(False)
            address = ("127.0.0.1", server.port)
            client.sendto(build_msg(layouts.SUBSCRIBE, []).dgram, address)
            await until(lambda: collect(client, got) or seen(got, "/rvaed/xy", layouts.HELLO))
            for _address, nonce in [m for m in got if m[0] == layouts.HELLO][:1]:
                client.sendto(build_msg(layouts.CONFIRM, nonce).dgram, address)
            await until(lambda: collect(client, got) or seen(got, "/rvaed/xy"))
            await asyncio.sleep(0.2)
            collect(client, got)
        await server.close()
        await perf.stop()
        return got
    return asyncio.run(scenario())


def seen(messages: list[tuple[str, list]], *addresses: str) -> bool:
    return any(address in addresses for address, _args in messages)


def collect(sock: socket.socket, into: list[tuple[str, list]]) -> None:
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        into += [(timed.message.address, list(timed.message.params))
                 for timed in OscPacket(data).messages]


def argument(partial: ET.Element, end: str) -> object:
    """A partial's value as TouchOSC sends it with the control at ``end`` (scaleMin/Max)."""
    conversion, value = partial.findtext("conversion"), partial.findtext("value")
    if partial.findtext("type") == "VALUE":
        return float(partial.findtext(end))
    return {"INTEGER": int, "FLOAT": float, "STRING": str}[conversion](value)


def test_every_touchosc_message_at_both_ends_is_obeyed_by_a_real_server(model_dir):
    sends = [(path_of(osc), args) for _n, osc, args in tosc_messages()
             if osc.findtext("send") == "1"]
    sends.sort(key=lambda item: item[0].endswith("/recall"))  # store before recall

    async def scenario():
        perf = make_performance(model_dir)
        server = OscServer(perf, host="127.0.0.1", port=0)
        await perf.start()
        await server.start()
        count = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
            phone.bind(("127.0.0.1", 0))
            for end in ("scaleMin", "scaleMax"):
                for path, args in sends:
                    message = build_msg(path, [argument(a, end) for a in args])
                    phone.sendto(message.dgram, ("127.0.0.1", server.port))
                    count += 1
                    await asyncio.sleep(0.002)
            await until(lambda: server.received == count)
        state, playing, tempo = perf.state, perf.clock.playing, perf.clock.tempo
        rejected = server.rejected.count
        await server.close()
        await perf.stop()
        return rejected, state, playing, tempo

    rejected, state, playing, tempo = asyncio.run(scenario())
    assert rejected == 0
    assert state.threshold == 1.0 and state.noise == 1.0 and playing
    assert tempo == layouts.REACH["tempo"][1]
    assert state.mutes == state.freezes == frozenset(range(load_kit().size))
    assert state.transition.unit == "bars" and state.transition.amount == layouts.GLIDE_BARS
    assert all(state.presets)


# -- the layouts' scripts, run on what a real daemon sends ------------------------------------
# TouchOSC and Open Stage Control cannot run here: their scripts run in real Lua (lupa, Lua 5.1
# like TouchOSC's) and real JavaScript (node), with stand-ins for the few app functions they
# call (sending, finding or setting a control, the clock), fed with a real daemon's feedback.

TOUCHOSC_STANDIN = """
sent, now = {}, 0
function getMillis() return now end
function sendOSC(path, ...) table.insert(sent, {path, ...}) end
local Control = {}
Control.__index = Control
function Control:findByName(name, recursive)
  for _, child in ipairs(self.children) do
    if child.name == name then return child end
    if recursive then
      local found = child:findByName(name, true)
      if found ~= nil then return found end
    end
  end
end
function new_control(name, parent)
  local control = setmetatable({name = name, children = {}, values = {x = 0, text = ''}},
                               Control)
  if parent ~= nil then table.insert(parent.children, control) end
  return control
end
function receive(path, ...)
  local args = {}
  for i, v in ipairs({...}) do args[i] = {tag = type(v) == 'string' and 's' or 'f', value = v} end
  return onReceiveOSC({path, args}, {true})
end
"""


def touchosc_runtime():
    """The layout's root script loaded in Lua over a tree of its controls."""
    lua51 = pytest.importorskip("lupa.lua51")
    lua = lua51.LuaRuntime()
    lua.execute(TOUCHOSC_STANDIN)
    new_control = lua.globals().new_control

    def build(node: ET.Element, parent):
        control = new_control(prop(node, "name").findtext("value"), parent)
        for child in node.iterfind("children/node"):
            build(child, control)
        return control
    lua.globals().root = build(tosc().find("node"), None)
    lua.execute(tosc_script())
    return lua


def control(lua, name: str):
    """A control's values (x, text) by its name."""
    root = lua.globals().root
    return root.findByName(root, name, True)["values"]


def sent(lua) -> list[tuple]:
    return [tuple(message.values()) for message in lua.globals().sent.values()]


def test_the_touchosc_script_subscribes_renews_and_answers_the_hello():
    lua = touchosc_runtime()
    lua.globals().update()
    assert sent(lua) == [(layouts.SUBSCRIBE,)]
    lua.globals().now = layouts.RESUBSCRIBE_SECONDS * 1000 - 1
    lua.globals().update()
    assert len(sent(lua)) == 1
    lua.globals().now = layouts.RESUBSCRIBE_SECONDS * 1000
    lua.globals().update()
    assert sent(lua)[-1] == (layouts.SUBSCRIBE,)
    assert lua.globals().receive(layouts.HELLO, "0f2a1c0ffee1234") is True
    assert sent(lua)[-1] == (layouts.CONFIRM, "0f2a1c0ffee1234")


def prepare(perf, server) -> None:
    perf.set_xy(0.3, 0.7)
    perf.set("threshold", 0.3)
    perf.set_voice("mutes", 2, True)
    perf.set_voice("freezes", 0, True)
    perf.set_transition(4, "bars")
    server.report_training(0.25, "epoch 3 of 12")


def expected_rows(feedback: list[tuple[str, list]]) -> list[list[float]]:
    """The grid the daemon sent as one /rvaed/pattern message (velocities): hit or not."""
    voices, steps, *cells = next(args for address, args in reversed(feedback)
                                 if address == "/rvaed/pattern")
    rows = [[float(c > 0) for c in cells[v * steps:(v + 1) * steps]] for v in range(voices)]
    assert sum(map(sum, rows)) > 4, "the point plays a groove"
    return rows


def test_the_touchosc_script_shows_a_real_daemons_feedback(model_dir):
    lua = touchosc_runtime()
    feedback = live_feedback(model_dir, prepare)
    for address, args in feedback:
        lua.globals().receive(address, *args)
    for v, row in enumerate(expected_rows(feedback)):
        root = lua.globals().root
        cells = root.findByName(root, f"pattern{v + 1}", True)
        assert [control_value(cells, f"step{i + 1}") for i in range(len(row))] == row
    for address, (voice, on) in [m for m in feedback if m[0] in VOICE_SWITCHES]:
        assert control(lua, f"{address[7:]}{voice}")["x"] == on
    assert control(lua, "glide")["x"] == pytest.approx(4 / layouts.GLIDE_BARS)
    assert control(lua, "training")["x"] == 0.25
    assert control(lua, "training_status")["text"] == "epoch 3 of 12"
    assert control(lua, "model")["text"] == "test model"
    lua.globals().receive("/rvaed/transition", 900.0, "ms")  # not bars: the fader stays
    assert control(lua, "glide")["x"] == pytest.approx(4 / layouts.GLIDE_BARS)


VOICE_SWITCHES = ("/rvaed/mute", "/rvaed/freeze")


def test_a_pattern_row_of_fewer_steps_leaves_the_other_cells_empty():
    """A 6/8 model's 24 steps on the layout's 32 cells: the last 8 show nothing."""
    lua = touchosc_runtime()
    lua.globals().receive("/rvaed/pattern/1", *([1.0] * 32))
    lua.globals().receive("/rvaed/pattern/1", *([1.0] * 24))
    root = lua.globals().root
    cells = root.findByName(root, "pattern1", True)
    assert [control_value(cells, f"step{i + 1}") for i in range(32)] == [1.0] * 24 + [0.0] * 8


def test_the_touchosc_script_shows_each_voices_mute_and_freeze():
    """As rvaed.control.osc documents them: /rvaed/mute VOICE-NUMBER 0/1, one per voice."""
    lua = touchosc_runtime()
    voices = load_kit().size
    for v in range(voices):
        lua.globals().receive("/rvaed/mute", v + 1, int(v == 2))
        lua.globals().receive("/rvaed/freeze", v + 1, int(v in (0, 5)))
    assert [control(lua, f"mute{v + 1}")["x"] for v in range(voices)] == \
        [float(v == 2) for v in range(voices)]
    assert [control(lua, f"freeze{v + 1}")["x"] for v in range(voices)] == \
        [float(v in (0, 5)) for v in range(voices)]
    lua.globals().receive("/rvaed/mute", 3, 0)
    assert control(lua, "mute3")["x"] == 0


def control_value(parent, name: str) -> float:
    return parent.findByName(parent, name, False)["values"]["x"]


OPEN_STAGE_STANDIN = """
const session = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const feedback = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const sent = [], values = {}, timers = [];
const send = (...message) => sent.push(message);
const set = (id, value) => { values[id] = value; };
const get = (id) => values[id];
const setInterval = (id, callback, delay) => timers.push([id, delay, callback]);
const run = (script, value) => new Function('value', 'send', 'set', 'get', 'setInterval',
                                            script)(value, send, set, get, setInterval);
const widgets = [];
const walk = (node) => [...(node.tabs || []), ...(node.widgets || [])]
  .forEach((child) => { widgets.push(child); walk(child); });
walk(session.content);
run(session.content.onCreate);
const tick = () => timers.forEach(([id, delay, callback]) => callback());
for (const [address, args] of feedback) {  // as Open Stage Control hands a value over
  const value = args.length === 1 ? args[0] : args;
  for (const widget of widgets.filter((w) => w.type === 'variable' && w.address === address)) {
    values[widget.id] = value;
    if (widget.onValue) run(widget.onValue, value);
  }
  tick();
}
console.log(JSON.stringify({sent, values, timers: timers.map(([id, delay]) => [id, delay])}));
"""


def test_the_open_stage_control_scripts_on_a_real_daemons_feedback(model_dir, tmp_path):
    require_tools("node")
    hello = [(layouts.HELLO, ["0f2a1c0ffee1234"])]
    feedback = [*hello, *hello, *live_feedback(model_dir, prepare),
                (layouts.HELLO, ["0f2a1cbeef05678"])]
    standin = tmp_path / "standin.js"
    standin.write_text(OPEN_STAGE_STANDIN)
    done = subprocess.run(["node", str(standin), str(layoutfiles.shipped_folder() /
                                                     "rvaed.json")],
                          input=json.dumps(feedback), capture_output=True, text=True,
                          timeout=60, check=True)
    result = json.loads(done.stdout)
    assert result["sent"][0] == [layouts.SUBSCRIBE]
    assert dict(result["timers"])["subscribe"] == layouts.RESUBSCRIBE_SECONDS * 1000
    confirms = [m[1] for m in result["sent"] if m[0] == layouts.CONFIRM]
    nonces = [args[0] for address, args in feedback if address == layouts.HELLO]
    assert confirms == [n for i, n in enumerate(nonces) if i == 0 or nonces[i - 1] != n]
    assert confirms[0] == "0f2a1c0ffee1234" and confirms[-1] == "0f2a1cbeef05678"
    values = result["values"]
    for v, row in enumerate(expected_rows(feedback)):
        assert [values[f"pattern{v + 1}_{i + 1}"] for i in range(len(row))] == row
    assert values["glide"] == 4
    assert values["training"] == 0.25 and values["training_status"] == "epoch 3 of 12"
    assert values["model"] == "test model"
