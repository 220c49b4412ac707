"""Keep the performance state across restarts: atomic JSON saves, debounced, and a safe restore.

A power cut on a Raspberry Pi must never leave a half-written state file, and a state file that
is damaged anyway must never stop the music: it is set aside (renamed *.corrupt-TIMESTAMP) with
a warning and the daemon starts from defaults. The store holds plain dicts; converting them to
and from the state dataclass is the caller's business.
"""

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

from rvaed.core.atomic import write_atomic

log = logging.getLogger(__name__)




def set_aside(path: Path, reason: str) -> Path | None:
    """Rename a damaged file to ``NAME.corrupt-YYYYmmdd-HHMMSS`` (kept for a post-mortem)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    try:
        path.rename(target)
    except OSError as exc:
        log.warning("%s: %s; could not set it aside: %s", path, reason, exc.strerror or exc)
        return None
    log.warning("%s: %s; set aside as %s, starting from defaults", path, reason, target.name)
    return target


class StateStore:
    """One JSON file holding a dict: `load` at start, `save_soon` on change, `flush` at exit.

    Saves run in a worker thread (an fsync on an SD card can take tens of milliseconds, which
    the event loop must not wait for); a burst of changes within ``debounce`` seconds is
    written once, with the newest data.
    """

    def __init__(self, path: Path, debounce: float = 1.0) -> None:
        self.path = Path(path)
        self.debounce = debounce
        self._pending: bytes | None = None
        self._task: asyncio.Task | None = None
        self._writing = False
        self._write_lock = threading.Lock()

    def load(self) -> dict | None:
        """The saved dict; None when there is none or it is unusable (then set aside)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a crash mid-save; the old file is intact
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s: cannot read: %s; starting from defaults", self.path,
                        exc.strerror or exc)
            return None
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            set_aside(self.path, f"not valid JSON ({exc})")
            return None
        if not isinstance(data, dict):
            set_aside(self.path, f"expected a JSON object, found {type(data).__name__}")
            return None
        return data

    def save(self, data: dict) -> None:
        """Write ``data`` now (blocking); for the last save at exit or outside an event loop."""
        self._write(_encode(data))

    def save_soon(self, data: dict) -> None:
        """Remember ``data`` and write it after ``debounce`` seconds unless newer data comes.

        Must be called from the event loop's thread; the data is encoded now, so the caller
        may go on changing its own objects.
        """
        self._pending = _encode(data)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Write what is pending now and wait until it is on disk."""
        task = self._task
        if task is not None and not task.done():
            if self._writing:
                await task  # it writes what is pending too
            else:
                task.cancel()
        await self._write_pending()

    async def _drain(self) -> None:
        await asyncio.sleep(self.debounce)
        await self._write_pending()

    async def _write_pending(self) -> None:
        self._writing = True
        try:
            while self._pending is not None:
                data, self._pending = self._pending, None
                try:
                    await asyncio.to_thread(self._write, data)
                except OSError as exc:
                    log.error("%s: cannot save state: %s", self.path, exc.strerror or exc)
        finally:
            self._writing = False

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, data)


def _encode(data: dict) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()
