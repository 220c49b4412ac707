"""What a benchmark or a test runs beside the part it measures: a private JACK server, a
receiver on it, and the loads a musician's machine carries (a training job, an OSC flood).

The benchmarks and the tests (tests/conftest.py, the rigs in tests/support) share these, so a
JACK server is started, named and stopped in one way.
"""

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import numpy as np

from rvaed.core.errors import RvaedError

RATE = 48000  # the private JACK server's sample rate: the receiver stamps in its frames
PROBE = (0xBF, 102, 1)  # CC 102 (undefined) on channel 16: no benchmarked sender uses it
OSC_RATE = 2000
JACK_SLOTS = 8  # JACK2's server registry holds eight servers
LSP_TIMEOUT = 10.0  # seconds: a listing takes milliseconds, a loaded machine's under one
PR_SET_PDEATHSIG = 1
INSTALL = "Debian: jackd2; give --port where the benchmark offers it"


def wait_for(ready, timeout: float, problem: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RvaedError(problem)
        time.sleep(0.05)


def free_jack_name(prefix: str) -> str:
    """A server name not in use, from a small fixed set.

    JACK2 frees the registry slot of a killed server only when a server of the same name
    starts again, and it has eight: fresh random names would leak them one by one.
    """
    env = {**os.environ, "JACK_NO_START_SERVER": "1"}
    for slot in range(JACK_SLOTS):
        name = f"{prefix}-{slot}"
        if jack_lsp("-s", name, env=env).returncode == 1:  # no server of that name
            return name
    raise RvaedError(f"all {JACK_SLOTS} JACK servers named {prefix}-N are running")


def end_with_parent() -> None:
    """In the child before exec: SIGTERM (a clean exit) when this process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_jack(name: str, log: Path | None = None, period: int = 64,
               realtime: bool = False) -> subprocess.Popen:
    """Start ``jackd`` named ``name`` (dummy driver, 48 kHz, ``period`` frames) and wait until
    it serves. ``realtime`` asks for SCHED_FIFO (jackd carries on without it), which keeps its
    periods on time on a busy machine.

    Events through it are rounded to its period: 64 frames at 48 kHz = 1.33 ms.
    Its messages (to the file ``log``, else a nameless one) never go to a pipe: on a busy
    machine jackd reports every late cycle, and once an unread pipe is full jackd blocks
    writing to it and every client hangs.
    """
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1", "JACK_NO_START_SERVER": "1"}
    target = open(log, "w+b") if log else tempfile.TemporaryFile()  # noqa: SIM115
    with target as messages:  # jackd keeps its own descriptor of the file
        server = subprocess.Popen(
            ["jackd", "-n", name, "-R" if realtime else "--no-realtime", "-d", "dummy",
             "-r", str(RATE), "-p", str(period)],
            stdout=subprocess.DEVNULL, stderr=messages, env=env, preexec_fn=end_with_parent)
        try:
            wait_for(lambda: server.poll() is not None
                     or jack_lsp("-s", name, env=env).returncode == 0, 10,
                     "the private JACK server did not start")
        except RvaedError:
            stop_jack(server)
            raise
        if server.poll() is not None:
            messages.seek(0)
            said = [line for line in messages.read().decode(errors="replace").splitlines()
                    if line.strip() and "overruns" not in line]
            raise RvaedError(f"the private JACK server did not start: jackd said "
                             f"{' / '.join(said[:2]) or 'nothing'}")
    return server


def stop_jack(server: subprocess.Popen) -> None:
    server.terminate()
    try:  # a killed jackd stays in JACK's table of (at most 8) servers: give it time
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextlib.contextmanager
def private_jack_server(period: int = 64, realtime: bool = False,
                        prefix: str = "rvaed-bench") -> Iterator[str]:
    """A JACK server of our own (`start_jack`) for the run's duration; yields its name, also
    set as JACK_DEFAULT_SERVER."""
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        raise RvaedError(f"jackd/jack_lsp are not installed ({INSTALL})")
    name, server = _start_free_jack(prefix, period, realtime)
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        yield name
    finally:
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous
        stop_jack(server)


def _start_free_jack(prefix: str, period: int, realtime: bool,
                     tries: int = 3) -> tuple[str, subprocess.Popen]:
    """A server started under a free name; another one taken between the check and the
    start (a second run on the machine) moves it to the next name."""
    name = free_jack_name(prefix)
    try:
        return name, start_jack(name, period=period, realtime=realtime)
    except RvaedError as exc:
        if "already active" not in str(exc) or tries <= 1:
            raise
    return _start_free_jack(prefix, period, realtime, tries - 1)


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
        if shutil.which("jack_midi_dump") is None:
            raise RvaedError(f"jack_midi_dump is not installed ({INSTALL})")
        self._process = subprocess.Popen(
            ["jack_midi_dump", "-a", self.name], stdout=self._log, stderr=subprocess.DEVNULL,
            env={**os.environ, "JACK_NO_START_SERVER": "1"})
        try:
            wait_for(lambda: self.port in jack_ports() or self._process.poll() is not None,
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
        # a busy JACK server can list no ports at all for a moment
        wait_for(lambda: midiapi.match_port(port.get_ports(), self.port) is not None, 10,
                 f"{self.port} is not listed")
        port.open_port(midiapi.match_port(port.get_ports(), self.port))
        return port

    def _until_live(self) -> None:
        """Send PROBE until it is received: the port is listed before jack_midi_dump
        processes, and what arrives in between is lost. The probe is another process
        (`send_probes`): libjack keeps one server's shared memory per process, and a client
        of this process on a server that a test hangs or stops later crashed this process's
        other JACK clients."""
        probe = subprocess.Popen(
            [sys.executable, "-c", PROBE_PROCESS, f"{self.name}-probe", self.port],
            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: probe.poll() is not None
                     or any(message == PROBE for _, message in self.messages()),
                     20, f"nothing sent to {self.port} arrived")
            if probe.poll() is not None:
                raise RvaedError(f"the probe sender to {self.port} exited ({probe.returncode})")
        finally:
            if probe.stdin is not None:
                probe.stdin.close()  # it closes its port and exits
            try:
                probe.wait(10)
            except subprocess.TimeoutExpired:
                probe.kill()
                probe.wait()

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


PROBE_PROCESS = ("import sys; from rvaed.benchmarks.harness import send_probes; "
                 "send_probes(*sys.argv[1:])")


def send_probes(client: str, port: str) -> None:
    """PROBE to ``port`` every 20 ms from a JACK client named ``client`` until stdin closes."""
    from rvaed.engine import midiapi

    output = midiapi.open_client("jack", "output", client)
    wait_for(lambda: midiapi.match_port(output.get_ports(), port) is not None, 10,
             f"{port} is not listed")
    output.open_port(midiapi.match_port(output.get_ports(), port))
    try:
        while not select.select([sys.stdin], [], [], 0.02)[0]:
            output.send_message(PROBE)
    finally:
        output.close_port()
        output.delete()


def jack_lsp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """jackd2's jack_lsp with ``args``. One that hangs (its libjack client can wait on a futex
    for good when another client of the server died at the wrong moment: seen once in a
    full test run) is killed after `LSP_TIMEOUT` seconds and answers as a failed, empty
    listing (exit status 124), so that callers polling for a port simply ask again."""
    try:
        return subprocess.run(["jack_lsp", *args], capture_output=True, text=True, env=env,
                              timeout=LSP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(["jack_lsp", *args], 124, "", "")


def jack_ports() -> str:
    return jack_lsp().stdout


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


def conditions(loop: asyncio.AbstractEventLoop, saturated: bool = False
               ) -> Generator[tuple[str, Callable[[], str] | None], None, None]:
    """Yield (name, note) for idle, training and OSC flood (served on ``loop``), and with
    ``saturated`` a saturated machine, each load running while the caller measures;
    ``note()`` describes the load (None when idle)."""
    loads: list[tuple[str, Callable[[], contextlib.AbstractContextManager]]] = [
        ("idle", contextlib.nullcontext), ("training", _training),
             ("osc flood", lambda: _osc_flood(loop))]
    if saturated:
        loads.append(("saturated", lambda: _saturated(loop)))
    for name, load in loads:
        with load() as note:
            yield name, note


@contextlib.contextmanager
def _saturated(loop: asyncio.AbstractEventLoop):
    """A busy process at normal priority on every core, and ``loop`` (the daemon's own
    asyncio loop) computing in Python, holding the GIL but at each switch interval."""
    busy = asyncio.run_coroutine_threadsafe(_busy_loop(), loop)
    with contextlib.ExitStack() as stack:
        for _ in range(os.cpu_count() or 1):
            stack.enter_context(_busy_process())
        try:
            yield lambda: (f"{os.cpu_count()} busy processes at normal priority, the control "
                           f"loop computing; load average {os.getloadavg()[0]:.1f}")
        finally:
            busy.cancel()


async def _busy_loop() -> None:
    """Pure-Python work in 20 ms slices, as a decode or a big OSC bundle would be."""
    while True:
        until = time.perf_counter() + 0.02
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


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
