"""Tell systemd how the daemon is doing (sd_notify), without depending on libsystemd.

With ``Type=notify`` systemd waits for READY=1 before it considers rvaed started, shows STATUS=
in ``systemctl status``, restarts rvaed when WATCHDOG=1 stops arriving within WatchdogSec, and
knows a stop or reload is on purpose from STOPPING=1 / RELOADING=1. The protocol is one
datagram of ``KEY=VALUE`` lines to the unix socket in $NOTIFY_SOCKET ('@' = abstract
namespace). Outside systemd every call is a no-op, and a failing send is logged, never fatal.
"""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """A connection to systemd's notify socket (or nothing, when not run by systemd)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_seconds = _watchdog_seconds(environ)
        self._socket: socket.socket | None = None
        self._failed = False
        if self.address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one message; True when systemd got it."""
        if self._socket is None or self.address is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd at %s: %s", self.address, exc.strerror or exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        """Before re-reading the config on SIGHUP; send `ready` when done."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    async def keep_alive(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """Send WATCHDOG=1 at half the WatchdogSec interval while ``healthy()`` holds.

        Pass a check of the part that matters (e.g. the sequencer thread is alive): when it
        fails the pings stop and systemd restarts the service. Returns at once when systemd
        asked for no watchdog.
        """
        if self.watchdog_seconds is None or not self.enabled:
            return
        while True:
            if healthy():
                self.watchdog()
            else:
                log.error("not healthy: withholding the systemd watchdog ping")
            await asyncio.sleep(self.watchdog_seconds / 2)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(value: str) -> str | bytes | None:
    """The socket address from $NOTIFY_SOCKET: a path, or '@name' for the abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    if value:
        log.warning("NOTIFY_SOCKET=%s: unsupported address; not notifying systemd", value)
    return None


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """The watchdog interval systemd expects, when the watchdog is meant for this process."""
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
