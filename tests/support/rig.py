"""The real rig that end-to-end tests and the soak run share: the real `rvaed run` process
with its own config and data directories, and a small model to play (the private JACK server
they play on comes from rvaed.benchmarks.harness, as the benchmarks' does).

Plain functions and classes (no pytest), so that tests/support/soak.py can run them as a script too;
a failure raises AssertionError with the daemon's log, which pytest reports as a test failure.
"""

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from rvaed.benchmarks.harness import jack_ports
from rvaed.engine.clock import now


class DaemonProcess:
    """`rvaed run` in a subprocess with its own config and data directories under ``root``."""

    def __init__(self, root: Path, port: int, verbose: bool = True, **overrides) -> None:
        self.root = root
        self.port = port
        self.verbose = verbose
        self.dirs = {name: root / name for name in ("state", "models", "inbox", "captures")}
        config = {
            "link": {"enabled": True},
            "osc": {"bind": "127.0.0.1", "port": port},
            "web": {"port": 0},  # a free port: daemons of parallel runs never collide
            "midi": {"api": "jack"},
            "dirs": {name: str(path) for name, path in self.dirs.items()},
            "training": {"settle_seconds": 0.5, "epochs": 25},
            **overrides,
        }
        self.config = root / "rvaed.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool] | None = None) -> float:
        """Start the daemon and wait until ``ready()`` (default: its virtual port exists)."""
        self.started = now()
        flags = ["-v"] if self.verbose else []
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rvaed.cli", "run", *flags, "--config", str(self.config)],
                stdout=log, stderr=log)
        wait_until(ready or (lambda: "rvaed:rvaed" in jack_ports()), 15, self)
        return self.started

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float) -> None:
        wait_until(lambda: needle in self.text(), timeout, self)

    def osc(self, address: str, *args) -> None:
        """Send from another process with python-osc (a separate client, as a phone would)."""
        code = ("from pythonosc.udp_client import SimpleUDPClient; "
                f"SimpleUDPClient('127.0.0.1', {self.port})"
                f".send_message({address!r}, {list(args)!r})")
        subprocess.run([sys.executable, "-c", code], check=True)

    def children(self) -> list[int]:
        """The daemon's child processes other than its MIDI senders (a training job ...)."""
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return [pid for pid in pids if b"rvaed.engine.sendproc" not in _cmdline(pid)]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(predicate, timeout: float, daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(
                f"rvaed run exited with {daemon.proc.returncode}:\n{daemon.text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s; daemon log:\n{daemon.text()[-3000:]}")
        time.sleep(0.05)


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it ended meanwhile
        return b""
