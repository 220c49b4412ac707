"""The daemon's configuration: typed dataclasses, read from one YAML file and validated once.

Where the file comes from: ``--config PATH``, else ``$XDG_CONFIG_HOME/rvaed/rvaed.yaml``, else
``/etc/rvaed/rvaed.yaml``, else the built-in defaults. The shipped config/rvaed.yaml documents
every key and holds exactly these defaults (a test keeps the two equal).

Validation is driven by the dataclasses themselves: each field's type says what the YAML may
hold, and ``field(metadata=...)`` adds a range or a set of choices. A key left out, or set to
null where null has no meaning of its own, takes its built-in default; an unknown key is an
error naming file, line and field.

On SIGHUP the daemon reads the file again: `changes` says which keys differ, and a key marked
``restart`` in its metadata (the OSC and web sockets, the MIDI API, Link, the state and model
folders) keeps its running value (`keep_running`) until rvaed is restarted.
"""

import contextlib
import dataclasses
import ipaddress
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rvaed.core import yamlfile
from rvaed.core.drummachine import DEFAULT_DRUM_MACHINE
from rvaed.core.kit import DEFAULT_KIT
from rvaed.engine.midiapi import API_NAMES

CONFIG_NAME = "rvaed.yaml"
SYSTEM_CONFIG = Path("/etc/rvaed") / CONFIG_NAME
LOG_LEVELS = ("debug", "info", "warning", "error")

Check = Callable[[typing.Any], str | None]
RESTART = {"restart": True}  # field metadata: a change applies only after a restart


def _within(low: float, high: float) -> dict[str, Check]:
    return {"check": lambda v: None if low <= v <= high else f"expected {low} to {high}"}


def _one_of(choices: tuple[str, ...]) -> dict[str, Check]:
    return {"check": lambda v: None if v in choices else f"expected one of {', '.join(choices)}"}


def _ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "expected an IP address such as 0.0.0.0 (all IPv4), :: (all) or 127.0.0.1"
    return None


def _ip_networks(values: tuple[str, ...]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an address or network (e.g. 127.0.0.1, 192.168.1.0/24, ::1)"
    return None


def _secret(value: str) -> str | None:
    return None if len(value) >= 12 and value.isprintable() and " " not in value else \
        "expected at least 12 printable characters without spaces (or null: generated)"


def _env_dir(variable: str, fallback: str) -> Path:
    """An XDG base directory: the variable when it holds an absolute path, else ~/fallback."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / fallback


def _systemd_state() -> Path | None:
    """systemd's StateDirectory= (e.g. /var/lib/rvaed) when running as a unit with one."""
    first = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first) if os.path.isabs(first) else None


def _default_state_dir() -> Path:
    return _systemd_state() or _env_dir("XDG_STATE_HOME", ".local/state") / "rvaed"


def _default_data_dir(name: str) -> Callable[[], Path]:
    def factory() -> Path:
        base = _systemd_state() or _env_dir("XDG_DATA_HOME", ".local/share") / "rvaed"
        return base / name
    return factory


@dataclass(frozen=True)
class MidiOutput:
    """One drum machine (or DAW track) the pattern is played to."""

    port: str = "rvaed"
    virtual: bool = True
    drum_machine: str = DEFAULT_DRUM_MACHINE
    latency_ms: float = field(default=0.0, metadata=_within(-1000, 1000))
    clock_out: bool = False


@dataclass(frozen=True)
class MidiConfig:
    api: str = field(default="auto", metadata={**_one_of(API_NAMES), **RESTART})
    outputs: tuple[MidiOutput, ...] = (MidiOutput(),)
    inputs: tuple[str, ...] = ()
    groove_input: str | None = None
    # a note-on or clock tick later than this is dropped, never sent late (null: a quarter
    # step, at most 20 ms)
    late_ms: float | None = field(default=None, metadata={**_within(0.1, 1000), **RESTART})
    clock_input: str | None = field(default=None, metadata=RESTART)


@dataclass(frozen=True)
class LinkConfig:
    enabled: bool = True
    # beats (quarter notes) between the bar lines Link aligns (null: the model's bar, 4 in
    # 4/4, 3 in 6/8 and 3/4, 3.5 in 7/8)
    quantum: float | None = field(default=None, metadata=_within(1, 64))
    start_stop_sync: bool = True
    join_wait: float = field(default=1.0, metadata={**_within(0, 10), **RESTART})


@dataclass(frozen=True)
class OscConfig:
    enabled: bool = field(default=True, metadata=RESTART)
    bind: str = field(default="0.0.0.0", metadata={"check": _ip_address, **RESTART})
    port: int = field(default=9000, metadata={**_within(1, 65535), **RESTART})
    allow: tuple[str, ...] = field(default=("127.0.0.0/8", "::1"),
                                   metadata={"check": _ip_networks})
    secret: str | None = field(default=None, metadata={"check": _secret})


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = field(default=True, metadata=RESTART)
    bind: str = field(default="127.0.0.1", metadata={"check": _ip_address, **RESTART})
    port: int = field(default=9080, metadata={**_within(0, 65535), **RESTART})


@dataclass(frozen=True)
class DataDirs:
    """Where rvaed keeps its state and the files it reads and writes (all must be absolute)."""

    state: Path = field(default_factory=_default_state_dir, metadata=RESTART)
    models: Path = field(default_factory=_default_data_dir("models"), metadata=RESTART)
    inbox: Path = field(default_factory=_default_data_dir("inbox"))
    captures: Path = field(default_factory=_default_data_dir("captures"), metadata=RESTART)

    def all(self) -> tuple[Path, ...]:
        return (self.state, self.models, self.inbox, self.captures)


@dataclass(frozen=True)
class TrainingConfig:
    settle_seconds: float = field(default=5.0, metadata=_within(0.1, 3600))
    epochs: int = field(default=150, metadata=_within(1, 10000))
    threads: int = field(default=1, metadata=_within(1, 256))
    nice: int = field(default=10, metadata=_within(0, 19))
    channel: int | str | None = field(default="auto", metadata={"check": lambda v: (
        None if v == "auto" or (isinstance(v, int) and 1 <= v <= 16)
        else "expected 1-16, auto (the drum channels of each file) or null (all)")})


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = field(default=1 << 20, metadata=_within(1, 1 << 40))
    max_request_bytes: int = field(default=64 << 20, metadata=_within(1, 1 << 40))
    captures_per_minute: int = field(default=20, metadata=_within(1, 600))
    captures_bytes: int = field(default=256 << 20, metadata=_within(1, 1 << 40))


@dataclass(frozen=True)
class LoggingConfig:
    level: str = field(default="info", metadata=_one_of(LOG_LEVELS))


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `rvaed run` is told; ``source`` is the file it came from (None: built-in)."""

    model: str = "starter"
    kit: str = DEFAULT_KIT
    midi: MidiConfig = MidiConfig()
    link: LinkConfig = LinkConfig()
    osc: OscConfig = OscConfig()
    web: WebConfig = WebConfig()
    mappings: tuple[str, ...] = ("touchosc", "touchosc-new", "open-stage-control", "generic")
    dirs: DataDirs = field(default_factory=DataDirs)
    training: TrainingConfig = TrainingConfig()
    limits: Limits = Limits()
    logging: LoggingConfig = LoggingConfig()
    source: Path | None = field(default=None, compare=False, metadata={"internal": True})


def shipped_config() -> Path:
    """The documented default configuration that comes with rvaed."""
    return Path(str(resources.files("rvaed.config").joinpath(CONFIG_NAME)))


def search_path() -> list[Path]:
    """The files `load_config` looks for, first match wins."""
    return [_env_dir("XDG_CONFIG_HOME", ".config") / "rvaed" / CONFIG_NAME, SYSTEM_CONFIG]


def load_config(path: str | Path | None = None) -> DaemonConfig:
    """The configuration from ``path``, else the first file on `search_path`, else built-in."""
    if path is None:
        path = next((p for p in search_path() if p.is_file()), None)
        if path is None:
            return DaemonConfig()
    doc = yamlfile.load(path)
    config = _build(DaemonConfig, doc, (), doc.data)
    return dataclasses.replace(config, source=doc.path)


@dataclass(frozen=True)
class Change:
    """One key that differs between the running configuration and a reloaded one."""

    key: str
    old: object
    new: object
    restart: bool  # True: applies only after a restart

    def __str__(self) -> str:
        if isinstance(self.old, tuple) and isinstance(self.new, tuple) and any(
                map(dataclasses.is_dataclass, self.old + self.new)):
            return self.key
        return f"{self.key} {_shown(self.old)} -> {_shown(self.new)}"


def changes(old: Any, new: Any, prefix: str = "", restart: bool = False) -> list[Change]:
    """Every key (dotted: training.epochs) whose value differs from ``old`` to ``new``."""
    found = []
    for f in dataclasses.fields(old):
        if f.metadata.get("internal"):
            continue
        key, needs = prefix + f.name, restart or bool(f.metadata.get("restart"))
        before, after = getattr(old, f.name), getattr(new, f.name)
        if dataclasses.is_dataclass(before):
            found += changes(before, after, key + ".", needs)
        elif before != after:
            found.append(Change(key, before, after, needs))
    return found


def keep_running(old, new):
    """``new`` with every key that needs a restart at its value in ``old``."""
    values = {}
    for f in dataclasses.fields(old):
        if f.metadata.get("internal"):
            continue
        before, after = getattr(old, f.name), getattr(new, f.name)
        if f.metadata.get("restart"):
            values[f.name] = before
        elif dataclasses.is_dataclass(before):
            values[f.name] = keep_running(before, after)
    return dataclasses.replace(new, **values)


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a non-empty string",
    Path: "an absolute path (/... or ~/...)",
}


def _build(cls: type, doc: yamlfile.Document, key: yamlfile.Key, data: object):
    """An instance of the dataclass ``cls`` from YAML ``data``, every field checked."""
    if data is None:
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    if not isinstance(data, dict):
        raise doc.error(key, f"expected a mapping with {', '.join(fields)}")
    doc.only(key, data, fields)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, raw in data.items():
        value = _value(hints[name], doc, (*key, name), raw)
        if value is _DEFAULT:
            continue
        check = fields[name].metadata.get("check")
        problem = check(value) if check and value is not None else None
        if problem:
            raise doc.error((*key, name), f"{problem}, got {raw!r}")
        values[name] = value
    return cls(**values)


_DEFAULT = object()


def _value(hint, doc: yamlfile.Document, key: yamlfile.Key, raw: object):
    """``raw`` converted to the type ``hint``; `_DEFAULT` when null stands for the default."""
    if isinstance(hint, types.UnionType):
        if raw is None and type(None) in typing.get_args(hint):
            return None
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(kinds) > 1:  # e.g. int | str: the first kind the value is
            value = next((v for kind in kinds if (v := _scalar(kind, raw)) is not _DEFAULT),
                         _DEFAULT)
            if value is _DEFAULT:
                raise doc.error(key, f"expected {' or '.join(map(_expected, kinds))}, "
                                f"got {raw!r}")
            return value
        (hint,) = kinds
    if raw is None:
        return _DEFAULT
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, doc, key, raw)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(raw, list):
            raise doc.error(key, f"expected a list, each {_expected(item)}")
        for index, value in enumerate(raw):
            if value is None:
                raise doc.error((*key, index), f"expected {_expected(item)}, got null")
        return tuple(_value(item, doc, (*key, i), v) for i, v in enumerate(raw))
    value = _scalar(hint, raw)
    if value is _DEFAULT:
        raise doc.error(key, f"expected {_expected(hint)}, got {raw!r}")
    return value


def _scalar(hint: type, raw: object):
    if isinstance(raw, bool) != (hint is bool):
        return _DEFAULT
    if hint is float and isinstance(raw, int | float):
        with contextlib.suppress(OverflowError):  # an integer beyond any float
            return float(raw) if math.isfinite(raw) else _DEFAULT
        return _DEFAULT
    if hint is Path and isinstance(raw, str):
        try:
            path = Path(raw).expanduser()
        except RuntimeError:  # ~user of no such user
            return _DEFAULT
        return path if path.is_absolute() else _DEFAULT
    if hint is str and isinstance(raw, str) and raw:
        return raw
    if hint in (int, bool) and isinstance(raw, hint):
        return raw
    return _DEFAULT


def _expected(hint) -> str:
    if dataclasses.is_dataclass(hint):
        return f"a mapping with {', '.join(f.name for f in dataclasses.fields(hint))}"
    return _TYPE_NAMES.get(hint, str(hint))

