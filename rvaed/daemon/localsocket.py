"""The CLI's way into a running daemon: a UNIX socket in its state directory, mode 0600.

A UDP source address proves nothing, a file permission does: only the daemon's own user can
connect (the socket is made in a private folder, chmod 0600, then renamed into place, and the
peer's uid is checked with SO_PEERCRED), so what arrives here needs no secret. It carries the
commands that touch files from this machine: today `rvaed train --daemon FILES`.

The protocol is JSON lines. The client sends one request, ``{"train": [PATH, ...]}`` (absolute
paths, inside the daemon's data directories as for OSC); the daemon answers ``{"accepted":
STATUS}`` or ``{"refused": REASON}``, then ``{"progress": 0..1, "status": TEXT}`` per epoch,
then ``{"done": MODEL}`` or ``{"failed": REASON}``. `ask_to_train` is the client.
"""

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rvaed.core.errors import RvaedError
from rvaed.daemon import routes
from rvaed.daemon.config import DaemonConfig

log = logging.getLogger(__name__)

SOCKET_NAME = "rvaed.sock"
MAX_REQUEST = 1 << 20  # bytes of one request line
REQUEST_SECONDS = 10.0  # a client that sends no request in this time is dropped
MAX_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
STARTED = "training "  # how the trainer's first status of a run begins (rvaed.daemon.supervisor)
FINAL = ("done: ", "failed: ")  # and its last


def socket_path(config: DaemonConfig) -> Path:
    return config.dirs.state / SOCKET_NAME


class LocalSocket:
    """The daemon's end: serves requests for ``daemon`` (a rvaed.daemon.service.Daemon)."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.path = socket_path(daemon.config)
        self._server: asyncio.AbstractServer | None = None

    @classmethod
    async def open(cls, daemon) -> "LocalSocket | None":
        """Listening, or None (logged: the CLI cannot reach the daemon, OSC still works)."""
        local = cls(daemon)
        try:
            await local.start()
        except (RvaedError, OSError) as exc:
            log.error("local socket %s: %s; `rvaed train --daemon` cannot reach this daemon",
                      local.path, exc)
            return None
        return local

    async def start(self) -> None:
        if len(os.fsencode(self.path)) > MAX_PATH:
            raise RvaedError(f"path longer than {MAX_PATH} bytes (set a shorter dirs.state)")
        if self.path.is_socket() or self.path.exists():
            if await _answers(self.path):
                raise RvaedError("another rvaed is listening there (same dirs.state)")
            self.path.unlink()  # left by a daemon that was killed
        self._server = await asyncio.start_unix_server(self._client, sock=_private(self.path),
                                                       limit=MAX_REQUEST)
        log.info("local socket: %s (for `rvaed train --daemon`)", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer.get_extra_info("socket")):
                raise RvaedError("refused: another user")
            request = json.loads(await asyncio.wait_for(reader.readline(), REQUEST_SECONDS))
            if not isinstance(request, dict) or not isinstance(request.get("train"), list):
                raise RvaedError('expected a request {"train": [PATH, ...]}')
            await self._train(tuple(request["train"]), writer)
        except (TimeoutError, RvaedError, ValueError) as exc:
            await _answer(writer, refused=str(exc) or "no request")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left; a training it started goes on
        finally:
            writer.close()

    async def _train(self, paths: tuple, writer: asyncio.StreamWriter) -> None:
        updates: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        watchers: list[Callable[[float, str], None]] = self.daemon.training_watchers
        watchers.append(lambda fraction, status: updates.put_nowait((fraction, status)))
        watch = watchers[-1]
        try:
            self.daemon.train(routes.train_files(self.daemon, paths))
            _, status = updates.get_nowait() if not updates.empty() else (0.0, "not started")
            if not status.startswith(STARTED):  # the daemon reported why, e.g. one is running
                raise RvaedError(status)
            await _answer(writer, accepted=status)
            await self._follow(updates, writer)
        finally:
            watchers.remove(watch)

    @staticmethod
    async def _follow(updates: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        while True:
            fraction, status = await updates.get()
            final = next((f for f in FINAL if status.startswith(f)), None)
            if final is not None:
                await _answer(writer, **{final[:-2]: status[len(final):]})
                return
            await _answer(writer, progress=fraction, status=status)


async def _answer(writer: asyncio.StreamWriter, **fields) -> None:
    writer.write((json.dumps(fields) + "\n").encode())
    await writer.drain()


def _private(path: Path) -> socket.socket:
    """A listening socket at ``path`` that only this user can ever connect to."""
    folder = Path(tempfile.mkdtemp(prefix=".sock.", dir=path.parent))  # 0700
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(folder / SOCKET_NAME))
        os.chmod(folder / SOCKET_NAME, 0o600)
        os.rename(folder / SOCKET_NAME, path)
        sock.listen(8)
    except OSError:
        sock.close()
        raise
    finally:
        with contextlib.suppress(OSError):
            (folder / SOCKET_NAME).unlink()
        folder.rmdir()
    sock.setblocking(False)
    return sock


def _same_user(sock: socket.socket | None) -> bool:
    """The peer runs as this user (or root); True where SO_PEERCRED is missing (macOS: the
    socket's 0600 mode is the check there)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return sock is not None
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option,
                                                    struct.calcsize("3i")))
    return uid in (os.getuid(), 0)


async def _answers(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True


# -- the client ------------------------------------------------------------------------------

def ask_to_train(path: Path, files: list[str]) -> Iterator[dict]:
    """Ask the daemon listening at ``path`` to train on ``files``: its answers, one by one
    (the last is done, failed or refused). A daemon that is not there is a one-line error."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise RvaedError(f"no rvaed is listening at {path} ({exc.strerror or exc}): "
                             "is `rvaed run` running, with this state directory?") from None
        sock.sendall((json.dumps({"train": files}) + "\n").encode())
        with sock.makefile("r", encoding="utf-8") as answers:
            for line in answers:
                yield json.loads(line)
