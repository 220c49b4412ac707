"""The OSC API over real UDP on 127.0.0.1: liblo's oscsend and python-osc in another process
drive the state; a subscribed client receives the pattern grid and the state; bad input is
dropped with rate-limited logging and the state stays valid."""

import argparse
import asyncio
import contextlib
import logging
import re
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from checks import assert_one_line, require_tools
from performer import make_performance, receive_all, shell, subscribe, until
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from rvaed.benchmarks import osc as osc_bench
from rvaed.control import subscribers
from rvaed.control.controls import Controls
from rvaed.control.mapfile import load_mapping
from rvaed.control.osc import ROUTES, OscServer, Route
from rvaed.control.subscribers import (
    BURST_BYTES,
    BYTES_PER_SECOND,
    MAX_PER_HOST,
    MAX_SUBSCRIBERS,
)
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.state import RANGES
from rvaed.daemon import routes
from rvaed.daemon.policy import FilePolicy, parse_allowlist


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


def test_conditions_by_name_or_number_per_voice_and_per_step_with_feedback(model_dir, caplog):
    require_tools("oscsend")

    async def scenario():
        perf, server = await serve(model_dir)
        client, address = udp(), ("127.0.0.1", server.port)
        await asyncio.to_thread(subscribe, client, address)
        port = str(server.port)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/condition/kick", "s", "NOT fill")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/condition/snare", "i", "10")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/step", "sis", "closed-hat", "5", "3:4")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/step", "iis", "1", "1", "25%")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/step", "iis", "1", "33", "1:2")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/condition/rim", "s", "sometimes")
        await until(lambda: len(perf.state.steps) == 2)
        await asyncio.sleep(0.2)
        state = perf.state
        assert (state.condition_kick, state.condition_snare) == (2, 10)  # not fill, 2:2
        assert state.steps == ((0, 0, "25%"), (2, 4, "3:4"))
        schedule = perf.schedule
        assert [c.name for c in schedule.conditions[:2]] == ["not fill", "2:2"]
        assert {at: c.name for at, c in schedule.trigs.items()} == {(0, 0): "25%", (2, 4): "3:4"}
        got = receive_all(client)
        assert got["/rvaed/condition/kick"] == [2]
        assert got["/rvaed/steps"] == [1, 1, "25%", 3, 5, "3:4"]
        await shell("oscsend", "127.0.0.1", port, "/rvaed/step", "iis", "1", "1", "always")
        await until(lambda: perf.state.steps == ((2, 4, "3:4"),))
        assert perf.state.condition_rim == 0  # a wrong name changed nothing; it says why:
        with pytest.raises(ValueError, match="^condition_rim: expected one of always, fill, "
                           r"not fill, .*, 8:8, got 'sometimes'$"):
            perf.set("condition_rim", "sometimes")
        await server.close()
        await perf.stop()
    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    lines = [record.getMessage() for record in caplog.records]
    assert [line for line in lines if "step: expected 1-32, got 33" in line], lines


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




def udp(host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def test_subscribers_get_the_pattern_grid_and_state_after_the_handshake(model_dir):
    async def scenario():
        perf, server = await serve(model_dir)
        client, query = udp(), udp()
        address = ("127.0.0.1", server.port)
        nonce = await asyncio.to_thread(subscribe, client, address)
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
        # /rvaed/state from another port of the same host: everything again, to the
        # subscription, nothing to the asking port
        query.sendto(build_msg("/rvaed/state", []).dgram, address)
        await asyncio.sleep(0.2)
        assert receive_all(client)["/rvaed/threshold"] == [np.float32(0.35)]
        assert receive_all(query) == {}
        client.sendto(build_msg("/rvaed/unsubscribe", "0" * 15).dgram, address)  # wrong nonce
        client.sendto(build_msg("/rvaed/unsubscribe", nonce).dgram, address)
        await until(lambda: not server.subscribers)
        query.sendto(build_msg("/rvaed/state", []).dgram, address)
        await asyncio.sleep(0.2)
        assert receive_all(client) == {} and receive_all(query) == {}
        client.close()
        query.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def test_no_feedback_without_the_echo_and_replies_no_larger_than_a_hello(model_dir):
    """An unproven sender (its source may be forged) gets at most one /rvaed/hello, about
    the size of its request; only the nonce echoed from the same IP starts feedback."""
    async def scenario():
        perf, server = await serve(model_dir)
        victim, attacker = udp(), udp()
        address = ("127.0.0.1", server.port)
        sent = [build_msg("/rvaed/subscribe", victim.getsockname()[1]).dgram,
                build_msg("/rvaed/state", []).dgram, build_msg("/rvaed/subscribe", []).dgram,
                build_msg("/rvaed/subscribe/confirm", "123456789abcdef").dgram,
                build_msg("/rvaed/xy", [0.3, 0.3]).dgram]
        for datagram in sent:
            attacker.sendto(datagram, address)
        await asyncio.sleep(0.3)
        received = [*_datagrams(victim), *_datagrams(attacker)]
        assert [OscMessage(d).address for d in received] == ["/rvaed/hello"] * 2
        ratio = sum(map(len, received)) / sum(map(len, sent))
        largest = max(len(r) / len(q) for r, q in zip(received, (sent[0], sent[2]), strict=True))
        print(f"\nunproven sender: {sum(map(len, sent))} bytes in, {sum(map(len, received))} "
              f"out (ratio {ratio:.2f}; largest reply/request {largest:.2f})")
        assert largest <= 1.5 and not server.subscribers
        victim.close()
        attacker.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def _datagrams(sock) -> list[bytes]:
    sock.setblocking(False)
    found = []
    with contextlib.suppress(BlockingIOError):
        while True:
            found.append(sock.recv(65536))
    return found


def test_the_daemon_never_subscribes_or_obeys_itself(model_dir):
    async def scenario():
        perf, server = await serve(model_dir)
        address = ("127.0.0.1", server.port)
        senders = [udp("127.0.0.1"), udp("127.0.0.2")]  # any address of this machine is it
        for sender in senders:
            sender.sendto(build_msg("/rvaed/subscribe", server.port).dgram, address)
        server._sock.sendto(build_msg("/rvaed/threshold", 0.9).dgram, address)
        await until(lambda: server.own == 1)
        await until(lambda: server.rejected.count == 2)
        assert perf.state.threshold == 0.5 and not server.subscribers
        for sender in senders:
            sender.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def test_live_subscribers_are_never_evicted_and_each_keeps_to_its_budget(model_dir):
    """The phone subscribes from 127.0.0.2; others fill every slot from further loopback
    addresses; the next one is refused and the phone keeps its feedback, within budget."""
    async def scenario():
        perf, server = await serve(model_dir)
        address = ("127.0.0.1", server.port)
        phone = udp("127.0.0.2")
        await asyncio.to_thread(subscribe, phone, address)
        others = [udp(f"127.0.0.{3 + i // MAX_PER_HOST}") for i in range(MAX_SUBSCRIBERS)]
        for sock in others:
            await asyncio.to_thread(subscribe, sock, address)
        await until(lambda: server.rejected.count >= 1)  # the 17th
        assert len(server.subscribers) == MAX_SUBSCRIBERS
        assert phone.getsockname() in server.subscribers
        _datagrams(phone)
        start, received = time.monotonic(), 0
        controller = udp()
        for step in range(40):  # a glide of x/y and the threshold over 2 s: 20 changes a second
            controller.sendto(build_msg("/rvaed/xy", [step / 40, 1 - step / 40]).dgram, address)
            controller.sendto(build_msg("/rvaed/threshold", 0.2 + step / 100).dgram, address)
            await asyncio.sleep(0.05)
            received += sum(map(len, _datagrams(phone)))
        rate = received / (time.monotonic() - start)
        print(f"\nphone feedback under a 20/s glide: {rate / 1024:.1f} KB/s "
              f"(budget {BYTES_PER_SECOND / 1024:.0f} KB/s)")
        assert 0 < rate <= BYTES_PER_SECOND * 1.1 + BURST_BYTES / 2
        assert server.subscribers[phone.getsockname()].sent["/rvaed/threshold"]
        for sock in [phone, controller, *others]:
            sock.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def test_mute_and_freeze_feedback_reach_oscdump_on_their_own_addresses(model_dir):
    require_tools("oscdump")

    async def scenario():
        perf, server = await serve(model_dir)
        address = ("127.0.0.1", server.port)
        port = free_port()
        dump = await asyncio.create_subprocess_exec("oscdump", "-L", str(port),
                                                    stdout=asyncio.subprocess.PIPE)
        lines: list[str] = []  # without oscdump's timestamp

        async def read():
            async for line in dump.stdout:
                lines.append(line.decode().split(" ", 1)[1])
        reader = asyncio.create_task(read())
        client = udp()
        try:
            client.sendto(build_msg("/rvaed/mute", ["snare", 1]).dgram, address)
            await until(lambda: perf.state.mutes == {1})
            for _ in range(50):  # until oscdump is listening and has the hello
                client.sendto(build_msg("/rvaed/subscribe", port).dgram, address)
                await asyncio.sleep(0.1)
                if any("/rvaed/hello" in line for line in lines):
                    break
            nonce = re.search(r'/rvaed/hello s "([0-9a-f]{15})"', "".join(lines)).group(1)
            client.sendto(build_msg("/rvaed/subscribe/confirm", nonce).dgram, address)
            await until(lambda: any(line.startswith("/rvaed/freeze ") for line in lines))
            await asyncio.sleep(0.1)
        finally:
            dump.terminate()
            await dump.wait()
            reader.cancel()
        text = "".join(lines)
        assert re.search(r"^/rvaed/mute ii 2 1$", text, re.M), text
        assert re.search(r"^/rvaed/mute ii 1 0$", text, re.M)
        assert re.search(r"^/rvaed/freeze ii 1 0$", text, re.M)
        assert not re.search(r"^/rvaed/(mut|freez) ", text, re.M)
        client.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_python_osc_warnings_are_rate_limited_like_ours(model_dir, caplog):
    caplog.set_level(logging.WARNING)

    async def scenario():
        perf, server = await serve(model_dir)
        sender = udp()
        odd = b"/rvaed/x\x00\x00\x00\x00,Q\x00\x00"  # a type tag python-osc does not know
        for _ in range(200):
            sender.sendto(odd, ("127.0.0.1", server.port))
        await until(lambda: server.received >= 200)
        await asyncio.sleep(0.05)
        sender.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())
    unhandled = [r for r in caplog.records if "Unhandled parameter type" in r.getMessage()]
    assert len(unhandled) == 1


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


def test_a_route_is_served_once_and_one_touching_files_only_with_a_guard(model_dir):
    server = OscServer(make_performance(model_dir), None)
    touches = Route("/test/save", "", "save a file", lambda owner, sender, args, at: None,
                    files=True)
    with pytest.raises(ValueError, match="/test/save: touches files"):
        server.serve([touches], None)
    with pytest.raises(ValueError, match="/rvaed/x: served twice"):
        server.serve(ROUTES[:1], server)
    saved = []
    policy = FilePolicy((), parse_allowlist(["127.0.0.0/8"]), 1, 1, "the-secret-123")
    server.serve([replace(touches, handler=lambda owner, sender, args, at: saved.append(args))],
                 "owner", policy)
    server.message("/test/save", ("the-secret-123", "a"), ("127.0.0.1", 9), 0)
    with pytest.raises(ValueError, match=r"/test/save: refused from 10\.0\.0\.1"):
        server.message("/test/save", ("the-secret-123",), ("10.0.0.1", 9), 0)
    for wrong in [(), ("a",), ("the-secret-12",), (b"the-secret-123",)]:
        with pytest.raises(ValueError, match="expected the secret as the first argument"):
            server.message("/test/save", wrong, ("127.0.0.1", 9), 0)
    assert saved == [("a",)]


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


def test_the_performer_gets_through_a_flood_from_another_host():
    """rvaed bench osc, short: a 10,000/s flood of mutes from 127.0.0.3 (real UDP, another
    process) while the performer toggles mutes at 50/s from 127.0.0.2. Before the per-source
    budget the loop spent itself on the flood and the kernel dropped 50-65 % of the performer's
    datagrams; now the flood is read and dropped unparsed."""
    figures = osc_bench.run(argparse.Namespace(seconds=2.0, flood_rate=10000.0,
                                               performer_rate=50.0))
    flood = figures["flood"]
    assert flood["over_budget"] > flood["flood_sent"] / 2
    assert flood["performer_share"] >= 0.75, flood  # 0.35-0.49 before; 0.92-1.0 loaded
    assert figures["amplification"]["ratio"] <= 1.5


def test_a_subscription_lives_while_its_hellos_are_echoed_and_ends_without(model_dir,
                                                                           monkeypatch):
    monkeypatch.setattr(subscribers, "LIFETIME", 0.6)
    monkeypatch.setattr(subscribers, "RENEW_EVERY", 0.2)

    async def scenario():
        perf, server = await serve(model_dir)
        client = udp()
        address = ("127.0.0.1", server.port)
        await asyncio.to_thread(subscribe, client, address)
        await until(lambda: server.subscribers)
        echoed = set()
        deadline = time.monotonic() + 1.5  # more than two lifetimes, echoing every hello
        while time.monotonic() < deadline:
            for datagram in _datagrams(client):
                message = OscMessage(datagram)
                if message.address == "/rvaed/hello":
                    echoed.add(message.params[0])
                    client.sendto(build_msg("/rvaed/subscribe/confirm", message.params).dgram,
                                  address)
            await asyncio.sleep(0.02)
        assert len(echoed) >= 1 and server.subscribers, "renewed by the echoes"
        await until(lambda: not server.subscribers, timeout=3)  # no more echoes: it ends
        client.close()
        await server.close()
        await perf.stop()
    asyncio.run(scenario())
