"""Fuzzing the OSC server: random datagrams over real UDP on 127.0.0.1, and the dispatcher
in-process on random (address, arguments).

Real parts: the OscServer with a real Performance decoding an ONNX model with onnxruntime,
controller maps loaded from YAML, python-osc building the messages. Whatever arrives (garbage
bytes, every address with random argument types and counts, NaN/inf, huge values, 64 KB
datagrams, broken bundles), no exception may escape to the event loop, every state field must
stay finite and in range, and the server must still answer /rvaed/state.
"""

import asyncio
import math
import socket
import struct

import numpy as np
import pytest
from checks import fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from performer import make_performance, receive_all, subscribe
from pythonosc.osc_message_builder import OscMessageBuilder, build_msg

from rvaed.control.controls import Controls
from rvaed.control.mapfile import load_mapping
from rvaed.control.osc import OscServer
from rvaed.core.kit import load_kit
from rvaed.core.state import PRESETS, RANGES, TRANSITION_UNITS

KIT = load_kit()
FUZZ_MAP = """\
name: fuzz
bindings:
  - {osc: /fuzz/tempo, target: tempo, smoothing: 50}
  - {osc: /fuzz/fixed, target: fixed_velocity}
  - {osc: /fuzz/glide, arg: 2, target: transition.bars}
  - {osc: /fuzz/recall, target: preset.recall.1}
  - {osc: /fuzz/store, target: preset.store.1}
  - {osc: /fuzz/freeze, target: freeze.kick, mode: toggle}
  - {osc: /fuzz/swing, target: swing, takeover: soft, curve: 3, deadzone: 0.1}
"""
MAPS = ["touchosc", "open-stage-control"]
MAPPED = ["/1/xy1", "/3/xy", "/1/fader1", "/1/toggle1", "/1/toggle4", "/xy_1", "/button_1",
          "/fuzz/tempo", "/fuzz/fixed", "/fuzz/glide", "/fuzz/recall", "/fuzz/store",
          "/fuzz/freeze", "/fuzz/swing"]
SINK = "sink"  # stands for the port of a socket of this test (never a stranger's port)
MAX_UDP = 65507  # the largest IPv4 UDP payload
MARK = (0.125, 0.5)  # the x/y sent after every storm
TEXT = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")  # OSC strings


# -- what is sent ----------------------------------------------------------------------------

def osc_args():
    """(type tag, value) pairs of every OSC type python-osc can write, edge values included."""
    edge_floats = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, 0.5, 1e38,
                                   -1e38, 5e-324, 3.4028235e38])
    return st.one_of(
        st.tuples(st.just("f"), st.one_of(edge_floats, st.floats(width=32))),
        st.tuples(st.just("d"), st.one_of(edge_floats, st.floats(), st.just(1e308))),
        st.tuples(st.just("i"), st.one_of(st.integers(-2**31, 2**31 - 1),
                                          st.sampled_from([0, 1, 2, 8, 9, 10, 127, 128]))),
        st.tuples(st.just("h"), st.integers(-2**63, 2**63 - 1)),
        st.tuples(st.just("s"), st.one_of(
            st.sampled_from(["kick", "snare", "ms", "bars", "", "0.5", "nan"]),
            st.text(TEXT, max_size=40))),
        st.tuples(st.just("b"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.sampled_from(["T", "F", "N"]), st.none()),
        st.tuples(st.just("m"), st.tuples(*[st.integers(0, 255)] * 4)),
        st.tuples(st.just("r"), st.integers(0, 2**32 - 1)),
    )


def addresses():
    served = OscServer(None).addresses
    return st.one_of(st.sampled_from(served), st.sampled_from(MAPPED),
                     st.text(TEXT, max_size=30).map(lambda a: "/" + a))


def subscriber_args():
    """No port (the sender's own), the sink's port, or invalid ports."""
    return st.one_of(st.just([]), st.just([("i", SINK)]),
                     st.lists(osc_args().filter(lambda a: a[0] not in "ihr"), max_size=2),
                     st.lists(st.tuples(st.just("i"), st.sampled_from([0, -1, 65536, 2**31 - 1])),
                              min_size=1, max_size=2))


def plausible_args(address: str):
    """Arguments of the right count and kind, with values in and out of range."""
    value = st.one_of(st.tuples(st.just("f"), st.floats(-1.0, 2.0, width=32)),
                      st.tuples(st.just("d"), st.sampled_from([0.0, 1.0, 20.0, 999.0, 1e9])),
                      st.tuples(st.just("i"), st.integers(-1, 1000)))
    if address in ("/rvaed/mute", "/rvaed/freeze"):
        voice = st.one_of(st.tuples(st.just("s"), st.sampled_from(KIT.names)),
                          st.tuples(st.just("i"), st.integers(0, KIT.size + 1)))
        return st.tuples(voice, value).map(list)
    if address == "/rvaed/transition":
        return st.tuples(value, st.tuples(st.just("s"), st.sampled_from(["ms", "bars"]))).map(list)
    count = 2 if address.endswith("xy") or address in ("/xy_1", "/fuzz/glide") else 1
    return st.lists(value, min_size=count, max_size=count + (address == "/fuzz/glide"))


@st.composite
def messages(draw) -> tuple[str, list[tuple[str, object]]]:
    address = draw(addresses())
    if address.endswith("subscribe"):
        return address, draw(subscriber_args())
    if draw(st.booleans()):
        return address, draw(plausible_args(address))
    return address, draw(st.lists(osc_args(), max_size=6))


def build(address: str, args: list[tuple[str, object]], sink_port: int) -> bytes:
    builder = OscMessageBuilder(address)
    for tag, value in args:
        if tag in "TFN":
            builder.add_arg({"T": True, "F": False, "N": None}[tag], tag)
        else:
            builder.add_arg(sink_port if (tag, value) == ("i", SINK) else value, tag)
    return builder.build().dgram


def bundle(elements: list[bytes], timetag: int) -> bytes:
    body = b"".join(struct.pack(">i", len(e)) + e for e in elements)
    return b"#bundle\x00" + struct.pack(">Q", timetag) + body


@st.composite
def datagrams(draw, sink_port: int) -> bytes:
    kind = draw(st.sampled_from(["message"] * 6 + ["bytes", "bundle", "huge", "mangled"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "huge":
        size = draw(st.sampled_from([16384, 16385, 60000, MAX_UDP]))
        return draw(st.sampled_from([b"x", b"/rvaed/xy\x00\x00\x00,"])).ljust(size, b"\x00")
    if kind == "bundle":
        inner = draw(st.lists(messages(), min_size=1, max_size=4))
        parts = [build(a, args, sink_port) for a, args in inner]
        if draw(st.booleans()):
            parts.append(bundle(parts[:1], 1))  # nested
        data = bundle(parts, draw(st.integers(0, 2**64 - 1)))
        return data[:draw(st.integers(16, len(data)))] if draw(st.booleans()) else data
    data = build(*draw(messages()), sink_port)
    if kind == "mangled":  # a valid message with a byte changed or cut short
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
        data = data[:draw(st.integers(1, len(data)))]
    return data


# -- what must hold afterwards --------------------------------------------------------------

def assert_valid_state(perf) -> None:
    state = perf.state
    for name, (low, high) in RANGES.items():
        value = getattr(state, name)
        assert isinstance(value, float) and math.isfinite(value) and low <= value <= high, name
    assert state.fixed_velocity is None or (isinstance(state.fixed_velocity, int)
                                            and 1 <= state.fixed_velocity <= 127)
    for name in ("mutes", "freezes"):
        assert getattr(state, name) <= frozenset(range(KIT.size)), name
    assert len(state.presets) == PRESETS
    for preset in state.presets:
        assert preset is None or all(math.isfinite(v) and 0 <= v <= 1 for v in preset)
    unit = state.transition.unit
    assert 0 <= state.transition.amount <= TRANSITION_UNITS[unit]
    assert isinstance(state.playing, bool)
    clock = perf.clock
    assert math.isfinite(clock.tempo) and 20 <= clock.tempo <= 999
    for matrix in (perf.pattern.onsets, perf.pattern.velocities, perf.pattern.offsets):
        assert np.all(np.isfinite(matrix))
    assert perf.sequencer.schedule is perf.schedule


class LoopErrors(list):
    """Every exception that reached the event loop (a callback or task that crashed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        loop.set_exception_handler(lambda _loop, context: self.append(context))


async def serve(model_dir, map_path):
    perf = make_performance(model_dir)
    mappings = [load_mapping(m, KIT) for m in [*MAPS, map_path]]
    controls = Controls(perf, mappings)
    server = OscServer(perf, controls, host="127.0.0.1", port=0, model_name="fuzz")
    await perf.start()
    await server.start()
    return perf, controls, server


async def shut(perf, controls, server) -> None:
    await server.close()
    await controls.close()
    await perf.stop()


@pytest.fixture(scope="module")
def map_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("maps") / "fuzz.yaml"
    path.write_text(FUZZ_MAP)
    return path


def local_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# -- over real UDP ---------------------------------------------------------------------------

async def storm_scenario(model_dir, map_path, storm: list[bytes]) -> None:
    errors = LoopErrors(asyncio.get_running_loop())
    perf, controls, server = await serve(model_dir, map_path)
    sender, query = local_socket(), local_socket()
    address = ("127.0.0.1", server.port)
    for i, datagram in enumerate(storm):
        sender.sendto(datagram, address)
        if i % 16 == 15 or len(datagram) > 4096:
            await asyncio.sleep(0)  # let the server drain before the socket buffer fills
    await send_until(sender, build_msg("/rvaed/xy", list(MARK)).dgram, address,
                     lambda: (perf.state.x, perf.state.y) == MARK)
    await asyncio.sleep(0.05)  # queued updates, glides and slews run
    assert not errors, errors[0]
    assert server.received >= len(storm) // 2  # UDP may drop some of a flood, not most
    assert_valid_state(perf)
    await asyncio.to_thread(subscribe, query, address)  # the state goes to subscribers only
    await send_until(query, build_msg("/rvaed/state", []).dgram, address,
                     lambda: query_answered(query, perf))
    for sock in (sender, query):
        sock.close()
    await shut(perf, controls, server)
    assert not errors, errors[0]


async def send_until(sock: socket.socket, datagram: bytes, address: tuple, condition,
                     timeout: float = 10.0) -> None:
    """Send ``datagram`` every 0.1 s until ``condition()``: one datagram may be lost (UDP)."""
    for _ in range(round(timeout / 0.1)):
        sock.sendto(datagram, address)
        for _ in range(10):
            await asyncio.sleep(0.01)
            if condition():
                return
    raise AssertionError(f"no effect of {datagram[:40]!r} after {timeout} s")


def query_answered(query: socket.socket, perf) -> bool:
    """True once the state reply has come, and then it matches the state."""
    got = receive_all(query)
    if "/rvaed/xy" not in got:
        return False
    assert got["/rvaed/xy"] == [np.float32(v) for v in MARK]
    voices, steps, *cells = got["/rvaed/pattern"]
    assert (voices, steps, len(cells)) == (KIT.size, perf.grid.steps, voices * steps)
    assert got["/rvaed/threshold"] == [np.float32(perf.state.threshold)]
    return True


@fuzz_settings(max_examples=10, deadline_ms=None)
@given(data=st.data())
def test_a_storm_of_random_datagrams_leaves_a_valid_state_and_a_live_server(
        model_dir, map_path, data):
    with local_socket() as sink:
        storm = data.draw(st.lists(datagrams(sink.getsockname()[1]), min_size=30,
                                   max_size=150))
        asyncio.run(storm_scenario(model_dir, map_path, storm))


# -- in-process: the dispatcher alone, many more examples ------------------------------------

@pytest.fixture(scope="module")
def dispatcher(model_dir, map_path):
    """A started server on its own loop; examples call it directly and then let the loop run
    what they queued (decodes, glides, slews)."""
    loop = asyncio.new_event_loop()
    errors = LoopErrors(loop)
    perf, controls, server = loop.run_until_complete(serve(model_dir, map_path))
    sink = local_socket()
    yield loop, errors, perf, server, sink
    loop.run_until_complete(shut(perf, controls, server))
    loop.close()
    sink.close()


def on_loop(loop, apply) -> None:
    """Call ``apply()`` on the running loop, as the socket reader does, then let the loop run
    what it queued."""
    async def run():
        apply()
        await asyncio.sleep(0.001)
    loop.run_until_complete(run())


@fuzz_settings(max_examples=200)
@given(packet=st.data())
def test_the_dispatcher_applies_or_refuses_every_packet(dispatcher, packet):
    loop, errors, perf, server, sink = dispatcher
    sender = ("127.0.0.1", sink.getsockname()[1])
    datagram = packet.draw(datagrams(sender[1]))
    on_loop(loop, lambda: server.packet(datagram, sender, 0))
    assert not errors, errors[0]
    assert_valid_state(perf)


@fuzz_settings(max_examples=300)
@given(address=addresses(), args=st.lists(st.one_of(
    st.floats(), st.integers(), st.text(max_size=8), st.booleans(), st.none(),
    st.binary(max_size=8), st.lists(st.floats(), max_size=2)), max_size=4))
@example(address="/rvaed/tempo", args=[10**400])
@example(address="/1/fader1", args=[10**400])
@example(address="/rvaed/transition", args=[1.0, ["ms"]])
def test_messages_are_applied_or_refused_with_a_value_error(dispatcher, address, args):
    loop, errors, perf, server, sink = dispatcher
    if address.endswith("subscribe") and args:
        args = [sink.getsockname()[1]]
    refused = []

    def apply():
        try:
            server.message(address, tuple(args), ("127.0.0.1", sink.getsockname()[1]), 0)
        except ValueError as exc:
            refused.append(str(exc))
    on_loop(loop, apply)
    for message in refused:
        assert len(message.splitlines()) == 1, message
    assert not errors, errors[0]
    assert_valid_state(perf)
