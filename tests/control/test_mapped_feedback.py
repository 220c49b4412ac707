"""Two-way controller maps: a mapped OSC control is sent its target's value on its own address
(a TouchOSC pad named /xy1 follows a preset glide), through the inverse of its transforms;
one-way controls and preset buttons are sent nothing; the new-TouchOSC and Open Stage Control
maps load by default. The glide is watched at liblo's oscdump, a third-party UDP receiver."""

import asyncio
import socket
import subprocess

import pytest
from checks import assert_one_line, require_tools
from performer import make_performance, until
from pythonosc.osc_message_builder import build_msg

from rvaed.control.controls import Controls
from rvaed.control.mapfile import Binding, Target, load_mapping, load_mappings
from rvaed.control.osc import OscServer
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.daemon.config import DaemonConfig

KIT = load_kit()


@pytest.mark.parametrize("binding", [
    Binding("osc", Target("value", "x")),
    Binding("osc", Target("value", "tempo", 0, 20, 999), low=90, high=140),
    Binding("osc", Target("value", "x"), invert=True, curve=2.0, deadzone=0.1),
    Binding("osc", Target("value", "swing", 0, 0.5, 0.75), low=0.5, high=0.75, curve=0.5),
])
def test_unshape_is_the_inverse_of_shape(binding):
    for control in (0.1, 0.25, 0.5, 0.77, 0.9):
        assert binding.unshape(binding.shape(control)) == pytest.approx(control)


def test_a_value_outside_the_bindings_range_is_shown_at_its_end():
    binding = Binding("osc", Target("value", "tempo", 0, 20, 999), low=90, high=140)
    assert binding.unshape(60) == 0.0 and binding.unshape(180) == 1.0


def write_map(tmp_path, text):
    path = tmp_path / "phone.yaml"
    path.write_text("name: phone\nbindings:\n" + text)
    return load_mapping(path, KIT)


def test_feedback_holds_every_two_way_osc_control_and_nothing_else(tmp_path, model_dir):
    mapping = write_map(tmp_path, """
  - {osc: /pad, arg: 0, target: x}
  - {osc: /pad, arg: 1, target: y}
  - {osc: /busy, target: threshold, invert: true}
  - {osc: /kick, target: mute.kick, mode: toggle}
  - {osc: /quiet, target: noise, one_way: true}
  - {osc: /recall1, target: preset.recall.1}
  - {osc: /gap, arg: 2, target: timing}
  - {cc: 7, target: swing}
  - {osc: /both, target: x}
  - {osc: /both, target: y}
""")
    perf = make_performance(model_dir)
    controls = Controls(perf, [mapping])
    perf.state.x, perf.state.y, perf.state.threshold = 0.25, 0.75, 0.8
    perf.state.mutes = {0}
    shown = dict(controls.feedback())
    assert set(shown) == {"/pad", "/busy", "/kick", "/gap", "/both"}
    assert shown["/both"] == pytest.approx([0.25])  # of two bindings on one argument, the first
    assert shown["/pad"] == pytest.approx([0.25, 0.75])
    assert shown["/busy"] == pytest.approx([0.2])  # inverted: up = busier
    assert shown["/kick"] == [1.0]
    assert shown["/gap"] == pytest.approx([0.0, 0.0, 0.5])  # timing 1.0 of 0..2


def test_one_way_is_for_osc_controls_and_is_true_or_false(tmp_path):
    with pytest.raises(RvaedError) as caught:
        write_map(tmp_path, "  - {cc: 7, target: swing, one_way: true}\n")
    assert_one_line(str(caught.value), "phone.yaml:3: bindings[0].one_way: only for a osc source")
    with pytest.raises(RvaedError) as caught:
        write_map(tmp_path, "  - {osc: /a, target: swing, one_way: 1}\n")
    assert_one_line(str(caught.value), "bindings[0].one_way: expected true or false")


def test_the_phone_app_maps_load_by_default(model_dir):
    names = DaemonConfig().mappings
    assert {"touchosc", "touchosc-new", "open-stage-control"} <= set(names)
    perf = make_performance(model_dir)
    controls = Controls(perf, load_mappings(names, KIT))
    assert controls.osc("/xy1", (0.2, 0.3))
    assert (perf.state.x, perf.state.y) == pytest.approx((0.2, 0.3))
    assert controls.osc("/xy_1", (0.6, 0.4))
    assert (perf.state.x, perf.state.y) == pytest.approx((0.6, 0.4))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OscDump:
    """liblo's oscdump on a port, read line by line: (address, arguments as text)."""

    def __init__(self, port: int) -> None:
        # oscdump listens on every address (liblo takes no bind address for unicast); it only
        # receives, and the daemon under test sends to 127.0.0.1
        self.process = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[str, list[str]]] = []
        self._reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # TIMETAG ADDRESS TYPES ARGUMENT ...
            parts = line.split()
            if len(parts) >= 3:
                self.lines.append((parts[1], parts[3:]))

    def of(self, address: str) -> list[list[str]]:
        return [args for found, args in self.lines if found == address]

    async def close(self) -> None:
        self.process.terminate()
        self.process.wait()
        await self._reader


async def subscribe(server: OscServer, port: int, dump: OscDump) -> None:
    """Subscribe oscdump's port; answer the daemon's hello with its nonce when it sends one
    (the confirm may come from any port of the same address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.sendto(build_msg("/rvaed/subscribe", port).dgram, ("127.0.0.1", server.port))
        await until(lambda: dump.of("/rvaed/hello") or dump.of("/rvaed/xy"))
        for (nonce, *_rest) in dump.of("/rvaed/hello")[:1]:
            client.sendto(build_msg("/rvaed/subscribe/confirm", nonce.strip('"')).dgram,
                          ("127.0.0.1", server.port))
        await until(lambda: dump.of("/rvaed/xy"))


def test_a_preset_glide_moves_the_mapped_pad_at_oscdump(model_dir):
    require_tools("oscdump")

    async def scenario():
        perf = make_performance(model_dir)
        controls = Controls(perf, [load_mapping("touchosc-new", KIT)])
        server = OscServer(perf, controls, host="127.0.0.1", port=0)
        await perf.start()
        await server.start()
        port = free_udp_port()
        dump = OscDump(port)
        try:
            await asyncio.sleep(0.3)  # oscdump binds its port
            perf.set_xy(0.1, 0.9)
            perf.store_preset(1)
            perf.set_xy(0.9, 0.1)
            perf.set_transition(600, "ms")
            await subscribe(server, port, dump)
            await until(lambda: [0.9, 0.1] in pad(dump))
            began = len(dump.of("/xy1"))
            assert perf.recall_preset(1)
            await until(lambda: perf.state.x == pytest.approx(0.1))
            await until(lambda: pad(dump)[-1] == pytest.approx([0.1, 0.9]), timeout=2)
        finally:
            await dump.close()
            await server.close()
            await perf.stop()
        glide = pad(dump)[began:]
        xs = [x for x, _y in glide]
        assert len(glide) >= 4, f"the pad was sent {glide}: expected the glide's steps"
        assert xs == sorted(xs, reverse=True), "x glides from 0.9 down to 0.1"
        assert any(0.2 < x < 0.8 for x in xs), "steps between the ends were sent"
        assert all(x + y == pytest.approx(1.0, abs=1e-4) for x, y in glide)
        assert dump.of("/fader1")[-1] == ["0.500000"]  # threshold 0.5, inverted

    asyncio.run(scenario())


def pad(dump: OscDump) -> list[list[float]]:
    return [[round(float(a), 4) for a in args] for args in dump.of("/xy1")]

