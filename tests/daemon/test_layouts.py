"""The shipped phone layouts: regenerating them gives the same bytes; opened as the apps open
them (TouchOSC's .tosc: zlib-compressed XML; Open Stage Control's session: JSON), every address
they send is a route and every one they show is a route or feedback the daemon really sends;
and every message the TouchOSC layout's controls send, at both ends of their travel, is
obeyed by a real OSC server over UDP without one rejection."""

import asyncio
import json
import re
import socket
import xml.etree.ElementTree as ET
import zlib
from dataclasses import replace

import pytest
from performer import make_performance, until
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from rvaed.control.osc import OscServer
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.state import PARAMETERS
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
    expected = {row.address for name, row in PARAMETERS.items() if name not in ("x", "y")}
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
    """Every address a real OscServer sends a subscriber (the handshake answered if asked)."""
    async def scenario():
        perf = make_performance(model_dir)
        server = OscServer(perf, host="127.0.0.1", port=0)
        await perf.start()
        await server.start()
        got: dict[str, list] = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.setblocking(False)
            address = ("127.0.0.1", server.port)
            client.sendto(build_msg(layouts.SUBSCRIBE, []).dgram, address)

            def received() -> bool:
                collect(client, got)
                return "/rvaed/xy" in got or layouts.HELLO in got
            await until(received)
            if layouts.HELLO in got:
                client.sendto(build_msg(layouts.CONFIRM, got[layouts.HELLO]).dgram, address)
            await until(lambda: collect(client, got) or "/rvaed/xy" in got)
            await asyncio.sleep(0.2)
            collect(client, got)
        await server.close()
        await perf.stop()
        return set(got)
    return asyncio.run(scenario())


def collect(sock: socket.socket, into: dict[str, list]) -> None:
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        for timed in OscPacket(data).messages:
            into[timed.message.address] = list(timed.message.params)


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
