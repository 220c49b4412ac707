"""Fuzzing the YAML loaders: controller maps, the daemon config, kits and drum machines.

Each loader gets random YAML documents (nested mappings, lists and scalars around its own
field names), the shipped files with a value replaced, a key removed or added, and the shipped
text with characters inserted and deleted, plus YAML's traps (aliases inside themselves,
alias bombs, impossible dates, explicit tags). Every outcome must be a loaded object whose
fields are valid, or a one-line RvaedError naming the file: never another exception, never a
hang.
"""

import math
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from checks import assert_one_line, fuzz_settings, time_limit
from hypothesis import given
from hypothesis import strategies as st

from rvaed.control.mapfile import Mapping, load_mapping, shipped_mappings
from rvaed.core.drummachine import DrumMachine, load_drum_machine, shipped_drum_machines
from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit, load_kit, shipped_kits
from rvaed.daemon.config import DaemonConfig, load_config, shipped_config

KIT = load_kit()
HANG_SECONDS = 3.0
FIELD_NAMES = [
    "name", "voices", "inputs", "output", "note", "channel", "source", "bindings", "port",
    "device", "swap_xy", "cc", "lsb", "osc", "arg", "target", "relative", "step", "mode",
    "range", "invert", "curve", "deadzone", "smoothing", "takeover", "pitchbend", "program",
    "model", "kit", "midi", "outputs", "virtual", "drum_machine", "latency_ms", "link",
    "enabled", "quantum", "bind", "allow", "dirs", "state", "training", "epochs", "threads",
    "limits", "logging", "level", "mappings", *KIT.names]
WORDS = ["x", "y", "threshold", "tempo", "mute.kick", "freeze.snare", "preset.recall.1",
         "preset.store.²", "transition.ms", "toggle", "soft", "any", "~", "~nobody/x",
         "/1/xy1", "127.0.0.1", "::", "twos-complement", "auto", "info", "2001-02-30"]


def check_kit(kit: Kit) -> None:
    assert kit.size >= 1 and len(set(kit.names)) == kit.size
    assert all(0 <= n <= 127 for v in kit.voices for n in (*v.inputs, v.output))


def check_mapping(mapping: Mapping) -> None:
    assert mapping.bindings
    for binding in mapping.bindings:
        assert all(math.isfinite(v) for v in (binding.low, binding.high, binding.curve,
                                              binding.deadzone, binding.smoothing, binding.step))
        assert binding.channel is None or 1 <= binding.channel <= 16


def check_config(config: DaemonConfig) -> None:
    assert 1 <= config.osc.port <= 65535
    assert config.link.quantum is None or 1 <= config.link.quantum <= 64
    assert all(path.is_absolute() for path in config.dirs.all())
    assert math.isfinite(sum(o.latency_ms for o in config.midi.outputs))


def check_drum_machine(machine: DrumMachine) -> None:
    assert len(machine.destinations) == KIT.size
    assert all(0 <= d.note <= 127 and 1 <= d.channel <= 16
               for d in machine.destinations if d is not None)


LOADERS = {  # name: (load(path), what it returns, its check, its shipped files)
    "kit": (load_kit, Kit, check_kit, list(shipped_kits().values())),
    "mapping": (lambda path: load_mapping(path, KIT), Mapping, check_mapping,
                list(shipped_mappings().values())),
    "config": (load_config, DaemonConfig, check_config, [shipped_config()]),
    "drum machine": (lambda path: load_drum_machine(path, KIT), DrumMachine,
                     check_drum_machine, list(shipped_drum_machines().values())),
}


def load_or_refuse(loader: str, path: Path) -> object | None:
    """The loader's two outcomes, each checked; None when the file was refused."""
    load, kind, check, _shipped = LOADERS[loader]
    try:
        with time_limit(HANG_SECONDS):
            loaded = load(path)
    except RvaedError as exc:
        assert_one_line(str(exc), str(path))
        return None
    assert isinstance(loaded, kind)
    check(loaded)
    return loaded


# -- documents -------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-300, 300), st.integers(), st.floats(),
    st.sampled_from([*FIELD_NAMES, *WORDS]), TEXT)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), TEXT, st.integers(-2, 20), st.booleans())


def values(keys=KEYS):
    return st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=16)


def dump(data: object) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@st.composite
def replaced(draw, data: object, keys=KEYS) -> object:
    """``data`` with one value somewhere replaced, one key removed or one key added."""
    if isinstance(data, dict) and data and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(list(data)))
        action = draw(st.sampled_from(["descend", "descend", "remove", "add"]))
        if action == "remove":
            return {k: v for k, v in data.items() if k != key}
        if action == "add":
            return {**data, draw(keys): draw(values(keys))}
        return {**data, key: draw(replaced(data[key], keys))}
    if isinstance(data, list) and data and draw(st.integers(0, 3)):
        index = draw(st.integers(0, len(data) - 1))
        return [*data[:index], draw(replaced(data[index], keys)), *data[index + 1:]]
    return draw(values(keys))


@st.composite
def edited_text(draw, text: str) -> str:
    """``text`` with a few characters inserted (YAML's syntax among them) or spans deleted."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            piece = draw(st.one_of(st.sampled_from(list(": -[]{}&*!|>'\"#%@`,?\t\n")),
                                   st.sampled_from(["&a ", "*a", "!!int ", "!!binary ", "<<: ",
                                                    "\n  - ", ": {", "\ufeff"]), TEXT))
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
    return text


@st.composite
def documents(draw, loader: str) -> str:
    shipped = draw(st.sampled_from(LOADERS[loader][3])).read_text()
    keys = KEYS
    kind = draw(st.sampled_from(["random", "replaced", "replaced", "text"]))
    if kind == "random":
        return dump(draw(values(keys)))
    if kind == "replaced":
        return dump(draw(replaced(yaml.safe_load(shipped), keys)))
    return draw(edited_text(shipped))


MIXED_TOP = "1: a\nx: b\n"  # keys of two types
MIXED_VOICE = "name: x\nvoices: {" + ", ".join(
    f"{name}: 36" for name in KIT.names[1:]) + ", kick: {1: 36, x: 2}}\n"
TRAPS = [
    "name: &a [*a]\n",  # an alias inside itself
    "a: &a {b: *a}\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(  # an alias bomb: 10^7 entries
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in pairwise("abcdefg")),
    "name: " + "[" * 2000 + "]" * 2000 + "\n",
    "name: 2001-02-30\n", "name: !!int abc\n", "name: !!float x\n", "name: " + "9" * 5000,
    "name: !!binary '@'\n", "name: !!python/object:os.system x\n", "? [a]\n: b\n",
    "<<: 5\n", "\"a\\nb\": 1\nname: \"x\\u2028y\"\n", "name: \"a\\nb\"\nvoices: 7\n",
    "dirs: {state: ~nobody/x}\n", "osc: {port: " + "9" * 400 + "}\n",
    "link: {quantum: 1" + "0" * 400 + "}\n", "voices:\n  - {1: a, x: b}\n", MIXED_TOP,
    "channel: 1" + "0" * 400 + "\n", MIXED_VOICE,
    "name: x\nbindings:\n  - {osc: /a, target: preset.recall.²}\n",
    "name: x\nbindings:\n  - {osc: /a, target: x, curve: " + "9" * 400 + "}\n",
    "\x00", "", "---\n---\n", "%YAML 9.9\n---\na: 1\n",
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "damaged.yaml"


# -- the properties --------------------------------------------------------------------------

def trap_cases():
    """Every trap for every loader."""
    for i, text in enumerate(TRAPS):
        for loader in LOADERS:
            yield pytest.param(loader, text, id=f"{loader}-{i}")


@pytest.mark.parametrize(("loader", "text"), trap_cases())
def test_yaml_traps_are_refused_in_one_line(tmp_path, loader, text):
    path = tmp_path / "trap.yaml"
    path.write_text(text)
    load_or_refuse(loader, path)


@pytest.mark.parametrize("loader", LOADERS)
@fuzz_settings(max_examples=80)
@given(data=st.data())
def test_random_and_damaged_documents_are_loaded_or_refused_in_one_line(
        scratch, loader, data):
    scratch.write_text(data.draw(documents(loader)))
    load_or_refuse(loader, scratch)


@pytest.mark.parametrize("loader", LOADERS)
def test_the_shipped_files_load(loader):
    for path in LOADERS[loader][3]:
        assert load_or_refuse(loader, path) is not None, path
