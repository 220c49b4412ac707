"""Start-up and memory of the real daemon: `rvaed run` to its first note, and RSS while playing.

Each run spawns `rvaed run` with a configuration of its own (fresh state and model directories,
so the shipped starter model plays; OSC on 127.0.0.1 at a free port; MIDI to a receiving JACK
port of a private JACK server; Ableton Link on only inside a network namespace whose only
interface is loopback, otherwise off) and times from the spawn to the first note-on at the
receiver. Both moments are stamped by the receiver: a marker message (the receiver's probe,
sent last) reaches it just before the spawn, so the figure is what a drum machine waits, to
within one JACK period. It includes the musical wait from the loop start to the pattern's
first hit.

The last run keeps playing: its resident memory (VmRSS) is read every few seconds and reported
at 10 s and at the end (60 s by default), with the growth between them.
"""

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from rvaed.benchmarks.harness import PROBE, Sink, private_jack_server, wait_for
from rvaed.benchmarks.progress import Progress
from rvaed.core.errors import RvaedError
from rvaed.core.midi import NOTE_ON

HELP = "`rvaed run` to the first note (p50/max over runs) and its memory while playing"
EARLY_RSS = 10.0  # seconds after the spawn of the first memory figure
RSS_EVERY = 2.0


def add_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="daemon starts timed (default 5)")
    parser.add_argument("--rss-seconds", type=float, default=60.0,
                        help="how long the last run plays while its memory is read "
                             "(default 60; the first figure is taken at 10 s or half of it)")


def run(args) -> dict:
    link = only_loopback()
    figures: dict = {"runs": args.runs, "link": link, "first_note_s": [], "memory": {}}
    with private_jack_server(), tempfile.TemporaryDirectory() as folder:
        progress = Progress("startup")
        for index in range(args.runs):
            last = index == args.runs - 1
            progress.say(f"run {index + 1} of {args.runs}: rvaed run to the first note"
                         + (f", then {args.rss_seconds:g} s of memory" if last else ""))
            with Sink(f"startup-sink-{index}") as sink:
                daemon, spawned, first = _start(Path(folder) / f"run{index}", sink, link)
                try:
                    figures["first_note_s"].append(round(first, 3))
                    if last:
                        figures["memory"] = _memory(daemon.pid, spawned, args.rss_seconds)
                finally:
                    _stop(daemon)
    times = np.array(figures["first_note_s"])
    figures.update(first_note_p50_s=round(float(np.median(times)), 3),
                   first_note_max_s=round(float(times.max()), 3))
    _print(figures)
    return figures


def only_loopback() -> bool:
    """True inside a network namespace whose only interface is loopback: the one place where
    this benchmark may enable Ableton Link (it multicasts on every interface)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


def _start(root: Path, sink: Sink, link: bool) -> tuple[subprocess.Popen, float, float]:
    """Spawn the daemon playing to ``sink``: the process, when it was spawned (monotonic
    clock) and the seconds from the spawn to its first note-on at ``sink``."""
    root.mkdir()
    config = root / "rvaed.yaml"
    config.write_text(yaml.safe_dump({
        "link": {"enabled": link},
        "osc": {"bind": "127.0.0.1", "port": _free_udp_port()},
        "midi": {"api": "jack", "outputs": [{"port": sink.name, "virtual": False}]},
        "dirs": {name: str(root / name) for name in ("state", "models", "inbox", "captures")},
    }))
    marker = sink.connect("startup-marker")
    log = open(root / "daemon.log", "wb")  # noqa: SIM115 (the daemon writes it while running)
    try:
        marker.send_message(PROBE)
        spawned = time.monotonic()
        daemon = subprocess.Popen([sys.executable, "-m", "rvaed.cli", "run", "--config",
                                   str(config)], stdout=log, stderr=log)
    finally:
        log.close()
        time.sleep(0.05)  # the marker leaves in JACK's next period
        marker.close_port()
        marker.delete()
    try:
        wait_for(lambda: daemon.poll() is not None or _first_note(sink) is not None, 30,
                 "rvaed run played no note within 30 s")
        if daemon.poll() is not None or (first := _first_note(sink)) is None:
            tail = (root / "daemon.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RvaedError(f"rvaed run exited with {daemon.returncode}: {' | '.join(tail)}")
        marked = max(t for t, message in sink.messages() if message == PROBE)  # the last one
    except BaseException:
        _stop(daemon)
        raise
    return daemon, spawned, first - marked


def _first_note(sink: Sink) -> float | None:
    return next((t for t, message in sink.messages()
                 if message[0] & 0xF0 == NOTE_ON and len(message) == 3 and message[2] > 0),
                None)


def _memory(pid: int, started: float, seconds: float) -> dict:
    """VmRSS of process ``pid`` every few seconds until ``seconds`` after ``started``."""
    early_at = min(EARLY_RSS, seconds / 2)
    samples: list[tuple[float, float]] = []
    while (age := time.monotonic() - started) < seconds:
        samples.append((round(age, 1), _rss_mb(pid)))
        time.sleep(min(RSS_EVERY, max(0.0, seconds - age)))
    samples.append((round(time.monotonic() - started, 1), _rss_mb(pid)))
    early = next(rss for age, rss in samples if age >= early_at)
    end = samples[-1][1]
    return {"samples": samples, "early_at_s": early_at, "rss_mb_early": early,
            "rss_mb_end": end, "rss_mb_max": max(rss for _, rss in samples),
            "growth_percent": round(100 * (end - early) / early, 1),
            "shared_mb_end": _rss_mb(pid, "RssShmem:")}


def _rss_mb(pid: int, field: str = "VmRSS:") -> float:
    """A memory figure of /proc/PID/status in MB. RssShmem is shared memory: with JACK, the
    server's segments that every client maps, counted in VmRSS too."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return round(int(line.split()[1]) / 1024, 1)
    raise RvaedError(f"no {field} for process {pid}")


def _stop(daemon: subprocess.Popen) -> None:
    """SIGTERM (the daemon silences every note and saves its state), then wait."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _print(figures: dict) -> None:
    print(f"rvaed run -> first note-on at the receiver, {figures['runs']} runs, Link "
          f"{'on (loopback-only network namespace)' if figures['link'] else 'off'}: "
          f"p50 {figures['first_note_p50_s']:.3f} s, max {figures['first_note_max_s']:.3f} s "
          f"({', '.join(f'{t:.3f}' for t in figures['first_note_s'])})")
    memory = figures["memory"]
    if memory:
        print(f"daemon RSS while playing: {memory['rss_mb_early']} MB at "
              f"{memory['early_at_s']:g} s, {memory['rss_mb_end']} MB at "
              f"{memory['samples'][-1][0]:g} s (growth {memory['growth_percent']:+.1f}%), "
              f"max {memory['rss_mb_max']} MB, of which shared memory (JACK's segments) "
              f"{memory['shared_mb_end']} MB at the end")
