"""Keep the performance state across restarts: atomic JSON saves, debounced, and a safe restore.

A power cut on a Raspberry Pi must never leave a half-written state file, and a state file that
is damaged anyway must never stop the music: it is set aside (renamed *.corrupt-TIMESTAMP) with
a warning and the daemon starts from defaults. The store holds plain dicts; `Saved` checks what
was read back — the model, the performance state field by field (by the parameter table of
`rvaed.core.state`), the transport and the automation — so that valid JSON of the wrong shape
is set aside too, with one warning line per wrong field, and that field's default is used.
"""

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvaed.core.atomic import write_atomic
from rvaed.core.state import NOT_RESTORED, PARAMETERS, PRESETS, PerformanceState, Transition
from rvaed.tools.automation import Automation

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
    log.warning("%s: %s; set aside as %s, using defaults", path, reason, target.name)
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

    def save_last(self, data: dict) -> bool:
        """The save at exit: a failure (a read-only or full disk) is one error line, never a
        reason to exit with an error after the music was silenced; False then."""
        try:
            self.save(data)
        except OSError as exc:
            log.error("%s: cannot save state at exit, the changes of this run are lost: %s",
                      self.path, exc.strerror or exc)
            return False
        return True

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


@dataclass
class Saved:
    """What the state file held, checked: each part wrong in shape or type is named in one
    warning line (the first one sets the file aside, so nothing is lost) and left out."""

    path: Path
    data: dict = field(default_factory=dict)
    aside: bool = False
    checked: dict = field(default_factory=dict)  # the state's fields that passed `state`

    @classmethod
    def load(cls, store: StateStore) -> "Saved":
        """The store's file, its top level checked (an object of model, state, automation)."""
        saved = cls(store.path, store.load() or {})
        for key in sorted(set(saved.data) - set(TOP_LEVEL)):
            saved.wrong(key, f"expected only {', '.join(TOP_LEVEL)}")
            del saved.data[key]
        for key, (kinds, expected) in TOP_LEVEL.items():
            if not isinstance(saved.data.get(key), kinds):
                saved.wrong(key, f"expected {expected}, got {saved.data.pop(key)!r:.80}")
        return saved

    def wrong(self, name: str, problem: str) -> None:
        """Report one wrong field; the first sets the file aside."""
        reason = f"{name}: {problem}"
        if not self.aside:
            self.aside = True
            set_aside(self.path, reason)
        else:
            log.warning("%s: %s; using its default", self.path, reason)

    @property
    def model(self) -> Path | None:
        """The model that was playing (None: none was saved)."""
        return Path(self.data["model"]) if self.data.get("model") else None

    @property
    def playing(self) -> bool:
        """The saved transport, as checked by `state` (playing when none was saved)."""
        return bool(self.checked.get("playing", True))

    def state(self, voices: int, point: tuple[float, float] = (0.5, 0.5)) -> PerformanceState:
        """The saved performance state for a kit of ``voices``; each field is checked by the
        state's own validators (the parameter table), a wrong one keeps its default (x/y:
        ``point``, the model's default point, where its typical groove lies)."""
        state = PerformanceState(voices=voices)
        state.x, state.y = point
        for name, value in self._state.items():
            try:
                converted = self.checked[name] = _field_value(name, value)
                if name not in NOT_RESTORED:
                    setattr(state, name, converted)
            except (ValueError, AttributeError) as exc:
                self.checked.pop(name, None)
                self.wrong(f"state.{name}", str(exc).removeprefix(f"{name}: "))
        return state

    def automation(self) -> Automation | None:
        """The saved latent automation, if one was saved and it is whole."""
        data = self.data.get("automation")
        try:
            return None if data is None else Automation.from_dict(data)
        except ValueError as exc:
            self.wrong("automation", str(exc))
            return None

    @property
    def _state(self) -> dict:
        return self.data.get("state") or {}


TOP_LEVEL: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str, type(None)), "a model folder (a string)"),
    "state": ((dict, type(None)), "an object of performance fields"),
    "automation": ((dict, type(None)), "an automation object or null"),
}


def _field_value(name: str, value: Any) -> object:
    """A state file field as the state takes it; its own check, or ValueError. Parameters
    are checked by their row of the table (also those not restored, such as tempo)."""
    row = PARAMETERS.get(name)
    if row is not None:
        return row.valid(value)
    convert = _CONVERTERS.get(name)
    if convert is None:
        raise AttributeError(f"expected one of the performance fields, not {name!r}")
    return convert(value)


def _voices(value: Any) -> frozenset[int]:
    if not isinstance(value, list) or not all(type(item) is int for item in value):
        raise ValueError(f"expected a list of voice indices, got {value!r:.80}")
    return frozenset(value)


def _presets(value: Any) -> tuple[tuple[float, float] | None, ...]:
    if not isinstance(value, list) or len(value) != PRESETS or not all(
            slot is None or (isinstance(slot, list) and len(slot) == 2) for slot in value):
        raise ValueError(f"expected {PRESETS} slots, each null or [x, y], got {value!r:.80}")
    return tuple(None if slot is None else tuple(slot) for slot in value)


def _transition(value: Any) -> Transition:
    if not isinstance(value, dict) or set(value) != {"amount", "unit"}:
        raise ValueError(f"expected an object of amount and unit, got {value!r:.80}")
    return Transition(value["amount"], value["unit"])


def _a_list(value: Any) -> list:
    if not isinstance(value, list):  # each entry is checked by the state itself
        raise ValueError(f"expected a list, got {value!r:.80}")
    return value


_CONVERTERS: dict[str, Callable[[Any], object]] = {
    "mutes": _voices, "freezes": _voices, "presets": _presets, "transition": _transition,
    "steps": _a_list, "preset_conditions": _a_list}
