"""The inbox: a folder a musician drops MIDI files into, the headless form of drag and drop.

Polled rather than watched (no inotify dependency, and it works on network shares): once the
folder has settled — no file added, removed, grown or touched for ``settle_seconds`` — the MIDI
files in it (folders of them too) are moved to ``taken/YYYYmmdd-HHMMSS/`` inside the inbox and
handed to a callback, which starts training on them. Files that are not MIDI, too large, or
unreadable (FIFOs and devices among them: only regular files are opened, without blocking)
are reported once and left where they are; they never stop anything. Folders are walked
iteratively to `rvaed.core.reading.MAX_DEPTH` levels; names are logged escaped (one log
line per event, whatever a name holds).

While training cannot start (``blocked`` says why: one is running, or torch is not
installed), nothing is taken: the files stay where they were dropped, the reason is logged
once, and they are taken as soon as training can start (a callback that returns False after
all, because a training began meanwhile, gets them put back). `update` points the inbox at another
folder (SIGHUP); the switch happens at the start of the next poll, so one poll never mixes two
folders.
"""

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rvaed.core.errors import RvaedError
from rvaed.core.midifile import MIDI_SUFFIXES
from rvaed.core.names import shown
from rvaed.core.reading import read_regular, walk
from rvaed.daemon.policy import FilePolicy

log = logging.getLogger(__name__)

TAKEN = "taken"
MIDI_MAGIC = b"MThd"

Signature = frozenset[tuple[str, int, int]]


@dataclass(frozen=True)
class Refused:
    """A file the inbox will not take, and why (shown in the log and sent as OSC feedback)."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Batch:
    """What one settled inbox gave: the taken files (at their new place) and the refused."""

    files: tuple[Path, ...]
    refused: tuple[Refused, ...]


class Inbox:
    """Polls ``folder``; `poll` does one step, `run` polls forever and calls ``on_batch``."""

    def __init__(self, folder: Path, settle_seconds: float, policy: FilePolicy,
                 on_batch: Callable[[Batch], Awaitable[bool | None] | bool | None],
                 poll_seconds: float = 0.5,
                 blocked: Callable[[], str | None] = lambda: None) -> None:
        self.folder = self._next_folder = Path(folder)
        self.settle_seconds = settle_seconds
        self.policy = policy
        self.on_batch = on_batch
        self.poll_seconds = poll_seconds
        self.blocked = blocked  # why training cannot start now (None: it can)
        self._waiting: str | None = None  # the reason last logged for leaving files
        self._seen: Signature = frozenset()
        self._changed_at = time.monotonic()
        self._handled: Signature = frozenset()
        self._reported: set[tuple[str, int, int]] = set()

    async def run(self) -> None:
        """Poll until cancelled; the file system work runs in a thread, off the event loop."""
        while True:
            batch = await asyncio.to_thread(self.poll, self.blocked())
            if batch is not None:
                try:
                    result = self.on_batch(batch)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception:
                    log.exception("inbox: handling %d file(s) failed", len(batch.files))
                else:
                    if result is False:  # refused after all (a training began meanwhile)
                        await asyncio.to_thread(self.give_back, batch)
            await asyncio.sleep(self.poll_seconds)

    def update(self, folder: Path, settle_seconds: float) -> None:
        """Watch ``folder`` (from the next poll on) and wait ``settle_seconds`` from now on."""
        self._next_folder = Path(folder)
        self.settle_seconds = settle_seconds

    def poll(self, blocked: str | None = None) -> Batch | None:
        """Look once; a Batch when the folder has settled with something new in it and
        training can start (``blocked`` None; else the files wait and the reason is logged)."""
        self._switch_folder()
        try:
            return self._poll(blocked)
        except OSError as exc:
            log.warning("inbox %s: cannot read: %s", shown(self.folder), exc.strerror or exc)
            return None

    def _switch_folder(self) -> None:
        folder = self._next_folder
        if folder != self.folder:
            self.folder, self._seen, self._handled = folder, frozenset(), frozenset()
            self._reported.clear()
            log.info("inbox: now watching %s", shown(folder))

    def _poll(self, blocked: str | None) -> Batch | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        files = self._scan()
        signature = frozenset(files)
        now = time.monotonic()
        if signature != self._seen:
            self._seen, self._changed_at = signature, now
            return None
        if signature == self._handled or now - self._changed_at < self.settle_seconds:
            return None
        if self._wait(blocked, len(files)):
            return None
        batch = self._take(files)
        self._handled = self._seen = frozenset(self._scan())
        self._reported &= self._seen  # forget files that are gone: memory stays flat
        return batch if batch.files or batch.refused else None

    def _wait(self, blocked: str | None, count: int) -> bool:
        """True while training cannot start; the reason is logged once per reason."""
        if blocked is not None and blocked != self._waiting:
            log.warning("inbox: %d file(s) left in %s until training can start: %s", count,
                        shown(self.folder), blocked)
        self._waiting = blocked
        return blocked is not None

    def _scan(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime) of every file below the inbox except taken/."""
        found = []
        for directory, names in self._walk():
            for name in names:
                path = os.path.join(directory, name)
                try:
                    stat = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                relative = os.path.relpath(path, self.folder)
                found.append((relative, stat.st_size, stat.st_mtime_ns))
        return found

    def _take(self, files: list[tuple[str, int, int]]) -> Batch:
        """Move the good MIDI files into a fresh taken/ folder; report the rest once."""
        good, refused, total = [], [], 0
        for entry in sorted(files):
            reason = self._refusal(entry)
            if reason is None and total + entry[1] > self.policy.max_request_bytes:
                reason = f"the files together exceed limits.max_request_bytes ({total} so far)"
            if reason is None:
                good.append(entry[0])
                total += entry[1]
            elif entry not in self._reported:
                self._reported.add(entry)
                refused.append(Refused(self.folder / entry[0], reason))
                log.warning("inbox: refused %s: %s", shown(entry[0]), reason)
        taken = self._move(good) if good else ()
        if taken:
            log.info("inbox: took %d MIDI file(s) into %s", len(taken),
                     shown(taken[0].parents[0]))
        return Batch(tuple(taken), tuple(refused))

    def _refusal(self, entry: tuple[str, int, int]) -> str | None:
        relative = entry[0]
        path = self.folder / relative
        if path.is_symlink() or not path.is_file():
            return "not a regular file"
        if not relative.lower().endswith(MIDI_SUFFIXES):
            return f"not a MIDI file (expected a name ending in {', '.join(MIDI_SUFFIXES)})"
        try:
            magic = read_regular(path, self.policy.check_size(path))[:len(MIDI_MAGIC)]
        except RvaedError as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read: {exc.strerror or exc}"
        if magic != MIDI_MAGIC:
            return "not a standard MIDI file (it does not start with MThd)"
        return None

    def _move(self, relatives: list[str]) -> list[Path]:
        destination = self._fresh_batch_folder()
        moved = []
        for relative in relatives:
            target = destination / relative
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                (self.folder / relative).rename(target)
            except OSError as exc:
                log.warning("inbox: cannot take %s: %s", shown(relative), exc.strerror or exc)
                continue
            moved.append(target)
        self._remove_empty_folders()
        return moved

    def give_back(self, batch: Batch) -> None:
        """Put the files of ``batch`` back where they were dropped (taken for a training that
        could not start after all); they are taken again once training can start."""
        back = 0
        for path in batch.files:
            target = self.folder.joinpath(*path.relative_to(self.folder / TAKEN).parts[1:])
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    path.rename(target)
                    back += 1
            except OSError as exc:
                log.warning("inbox: cannot put %s back: %s", shown(path), exc.strerror or exc)
        for folder in {path.parent for path in batch.files}:
            with contextlib.suppress(OSError):
                folder.rmdir()
        log.info("inbox: training did not start, %d file(s) put back in %s", back,
                 shown(self.folder))

    def _fresh_batch_folder(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        suffix = 1
        while True:
            folder = self.folder / TAKEN / (stamp if suffix == 1 else f"{stamp}-{suffix}")
            try:
                folder.mkdir(parents=True)
                return folder
            except FileExistsError:
                suffix += 1

    def _walk(self) -> list[tuple[str, list[str]]]:
        """(directory, file names) below the inbox, leaving out taken/ and hidden folders."""
        top = str(self.folder)

        def skip(parent: str, name: str) -> bool:
            return name.startswith(".") or (name == TAKEN and parent == top)

        return list(walk(top, skip, self._unreadable))

    def _unreadable(self, directory: str, reason: str) -> None:
        entry = (os.path.relpath(directory, self.folder), -1, -1)  # once per folder
        if entry not in self._reported:
            self._reported.add(entry)
            log.warning("inbox: %s: %s", shown(entry[0]), reason)

    def _remove_empty_folders(self) -> None:
        """Drop the folders emptied by taking their files (a dropped folder of grooves)."""
        for directory, _ in reversed(self._walk()[1:]):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
