"""A performance to drive in tests, and the small waits and probes the control and tool tests
share: the real starter model decoded by onnxruntime, the real sequencer, real sockets."""

import asyncio
import socket
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from rvaed.control.performance import Performance
from rvaed.core.drummachine import load_drum_machine
from rvaed.engine.clock import InternalClock
from rvaed.engine.sequencer import Sequencer
from rvaed.model.runtime import Decoder

SETTLE = 0.3  # JACK applies a new connection at a later process cycle: let it settle


def make_performance(model_dir, clock=None, outputs=()) -> Performance:
    decoder = Decoder(model_dir)
    clock = clock or InternalClock()
    sequencer = Sequencer(clock, list(outputs), decoder.grid)
    return Performance(decoder, sequencer, load_drum_machine("gm", decoder.kit), clock)


async def until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def shell(*command):
    process = await asyncio.create_subprocess_exec(*command)
    assert await process.wait() == 0


def receive_all(sock: socket.socket) -> dict[str, list]:
    """Every OSC message waiting on ``sock``, by address (the last one of each wins)."""
    found = {}
    sock.setblocking(False)
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return found
        for timed in OscPacket(data).messages:
            found[timed.message.address] = list(timed.message.params)


def subscribe(sock: socket.socket, server: tuple, port: int | None = None,
              timeout: float = 5.0) -> str:
    """The OSC subscription handshake from ``sock``: /rvaed/subscribe [port], read the
    /rvaed/hello NONCE on ``sock`` (so ``port``, when given, must be ``sock``'s), echo it to
    /rvaed/subscribe/confirm. Returns the nonce."""
    sock.sendto(build_msg("/rvaed/subscribe", [] if port is None else [port]).dgram, server)
    sock.settimeout(timeout)
    try:
        while True:
            message = OscMessage(sock.recv(65536))
            if message.address == "/rvaed/hello":
                nonce = message.params[0]
                break
    finally:
        sock.settimeout(None)
    sock.sendto(build_msg("/rvaed/subscribe/confirm", nonce).dgram, server)
    return nonce
