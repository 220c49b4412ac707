"""How close to its schedule the sequencer sends each MIDI message, under three loads.

The engine plays a dense pattern (every voice on every step, with microtiming and swing, plus
MIDI clock) at 200 BPM to a real MIDI port: the one given, or a port of a private JACK server
(dummy driver) that this benchmark starts. Each condition records the error of every message
(actual send time - scheduled time) and the sequencer thread's CPU use:
- idle: nothing else running;
- training: a real VAE training job (spawned, niced, one torch thread) on generated patterns;
- OSC flood: another process sends 2,000 OSC messages/s to a python-osc server in this process.
"""

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import numpy as np

from rvaed.core.errors import RvaedError
from rvaed.engine.sequencer import SWITCH_INTERVAL

HELP = "MIDI send-time error (p50/p99/max/late) idle, while training, under an OSC flood"
SINK = "rvaed-bench-sink"
RATE = 48000  # the private JACK server's sample rate: the receiver stamps in its frames
PROBE = (0xBF, 102, 1)  # CC 102 (undefined) on channel 16: no benchmarked sender uses it
LATE_MS = 1.0
OSC_RATE = 2000


def add_arguments(parser) -> None:
    parser.add_argument("--port", help="MIDI output (part of its name); default: a private "
                        "JACK server with the dummy driver")
    parser.add_argument("--api", default="auto", help="MIDI API (default: jack for the "
                        "private server, else auto)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per condition (default 10)")
    parser.add_argument("--bpm", type=float, default=200.0, help="tempo (default 200)")
    parser.add_argument("--spin", type=float, help="ms of busy-waiting before each deadline "
                        "(default: the sequencer's, 0.3 under SCHED_FIFO, else 1)")
    parser.add_argument("--switch-interval", type=float, default=SWITCH_INTERVAL,
                        help="sys.setswitchinterval for this process; 0 leaves Python's "
                        f"default (default {SWITCH_INTERVAL}, the sequencer's)")


def run(args) -> dict:
    with contextlib.ExitStack() as stack:
        port, api = args.port, args.api
        if port is None:
            stack.enter_context(private_jack_server())
            port, api = SINK, "jack"
            stack.enter_context(Sink(SINK))
        figures = _measure(port, api, args, stack)
    _print(figures)
    return figures


def _measure(port: str, api: str, args, stack: contextlib.ExitStack) -> dict:
    from rvaed.core.drummachine import load_drum_machine
    from rvaed.core.kit import load_kit
    from rvaed.engine.clock import InternalClock
    from rvaed.engine.midiout import Output
    from rvaed.engine.sequencer import Sequencer

    kit = load_kit()
    machine = load_drum_machine("gm", kit)
    clock = InternalClock(args.bpm)
    output = Output(port, machine, api=api, clock_out=True, poll=0.05)
    sequencer = Sequencer(clock, [output], spin=args.spin and args.spin / 1000,
                          switch_interval=args.switch_interval or None)
    sequencer.install(dense_schedule(kit, machine))
    sequencer.start()
    stack.callback(sequencer.stop)
    wait_for(lambda: output.connected, 10, f"no MIDI port matching {port!r}")
    clock.set_playing(True)
    time.sleep(0.5)
    figures = {"bpm": args.bpm, "seconds": args.seconds, "port": output.name, "spin_ms": args.spin,
               "sched_fifo": None, "switch_interval": args.switch_interval or None,
               "conditions": {}}
    loop = stack.enter_context(control_loop())
    for name, note in stack.enter_context(contextlib.closing(conditions(loop))):
        figures["conditions"][name] = send_errors(sequencer, args.seconds)
        if note:
            figures["conditions"][name]["load"] = note()
    figures["sched_fifo"] = sequencer.realtime
    figures["spin_ms"] = sequencer.spin * 1000
    return figures


@contextlib.contextmanager
def control_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop in its own thread, as the daemon's main loop beside the sequencer: the
    OSC flood is served on it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="control loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def conditions(loop: asyncio.AbstractEventLoop
               ) -> Generator[tuple[str, Callable[[], str] | None], None, None]:
    """Yield (name, note) for idle, training and OSC flood (served on ``loop``), each load
    running while the caller measures; ``note()`` describes the load (None when idle)."""
    loads = (("idle", contextlib.nullcontext), ("training", _training),
             ("osc flood", lambda: _osc_flood(loop)))
    for name, load in loads:
        with load() as note:
            yield name, note


def send_errors(sequencer, seconds: float) -> dict:
    """Let ``sequencer`` play ``seconds``; its own record of every message's send time
    against its schedule, summarised, and its CPU use."""
    sequencer.timing.clear()
    cpu0, process0, wall0 = sequencer.cpu_time(), time.process_time(), time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - wall0
    rows = sequencer.timing.rows()
    return {
        "messages": len(rows),
        **distribution((rows[:, 1] - rows[:, 0]) * 1e3, 4),
        "sequencer_cpu_percent": round(100 * (sequencer.cpu_time() - cpu0) / wall, 2),
        "process_cpu_percent": round(100 * (time.process_time() - process0) / wall, 2),
    }


def distribution(errors_ms: np.ndarray, digits: int) -> dict:
    """p50/p99/max/min of timing errors in milliseconds, and how many are late."""
    return {"p50_ms": round(float(np.percentile(errors_ms, 50)), digits),
            "p99_ms": round(float(np.percentile(errors_ms, 99)), digits),
            "max_ms": round(float(errors_ms.max()), digits),
            "min_ms": round(float(errors_ms.min()), digits),
            "late": int(np.count_nonzero(errors_ms > LATE_MS))}


def dense_schedule(kit, machine):
    """Every voice on every step, offsets spread over +-half a step (seeded), light swing."""
    from rvaed.core.pattern import Grid, Pattern
    from rvaed.engine.schedule import Playback, build_schedule

    grid = Grid()
    rng = np.random.default_rng(0)
    shape = (kit.size, grid.steps)
    pattern = Pattern(np.ones(shape), rng.uniform(0.3, 1.0, shape), rng.uniform(-0.5, 0.5, shape))
    return build_schedule(pattern, grid, Playback(swing=0.55), machine)


def wait_for(ready, timeout: float, problem: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RvaedError(problem)
        time.sleep(0.05)


@contextlib.contextmanager
def private_jack_server(period: int = 64, realtime: bool = False) -> Iterator[str]:
    """A JACK server of our own (dummy driver, 48 kHz, ``period`` frames) for the run's
    duration; yields its name, also set as JACK_DEFAULT_SERVER. ``realtime`` asks for
    SCHED_FIFO (jackd carries on without it), which keeps its periods on time on a busy
    machine."""
    if shutil.which("jackd") is None or shutil.which("jack_midi_dump") is None:
        raise RvaedError("jackd/jack_midi_dump are not installed (Debian: jackd2); "
                         "give --port where the benchmark offers it")
    name = f"rvaed-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1", "JACK_NO_START_SERVER": "1"}
    # its messages go to a file: jackd reports every late cycle, and a full pipe would block it
    messages = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        ["jackd", "-n", name, "-R" if realtime else "--no-realtime", "-d", "dummy",
         "-r", str(RATE), "-p", str(period)],
        stdout=subprocess.DEVNULL, stderr=messages, env=env)
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        wait_for(lambda: server.poll() is not None or subprocess.run(
            ["jack_lsp", "-s", name], capture_output=True, env=env).returncode == 0, 10,
            "the private JACK server did not start")
        if server.poll() is not None:
            messages.seek(0)
            said = [line for line in messages.read().decode(errors="replace").splitlines()
                    if line.strip() and "overruns" not in line]
            raise RvaedError(f"the private JACK server did not start: jackd said "
                             f"{' / '.join(said[:2]) or 'nothing'}")
        yield name
    finally:
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous
        messages.close()
        server.terminate()
        try:  # a killed jackd stays in JACK's table of (at most 8) servers: give it time
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Sink:
    """A JACK MIDI input port (client ``name``, port ``name:input``) in another process:
    jackd2's jack_midi_dump, a third-party receiver that stamps every message with the JACK
    frame it arrived in. It writes to a file read only afterwards, so receiving takes nothing
    from this process while it is measured. A context manager: the port exists inside."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = f"{name}:input"
        # read after the receiver stopped (and while it runs); closed with this object
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "Sink":
        self._process = subprocess.Popen(
            ["jack_midi_dump", "-a", self.name], stdout=self._log, stderr=subprocess.DEVNULL,
            env={**os.environ, "JACK_NO_START_SERVER": "1"})
        try:
            wait_for(lambda: self.port in _jack_ports() or self._process.poll() is not None,
                     30, f"the receiving port {self.port} did not appear")
            if self._process.poll() is not None:
                raise RvaedError(f"jack_midi_dump could not open {self.port}")
            self._until_live()
        except BaseException:
            self.__exit__()
            raise
        return self

    def connect(self, client: str):
        """A python-rtmidi JACK output named ``client`` connected to this receiver."""
        from rvaed.engine import midiapi

        port = midiapi.open_client("jack", "output", client)
        port.open_port(midiapi.match_port(port.get_ports(), self.port))
        return port

    def _until_live(self) -> None:
        """Send PROBE until it is received: the port is listed before jack_midi_dump
        processes, and what arrives in between is lost."""
        probe = self.connect(f"{self.name}-probe")

        def received() -> bool:
            probe.send_message(PROBE)
            time.sleep(0.02)
            return any(message == PROBE for _, message in self.messages())

        try:
            wait_for(received, 10, f"nothing sent to {self.port} arrived")
        finally:
            probe.close_port()
            probe.delete()

    def __exit__(self, *_exc) -> None:
        if self._process is None:  # never entered
            return
        self._process.terminate()  # it flushes what it printed on SIGTERM
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def messages(self) -> list[tuple[float, tuple[int, ...]]]:
        """(seconds since the receiver started, message bytes) of everything received so far,
        as `jack_midi_dump -a` printed it ("  5632: 99 24 64 note on ...")."""
        self._log.seek(0)
        received = []
        for line in self._log.read().decode(errors="replace").splitlines():
            frame, _, rest = line.partition(":")
            data = []
            for token in rest.split():
                if len(token) != 2 or any(c not in "0123456789abcdef" for c in token):
                    break
                data.append(int(token, 16))
            if frame.strip().isdigit() and data:
                received.append((int(frame) / RATE, tuple(data)))
        return received


def _jack_ports() -> str:
    return subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout


@contextlib.contextmanager
def _training():
    """A real training job on the other core; falls back to a busy process without torch."""
    try:
        import torch  # noqa: F401  (only to learn whether training can run here)
    except ImportError:
        with _busy_process() as note:
            yield note
        return
    from rvaed.training.job import TrainJob
    from rvaed.training.options import TrainOptions

    with tempfile.TemporaryDirectory() as folder:
        files = _pattern_files(Path(folder))
        job = TrainJob.start(files, Path(folder) / "model",
                             TrainOptions(epochs=100000, patience=None, threads=1))
        try:
            wait_for(lambda: job.poll() or job.last is not None, 60,
                      "the training job did not start")
            if job.finished:
                raise RvaedError(f"the training job ended early: {job.reason}")

            def note() -> str:
                job.poll()
                return (f"VAE training (pid {job.pid}, niced, 1 torch thread), at epoch "
                        f"{job.last.epoch}" + (f", ended: {job.reason}" if job.reason else ""))

            yield note
        finally:
            job.cancel()
            job.wait(30)


def _pattern_files(folder: Path) -> list[Path]:
    """64 random two-bar drum patterns as MIDI files: training data made on the spot."""
    from rvaed.core.kit import load_kit
    from rvaed.core.pattern import Grid, Pattern
    from rvaed.core.patternfile import save_pattern

    kit, grid, rng = load_kit(), Grid(), np.random.default_rng(1)
    paths = []
    for index in range(64):
        shape = (kit.size, grid.steps)
        pattern = Pattern((rng.random(shape) < 0.25).astype(np.float32),
                          rng.uniform(0.3, 1.0, shape), rng.uniform(-0.8, 0.8, shape))
        paths.append(folder / f"pattern{index:02d}.mid")
        save_pattern(pattern, paths[-1], kit, grid)
    return paths


def _spin_forever() -> None:
    while True:
        pass


@contextlib.contextmanager
def _busy_process():
    process = multiprocessing.get_context("spawn").Process(target=_spin_forever, daemon=True)
    process.start()
    try:
        yield lambda: f"busy process (pid {process.pid}; torch is not installed)"
    finally:
        process.kill()
        process.join()


def _send_osc(port: int, rate: int, seconds: float) -> None:
    """The flooding client (another process): /rvaed/xy at ``rate`` messages per second."""
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        wait = start + index / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        client.send_message("/rvaed/xy", [index % 100 / 100, 0.5])


@contextlib.contextmanager
def _osc_flood(loop: asyncio.AbstractEventLoop):
    """A python-osc server on ``loop`` (asyncio, as the daemon) under a 2,000/s flood from
    another process."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import AsyncIOOSCUDPServer

    received, state = [0], {}

    def handle(address: str, *values) -> None:
        received[0] += 1
        state[address] = values

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(handle)
    # python-osc asks for a BaseEventLoop where any asyncio loop does
    server = AsyncIOOSCUDPServer(("127.0.0.1", 0), dispatcher, loop)  # type: ignore[arg-type]
    transport, _ = asyncio.run_coroutine_threadsafe(server.create_serve_endpoint(),
                                                    loop).result(10)
    port = transport.get_extra_info("sockname")[1]
    sender = multiprocessing.get_context("spawn").Process(
        target=_send_osc, args=(port, OSC_RATE, 3600.0), daemon=True)
    sender.start()
    wait_for(lambda: received[0] > 0, 30, "no OSC message arrived")
    counted = (received[0], time.perf_counter())
    try:
        yield lambda: (f"python-osc flood at {OSC_RATE}/s from another process: "
                       f"{(received[0] - counted[0]) / (time.perf_counter() - counted[1]):.0f}"
                       " received/s")
    finally:
        sender.kill()
        sender.join()
        loop.call_soon_threadsafe(transport.close)


def _print(figures: dict) -> None:
    print(f"MIDI send-time error at {figures['bpm']:g} BPM, dense pattern + MIDI clock, "
          f"{figures['seconds']:g} s per condition, port {figures['port']}, "
          f"spin {figures['spin_ms']:g} ms, "
          f"SCHED_FIFO {'granted' if figures['sched_fifo'] else 'refused'}, "
          f"switch interval {figures['switch_interval'] or 'Python default'}")
    print(f"{'condition':<10} {'messages':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{f'late>{LATE_MS:g}ms':>10} {'seq CPU%':>9} {'proc CPU%':>9}")
    for name, row in figures["conditions"].items():
        print(f"{name:<10} {row['messages']:>8} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
              f"{row['max_ms']:>8.3f} {row['late']:>10} {row['sequencer_cpu_percent']:>9.1f} "
              f"{row['process_cpu_percent']:>9.1f}")
    print_loads(figures["conditions"])


def print_loads(conditions: dict) -> None:
    """What ran beside the measurement in each condition."""
    for name, row in conditions.items():
        if "load" in row:
            print(f"  {name}: {row['load']}")
