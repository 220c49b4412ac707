"""Control latency: a control message arriving -> the new pattern installed in the sequencer.

The daemon's own parts run here on one asyncio loop (OSC server, the web page's server,
controller MIDI input, performance, real decoder, real sequencer thread playing on the
internal clock into a JACK output port with the GM drum map, so every install also prepares
that output's messages).
Another process sends the controls: python-osc over UDP to 127.0.0.1, and python-rtmidi
through the same private JACK server (dummy driver) for MIDI, and aiohttp's WebSocket client
sending what the page's pad sends (``{"a": "/rvaed/xy", "v": [x, y]}``) for the web phase.
Each phase first sends x/y moves at a gentle probe rate, then as a flood of 2,000 messages a
second. Latency is timed from the packet's arrival (the kernel's receive timestamp for OSC,
the rtmidi callback for MIDI, the WebSocket message handed to the web server by aiohttp) to
the end of `Sequencer.install`, for the oldest change each install covers. Resident
memory is read before and after the floods (it should stay flat: the flood is coalesced).
"""

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from rvaed.benchmarks.progress import Progress
from rvaed.core.errors import RvaedError

HELP = "control latency: OSC/MIDI message -> installed pattern, with and without a flood"

SENDER = r"""
import sys, time, random
kind, target, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if kind == "ws":
    import asyncio, json, aiohttp

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{target}/ws") as ws:
                batch = max(1, int(rate / 200))
                start = next_at = time.perf_counter()
                while time.perf_counter() - start < seconds:
                    for _ in range(batch):
                        v = random.random()
                        await ws.send_str(json.dumps({"a": "/rvaed/xy", "v": [v, 1.0 - v]}))
                    next_at += batch / rate
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    asyncio.run(main())
    sys.exit(0)
elif kind == "osc":
    from pythonosc.udp_client import SimpleUDPClient
    client = SimpleUDPClient("127.0.0.1", int(target))
    send = lambda v: client.send_message("/rvaed/xy", [v, 1.0 - v])
else:
    import rtmidi
    port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bench-sender")
    port.open_virtual_port(target)
    time.sleep(1.5)  # the daemon side polls for the port and connects
    send = lambda v: port.send_message([0xB0, 16, int(v * 127)])
batch = max(1, int(rate / 200))
interval = batch / rate
start = next_at = time.perf_counter()
while time.perf_counter() - start < seconds:
    for _ in range(batch):
        send(random.random())
    next_at += interval
    delay = next_at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
"""


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="starter",
                        help="model directory, or 'starter' (the shipped model)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase (5)")
    parser.add_argument("--probe-rate", type=float, default=50.0,
                        help="x/y moves a second without the flood (50)")
    parser.add_argument("--flood-rate", type=float, default=2000.0,
                        help="messages a second of the flood (2000)")
    parser.add_argument("--no-midi", action="store_true", help="skip the MIDI (JACK) phases")
    parser.add_argument("--direct", action="store_true",
                        help="decode directly, not through the model's table (to compare)")
    parser.add_argument("--features", action="store_true",
                        help="play with every per-voice and phrase feature on: density, "
                             "chance and a condition on every voice, conditions on steps, a "
                             "seed, 4-bar phrases with fills")


def run(args) -> dict:
    args.progress = Progress("control")
    with contextlib.ExitStack() as stack:
        jack = None
        if args.no_midi or shutil.which("jackd") is None:
            print("control: no JACK (--no-midi or jackd missing): the sequencer plays to no "
                  "output and the MIDI phases are skipped", file=sys.stderr)
        else:
            from rvaed.benchmarks.harness import private_jack_server

            jack = stack.enter_context(private_jack_server())
        figures = asyncio.run(_measure(args, jack))
    _print_table(figures)
    return figures


async def _measure(args, jack: str | None) -> dict:
    """The phases, with the sequencer playing every note into a JACK port when ``jack``."""
    from rvaed.control.osc import OscServer
    from rvaed.control.performance import Performance
    from rvaed.control.web.server import WebServer
    from rvaed.core.drummachine import load_drum_machine
    from rvaed.core.secret import SessionSecret
    from rvaed.engine.clock import InternalClock
    from rvaed.engine.midiout import Output
    from rvaed.engine.sequencer import Sequencer
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    decoder = Decoder(model_path(args.model))
    machine = load_drum_machine("gm", decoder.kit)
    clock = InternalClock()
    clock.set_playing(True)
    outputs = [Output(drum_machine=machine, api="jack")] if jack else []
    sequencer = Sequencer(clock, outputs, decoder.grid)
    perf = Performance(decoder, sequencer, machine, clock)
    await perf.start()
    if args.features:
        _every_feature(perf)
    table = await _table(decoder, args.direct)
    sequencer.start()
    server = OscServer(perf, None, host="127.0.0.1", port=0)
    await server.start()
    web = WebServer(perf, server.route, _PadOnly(decoder.manifest.name), SessionSecret(),
                    port=0)
    await web.start()
    figures: dict = {"model": decoder.manifest.name, "seconds": args.seconds,
                     "flood_rate": args.flood_rate, "outputs": len(outputs),
                     "features": args.features,
                     "decode": table, "rss_mb_start": _rss_mb()}
    try:
        for flood in (False, True):
            figures[f"osc{'_flood' if flood else ''}"] = await _phase(
                perf, "osc", str(server.port), args, flood, lambda: server.received)
        for flood in (False, True):
            figures[f"web{'_flood' if flood else ''}"] = await _phase(
                perf, "ws", str(web.port), args, flood, lambda: web.received)
        if jack:
            figures.update(await _midi_phases(perf, args))
    finally:
        await web.close()
        await server.close()
        sequencer.stop()
        await perf.stop()
    figures["notes_sent"] = sequencer.timing.sent[2]
    figures["rss_mb_end"] = _rss_mb()
    return figures


async def _phase(perf, kind: str, target: str, args, flood: bool, received) -> dict:
    """Run the senders for one phase and summarise what the performance measured."""
    args.progress.say(f"{kind}{' under a flood' if flood else ''}: {args.seconds:g} s of "
                      "messages")
    perf.latency.clear()
    decodes, messages, rss = perf.decodes, received(), _rss_mb()
    senders = [_sender(kind, target, args.flood_rate if flood else args.probe_rate,
                       args.seconds)]
    while any(s.poll() is None for s in senders):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    summary = perf.latency.summary()
    summary.update(messages=received() - messages, decodes=perf.decodes - decodes,
                   rss_mb_before=rss, rss_mb_after=_rss_mb())
    return summary


def _every_feature(perf) -> None:
    """Density, chance and a condition on every voice, conditions on single steps, a seed,
    4-bar phrases with fills from the busiest point around."""
    from rvaed.core.state import CHANCE, CONDITION, DENSITY

    for name in DENSITY:
        perf.set(name, 0.1)
    for name in CHANCE:
        perf.set(name, 0.7)
    for name, condition in zip(CONDITION, ("not fill", "1:2", "pre", "nei", "fill", "3:4",
                                           "not 1st", "2:2", "not pre"), strict=True):
        perf.set(name, condition)
    for step in range(0, perf.grid.steps, 3):
        perf.set_step(step % perf.decoder.kit.size, step, ("fill", "25%", "1:3")[step % 3])
    perf.set("seed", 7)
    perf.set("phrase", 4)
    perf.set("fill", 0.3)
    perf.set("fill_from", 0.15)


async def _table(decoder, direct: bool) -> str:
    """Wait for the performance to tabulate the decoder, as the daemon does; ``direct``
    then sets the table aside. What the phases decode through."""
    for _ in range(600):
        if decoder.table is not None:
            break
        await asyncio.sleep(0.05)
    if direct or decoder.table is None:
        decoder.table = None
        return "direct"
    return "table"


def _sender(kind: str, target: str, rate: float, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, kind, target, str(rate),
                             str(seconds)])


async def _midi_phases(perf, args) -> dict:
    """The MIDI phases: a controller port in another process, on the private JACK server."""
    from rvaed.control.controls import Controls
    from rvaed.control.mapfile import load_mapping
    from rvaed.control.midiin import MidiControlInput

    port = f"bench-ctl-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(f"port: {port}\nbindings:\n  - {{cc: 16, target: x}}\n")
        controls = Controls(perf, [load_mapping(path, perf.decoder.kit)])
    midi_in = MidiControlInput(controls, api="jack", poll=0.1)
    figures = {}
    try:
        await midi_in.start()
        for flood in (False, True):
            figures[f"midi{'_flood' if flood else ''}"] = await _phase(
                perf, "midi", port, args, flood, lambda: midi_in.received)
    finally:
        await midi_in.close()
    return figures


class _PadOnly:
    """The web server's daemon side for the benchmark: the snapshot's model name, no files."""

    def __init__(self, model: str) -> None:
        self.model = model

    def extras(self) -> dict:
        return {"model": self.model, "training": {"busy": False, "status": "idle",
                                                  "curve": []},
                "automation": {"status": "idle", "points": []}}

    async def upload(self, files: list[tuple[str, bytes]]) -> dict:
        raise RvaedError("the benchmark takes no uploads")

    def train(self, batch: str) -> None:
        raise RvaedError("the benchmark does not train")

    async def models(self) -> list[dict]:
        return []

    async def thumbnail(self, name: str) -> bytes:
        raise RvaedError("the benchmark has no library")

    async def rename(self, name: str, new: str) -> str:
        raise RvaedError("the benchmark has no library")

    async def capture(self, bars: int | None, coming: bool = False) -> str:
        raise RvaedError("the benchmark does not capture")

    def capture_file(self, name: str) -> Path:
        raise RvaedError("the benchmark does not capture")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _print_table(figures: dict) -> None:
    print(f"control latency, model {figures['model']} decoded {figures['decode']}, "
          f"{figures['seconds']:g} s per phase, flood {figures['flood_rate']:g} msg/s")
    print(f"{'phase':<12} {'messages':>9} {'installs':>9} {'decodes':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'RSS MB':>14}")
    for phase in ("osc", "osc_flood", "web", "web_flood", "midi", "midi_flood"):
        row = figures.get(phase)
        if not row or not row.get("count"):
            continue
        print(f"{phase:<12} {row['messages']:>9} {row['count']:>9} {row['decodes']:>8} "
              f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['max_ms']:>8.3f} "
              f"{row['rss_mb_before']:>6.1f}->{row['rss_mb_after']:<6.1f}")
    print(f"process RSS {figures['rss_mb_start']} MB at start, {figures['rss_mb_end']} MB "
          f"at end; {figures['notes_sent']} note-ons played into {figures['outputs']} "
          f"output(s) meanwhile")
