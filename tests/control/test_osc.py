"""The OSC API over real UDP on 127.0.0.1: liblo's oscsend and python-osc in another process
drive the state; a subscribed client receives the pattern grid and the state; bad input is
dropped with rate-limited logging and the state stays valid."""

import asyncio
import logging
import re
import socket
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from checks import assert_one_line, require_tools
from performer import make_performance, receive_all, shell, until
from pythonosc.osc_message_builder import build_msg

from rvaed.control.controls import Controls
from rvaed.control.mapfile import load_mapping
from rvaed.control.osc import ROUTES, OscServer, Route
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.state import RANGES
from rvaed.daemon import routes


async def serve(model_dir, maps=()):
    perf = make_performance(model_dir)
    controls = Controls(perf, [load_mapping(m, load_kit()) for m in maps])
    server = OscServer(perf, controls, host="127.0.0.1", port=0, model_name="test model")
    await perf.start()
    await server.start()
    return perf, server






def test_oscsend_from_liblo_drives_the_state(model_dir):
    require_tools("oscsend")

    async def scenario():
        perf, server = await serve(model_dir)
        port = str(server.port)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/xy", "ff", "0.25", "0.75")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/threshold", "f", "0.8")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/mute", "si", "snare", "1")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/freeze", "ii", "1", "1")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/tempo", "i", "133")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/preset/store", "i", "3")
        await until(lambda: perf.state.presets[2] is not None)
        assert (perf.state.x, perf.state.y) == (0.25, 0.75)
        assert perf.state.threshold == np.float32(0.8)
        assert perf.state.mutes == {1} and perf.state.freezes == {0}
        assert perf.clock.tempo == 133
        assert perf.pattern.onsets[2].tolist() == perf.decoder.decode_xy(0.25, 0.75) \
            .onsets[2].tolist()
        assert perf.latency.count >= 3
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


PYTHON_OSC_CLIENT = """
import sys
from pythonosc.udp_client import SimpleUDPClient
client = SimpleUDPClient("127.0.0.1", int(sys.argv[1]))
client.send_message("/1/xy1", [0.1, 0.9])
client.send_message("/rvaed/play", 1)
client.send_message("/rvaed/transition", [2, "bars"])
"""


def test_python_osc_in_another_process_through_the_touchosc_map(model_dir):
    async def scenario():
        perf, server = await serve(model_dir, ["touchosc"])
        await shell(sys.executable, "-c", PYTHON_OSC_CLIENT, str(server.port))
        await until(lambda: perf.state.transition.unit == "bars")
        assert (perf.state.x, perf.state.y) == (np.float32(0.1), np.float32(0.9))
        assert perf.clock.playing
        assert perf.state.transition.amount == 2
        await server.close()
        await perf.stop()
    asyncio.run(scenario())




def test_subscribers_get_the_pattern_grid_and_state(model_dir):
    async def scenario():
        perf, server = await serve(model_dir)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        address = ("127.0.0.1", server.port)
        client.sendto(build_msg("/rvaed/subscribe", client.getsockname()[1]).dgram, address)
        await until(lambda: server.subscribers)
        client.sendto(build_msg("/rvaed/xy", [0.6, 0.4]).dgram, address)
        client.sendto(build_msg("/rvaed/threshold", 0.35).dgram, address)
        await until(lambda: perf.state.threshold == np.float32(0.35))
        await asyncio.sleep(0.2)  # a few feedback intervals
        got = receive_all(client)
        assert got["/rvaed/xy"] == [np.float32(0.6), np.float32(0.4)]
        assert got["/rvaed/model"] == ["test model"]
        voices, steps, *cells = got["/rvaed/pattern"]
        grid = np.zeros((voices, steps), dtype=int)
        for hit in perf.pattern.hits(perf.state.threshold):
            grid[hit.voice, hit.step] = hit.velocity
        assert np.array_equal(np.array(cells).reshape(voices, steps), grid)
        assert got["/rvaed/pattern/1"] == [float(v > 0) for v in grid[0]]
        assert got["/rvaed/tempo"] == [perf.clock.tempo]
        client.sendto(build_msg("/rvaed/unsubscribe", client.getsockname()[1]).dgram, address)
        await until(lambda: not server.subscribers)
        query = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        query.bind(("127.0.0.1", 0))
        query.sendto(build_msg("/rvaed/state", []).dgram, address)
        await asyncio.sleep(0.1)
        assert receive_all(query)["/rvaed/threshold"] == [np.float32(0.35)]
        client.close()
        query.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def test_bad_input_is_dropped_with_rate_limited_logs_and_the_state_stays_valid(
        model_dir, caplog):
    caplog.set_level(logging.WARNING, logger="rvaed.control.osc")
    bad = [build_msg("/rvaed/threshold", "loud").dgram, build_msg("/rvaed/xy", 0.5).dgram,
           build_msg("/rvaed/xy", [0.1, 0.2, 0.3]).dgram, build_msg("/no/such", 1.0).dgram,
           build_msg("/rvaed/noise", float("nan")).dgram,
           build_msg("/rvaed/swing", float("inf")).dgram,
           build_msg("/rvaed/mute", ["cowbell", 1]).dgram,
           build_msg("/rvaed/preset/recall", 12).dgram, build_msg("/rvaed/tempo", []).dgram,
           b"\x00garbage", b"/rvaed/xy\x00\x00\x00,ff\x00\x00", b"#bundle\x00broken",
           b"x" * 65000]

    async def scenario():
        perf, server = await serve(model_dir)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        address = ("127.0.0.1", server.port)
        for datagram in bad:  # one at a time: of a burst to one address only the newest counts
            sender.sendto(datagram, address)
            await asyncio.sleep(0.01)
        sender.sendto(build_msg("/rvaed/timing", 7.5).dgram, address)  # out of range: clamped
        await until(lambda: server.rejected.count == len(bad))
        rng = np.random.default_rng(5)
        for chunk in rng.random((30, 100, 2)):  # a flood: bursts of 100 as fast as possible
            for x, y in chunk:
                sender.sendto(build_msg("/rvaed/xy", [float(x), float(y)]).dgram, address)
            await asyncio.sleep(0)
        sender.sendto(build_msg("/rvaed/xy", [0.125, 0.5]).dgram, address)
        await until(lambda: perf.state.x == 0.125, timeout=10)
        await asyncio.sleep(0.05)
        assert server.rejected.count == len(bad)
        assert perf.state.timing == 2.0
        for name, (low, high) in RANGES.items():
            value = getattr(perf.state, name)
            assert np.isfinite(value) and low <= value <= high, name
        assert perf.decodes < 300  # coalesced, not one decode per message
        assert server.coalesced > 0  # most of a burst of /rvaed/xy is never even parsed
        assert perf.pattern == perf.decoder.decode_xy(0.125, 0.5)
        sender.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.name == "rvaed.control.osc"]
    assert 1 <= len(warnings) <= 2  # rate-limited: one line, the rest counted


def test_a_burst_keeps_each_setters_newest_value_and_every_other_message(
        model_dir):
    async def scenario():
        perf, server = await serve(model_dir)
        sender = ("127.0.0.1", 9)
        burst = [(build_msg(address, args).dgram, sender, at) for at, (address, args) in
                 enumerate([("/rvaed/xy", [0.1, 0.1]), ("/rvaed/preset/store", 1),
                            ("/rvaed/xy", [0.9, 0.9]), ("/rvaed/xy", [0.2, 0.3]),
                            ("/rvaed/preset/store", 2), ("/rvaed/threshold", 0.4),
                            ("/rvaed/threshold", "loud")], start=1000)]
        server.apply_burst(burst)
        # a preset store sees the state as sent; after it, the newest of each setter wins
        assert perf.state.presets[0] == pytest.approx((0.1, 0.1))
        assert perf.state.presets[1] == pytest.approx((0.2, 0.3))
        assert (perf.state.x, perf.state.y) == pytest.approx((0.2, 0.3))
        assert server.coalesced == 2  # /rvaed/xy 0.9 0.9 and /rvaed/threshold 0.4
        # the newest threshold is rejected: the threshold stays as it was before the run
        assert perf.state.threshold == 0.5
        assert server.rejected.count == 1  # the newest threshold message is the bad one
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def test_every_address_in_the_documented_table_is_served(model_dir):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = set(re.findall(r"^\| `(/rvaed/[^`]+)` \|", routes.tables_in(readme), re.M))
    server = OscServer(make_performance(model_dir), None)
    assert set(server.addresses) < documented
    assert documented == {route.address for route in routes.ROUTES}
    assert "/rvaed/bend" in documented


def test_a_route_is_served_once_and_one_touching_files_only_with_a_sender_check(
        model_dir):
    server = OscServer(make_performance(model_dir), None)
    touches = Route("/test/save", "", "save a file", lambda owner, sender, args, at: None,
                    files=True)
    with pytest.raises(ValueError, match="/test/save: touches files"):
        server.serve([touches], None)
    with pytest.raises(ValueError, match="/rvaed/x: served twice"):
        server.serve(ROUTES[:1], server)
    saved = []
    server.serve([replace(touches, handler=lambda owner, sender, args, at: saved.append(owner))],
                 "owner", lambda host: host == "127.0.0.1")
    server.message("/test/save", (), ("127.0.0.1", 9), 0)
    with pytest.raises(ValueError, match=r"/test/save: refused from 10\.0\.0\.1"):
        server.message("/test/save", (), ("10.0.0.1", 9), 0)
    assert saved == ["owner"]


def test_the_readme_osc_tables_are_the_route_registry():
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert routes.tables_in(readme.read_text()) == routes.readme_tables(), (
        "README.md's OSC tables differ from the route registry: update them with "
        "`python -m rvaed.daemon.routes README.md`")


def test_updating_the_readme_rewrites_only_its_osc_tables(tmp_path):
    readme = tmp_path / "README.md"
    stale = routes.readme_tables().replace("| `/rvaed/bend` |", "| `/rvaed/bent` |")
    readme.write_text(f"# rvaed\n\n{stale}\n\nthe rest\n")
    assert routes.update_readme(readme)
    assert readme.read_text() == f"# rvaed\n\n{routes.readme_tables()}\n\nthe rest\n"
    assert not routes.update_readme(readme)
    readme.write_text("# rvaed\n")
    with pytest.raises(RvaedError) as error:
        routes.update_readme(readme)
    assert_one_line(str(error.value), "no generated OSC tables")
