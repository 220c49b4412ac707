"""OSC under attack: does the performer get through a flood, and how much does the daemon send?

The daemon's OSC server runs here with the real performance (starter model, real decoder,
sequencer on the internal clock, no MIDI output). Other processes send over real UDP on
loopback: the performer from 127.0.0.2, mute toggles at a phone's pace (each one is applied,
none coalesced, so each is counted), and a flooder from 127.0.0.3 at 10,000 datagrams a
second (mute toggles too: the costliest message to apply). Figures:

- flood: the share of the performer's datagrams the server handled, with the kernel's and
  the budget's drops of the flood;
- amplification: bytes out per byte in to an unproven sender (subscribe, state, garbage);
- feedback: bytes a second to one subscriber while the performer glides x/y at 20 changes a
  second (its budget: 32 KB a second per subscriber).
"""

import asyncio
import socket
import subprocess
import sys
import time

HELP = "OSC under a flood: the performer's share, reply amplification, feedback bytes/s"
PERFORMER, FLOODER = "127.0.0.2", "127.0.0.3"

SENDER = r"""
import socket, sys, time
from pythonosc.osc_message_builder import build_msg
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, 0))
messages = [build_msg("/rvaed/mute", [1 + v % 9, v // 9 % 2]).dgram for v in range(18)]
batch = max(1, int(rate / 500))
interval = batch / rate
sent, start = 0, time.perf_counter()
next_at = start
while time.perf_counter() - start < seconds:
    for _ in range(batch):
        try:
            sock.sendto(messages[sent % 18], ("127.0.0.1", port))
        except OSError:
            pass
        sent += 1
    next_at += interval
    delay = next_at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
print(sent)
"""


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the flood (5)")
    parser.add_argument("--flood-rate", type=float, default=10000.0,
                        help="datagrams a second of the flood (10000)")
    parser.add_argument("--performer-rate", type=float, default=50.0,
                        help="datagrams a second of the performer (50)")


def run(args) -> dict:
    figures = asyncio.run(_measure(args))
    _print(figures)
    return figures


async def _measure(args) -> dict:
    from rvaed.control.osc import OscServer
    from rvaed.control.performance import Performance
    from rvaed.core.drummachine import load_drum_machine
    from rvaed.engine.clock import InternalClock
    from rvaed.engine.sequencer import Sequencer
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    decoder = Decoder(model_path("starter"))
    clock = InternalClock()
    clock.set_playing(True)
    sequencer = Sequencer(clock, [], decoder.grid)
    perf = Performance(decoder, sequencer, load_drum_machine("gm", decoder.kit), clock)
    await perf.start()
    sequencer.start()
    server = OscServer(perf, None, host="127.0.0.1", port=0)
    await server.start()
    try:
        figures = {"flood": await _flood(server, _count_handled(server), args),
                   "amplification": await _amplification(server),
                   "feedback": await _feedback(server)}
    finally:
        await server.close()
        sequencer.stop()
        await perf.stop()
    return figures


def _count_handled(server) -> dict[str, int]:
    """Count the messages ``server`` handles, by source address (the bench's instrument)."""
    handled: dict[str, int] = {}
    serve = server.message

    def counted(address, args, sender, at) -> None:
        handled[sender[0]] = handled.get(sender[0], 0) + 1
        serve(address, args, sender, at)
    setattr(server, "message", counted)  # noqa: B010 (an instance attribute over the method)
    return handled


async def _flood(server, handled: dict[str, int], args) -> dict:
    received, over = server.received, server.over_budget
    procs = [_sender(host, server.port, rate, args.seconds) for host, rate in
             ((FLOODER, args.flood_rate), (PERFORMER, args.performer_rate))]
    outs = [await asyncio.to_thread(p.communicate) for p in procs]
    await asyncio.sleep(0.2)
    flood_sent, performer_sent = (int(out.split()[-1]) for out, _ in outs)
    mine = handled.get(PERFORMER, 0)
    return {"seconds": args.seconds, "flood_rate": args.flood_rate,
            "flood_sent": flood_sent, "flood_handled": handled.get(FLOODER, 0),
            "received": server.received - received, "over_budget": server.over_budget - over,
            "performer_sent": performer_sent, "performer_handled": mine,
            "performer_share": mine / max(1, performer_sent)}


def _sender(host: str, port: int, rate: float, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, host, str(port), str(rate),
                             str(seconds)], stdout=subprocess.PIPE, text=True)


async def _amplification(server) -> dict:
    from pythonosc.osc_message_builder import build_msg

    requests = [build_msg("/rvaed/subscribe", []).dgram, build_msg("/rvaed/state", []).dgram,
                build_msg("/rvaed/models", []).dgram, build_msg("/rvaed/xy", [0.4, 0.6]).dgram,
                b"#bundle\0garbage", build_msg("/rvaed/subscribe/confirm", "0" * 15).dgram]
    with _udp("127.0.0.4") as sock:
        for datagram in requests:
            sock.sendto(datagram, ("127.0.0.1", server.port))
        await asyncio.sleep(0.5)
        replies = _drain(sock)
    bytes_in = sum(map(len, requests))
    return {"bytes_in": bytes_in, "bytes_out": sum(map(len, replies)),
            "replies": len(replies), "ratio": sum(map(len, replies)) / bytes_in}


async def _feedback(server, seconds: float = 4.0) -> dict:
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import build_msg

    address = ("127.0.0.1", server.port)
    with _udp(PERFORMER) as sock:
        sock.sendto(build_msg("/rvaed/subscribe", []).dgram, address)
        await asyncio.sleep(0.2)
        hello = OscMessage(_drain(sock)[0])
        sock.sendto(build_msg("/rvaed/subscribe/confirm", hello.params[0]).dgram, address)
        await asyncio.sleep(0.5)
        first = sum(map(len, _drain(sock)))
        total, start = 0, time.monotonic()
        for step in range(int(seconds * 20)):
            x = step / (seconds * 20)
            sock.sendto(build_msg("/rvaed/xy", [x, 1 - x]).dgram, address)
            await asyncio.sleep(0.05)
            total += sum(map(len, _drain(sock)))
        elapsed = time.monotonic() - start
    return {"full_state_bytes": first, "glide_bytes_per_second": total / elapsed,
            "sent_bytes_per_second_in": 20 * len(build_msg("/rvaed/xy", [0.5, 0.5]).dgram)}


def _udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> list[bytes]:
    found = []
    while True:
        try:
            found.append(sock.recv(65536))
        except BlockingIOError:
            return found


def _print(figures: dict) -> None:
    flood, amp, feed = figures["flood"], figures["amplification"], figures["feedback"]
    print(f"flood {flood['flood_rate']:g}/s for {flood['seconds']:g} s from {FLOODER}: "
          f"{flood['flood_sent']} sent, {flood['received']} read by the server (both senders), "
          f"{flood['over_budget']} dropped unparsed (over the source's budget), "
          f"{flood['flood_handled']} handled")
    print(f"performer {PERFORMER}: {flood['performer_handled']} of {flood['performer_sent']} "
          f"handled ({flood['performer_share']:.1%})")
    print(f"unproven sender: {amp['bytes_in']} bytes in, {amp['bytes_out']} out in "
          f"{amp['replies']} replies (ratio {amp['ratio']:.2f})")
    print(f"subscriber: full state {feed['full_state_bytes']} bytes; x/y glide at 20/s "
          f"({feed['sent_bytes_per_second_in']} B/s in): "
          f"{feed['glide_bytes_per_second'] / 1024:.1f} KB/s of feedback")
