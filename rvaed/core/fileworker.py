"""The one process that reads and parses users' files for the daemon, with a time limit.

A legal 1 MB MIDI file takes mido seconds to parse (2.8 s here, 8 s on a loaded machine): on
the event loop that stops OSC and SIGTERM, and even in a thread it holds the GIL the
sequencer needs every few milliseconds. So file commands (``/rvaed/groove PATH``) hand the
read and the parse to `FileWorker`: one spawned, niced process, started on first use and kept,
doing one file at a time. A file that needs more than ``seconds`` of processor time is
stopped (a timer on the worker's own CPU time, so a busy machine does not count against the
file) and refused in one line; a worker that does not answer within ``WALL_SECONDS`` at all
is killed and a fresh one starts for the next file. More than ``MAX_WAITING`` files waiting
is refused at once. Every file command shares `WORKER`, so a flood of requests queues behind
one process instead of starting one per request. The function it runs must be
importable (pickled by reference) and raise RvaedError for bad input.
"""

import asyncio
import importlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from rvaed.core.errors import RvaedError

CPU_SECONDS = 20.0  # processor time per file (1 MB of notes: 2.8 s here, ~3x that on a Pi 4)
WALL_SECONDS = 300.0  # a worker silent this long is killed (starved or stuck in the kernel)
START_SECONDS = 60.0  # spawning and importing, on a Raspberry Pi under load
MAX_WAITING = 4  # files waiting for the worker; more are refused, not queued
NICE = 10  # as the trainer: the worker gives way to the performing process


class FileWorker:
    """Runs ``function(*args)`` in the worker process; see the module docstring."""

    def __init__(self, seconds: float = CPU_SECONDS, preload: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.preload = preload  # modules imported before the clock of the first file starts
        self._process: Any = None
        self._connection: Connection | None = None
        self._waiting = 0
        self._turn = threading.Lock()

    async def run(self, name: str, function: Callable[..., Any], *args: Any) -> Any:
        """The function's result; RvaedError when it fails, is too slow or too many wait
        (``name``, the file's, starts the worker's own messages)."""
        if self._waiting >= MAX_WAITING:
            raise RvaedError(f"{name}: refused, {self._waiting} files are waiting to be read")
        self._waiting += 1
        try:
            return await asyncio.to_thread(self._run, name, function, args)
        finally:
            self._waiting -= 1

    @property
    def waiting(self) -> int:
        """Files handed to `run` and not yet done."""
        return self._waiting

    @property
    def pid(self) -> int | None:
        """The worker process's, while one runs."""
        return self._process.pid if self._process is not None else None

    def close(self) -> None:
        """Stop the worker process (a later `run` starts a new one)."""
        with self._turn:
            self._stop()

    def _run(self, name: str, function: Callable[..., Any], args: tuple) -> Any:
        with self._turn:
            connection = self._ready()
            connection.send((function, args, self.seconds))
            if not connection.poll(WALL_SECONDS):
                self._stop()
                raise RvaedError(f"{name}: refused, the file reader did not answer within "
                                 f"{WALL_SECONDS:g} s")
            try:
                failed, value = connection.recv()
            except (EOFError, OSError):
                self._stop()
                raise RvaedError(f"{name}: the file reader ended while reading it") from None
        if failed:
            raise RvaedError(value or f"{name}: refused, reading it took more than "
                                      f"{self.seconds:g} s of processor time")
        return value

    def _ready(self) -> Connection:
        if self._process is not None and self._process.is_alive():
            assert self._connection is not None
            return self._connection
        self._stop()
        context = multiprocessing.get_context("spawn")  # safe beside threads
        ours, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, self.preload), daemon=True,
                                        name="rvaed-files")
        try:
            self._process.start()
        except (OSError, RuntimeError) as exc:  # no memory or processes left, a bad __main__
            self._process = None
            raise RvaedError(f"the file reader cannot start: {exc}") from None
        finally:
            theirs.close()
        if not ours.poll(START_SECONDS):
            self._process.kill()
            raise RvaedError(f"the file reader did not start within {START_SECONDS:g} s")
        ours.recv()  # its "ready"
        self._connection = ours
        return ours

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None


def _serve(connection: Connection, preload: tuple[str, ...]) -> None:
    """The worker: one request at a time until the daemon closes the pipe (or dies)."""
    os.nice(NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    for module in preload:
        importlib.import_module(module)
    signal.signal(signal.SIGVTALRM, _over_time)
    connection.send("ready")
    while True:
        try:
            function, args, seconds = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(_answer(function, args, seconds))


class _OverTime(BaseException):
    """The processor-time limit of one file ran out (a BaseException: the parsers' own
    "except Exception" must not take it for bad data)."""


def _over_time(signum: int, frame: object) -> None:
    raise _OverTime


def _answer(function: Callable[..., Any], args: tuple, seconds: float) -> tuple[bool, Any]:
    """(failed, result or one-line reason) of one call; (True, None) when it needed more
    than ``seconds`` of CPU time."""
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        return False, function(*args)
    except _OverTime:
        return True, None
    except RvaedError as exc:
        return True, str(exc)
    except Exception as exc:  # a bug must come back as one line, not end the worker
        return True, f"{type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)


WORKER = FileWorker(preload=("rvaed.core.patternfile",))
