"""Daemon configuration: the documented file is the defaults, the search order, clear errors."""

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from rvaed.control.mapfile import load_mappings
from rvaed.core import yamlfile
from rvaed.core.drummachine import load_drum_machine
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.daemon import config as daemonconfig
from rvaed.daemon.config import DaemonConfig, load_config, shipped_config


@pytest.fixture(autouse=True)
def environment(tmp_path, monkeypatch):
    """A home, XDG directories and /etc of our own, so the machine's files play no part."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(daemonconfig, "SYSTEM_CONFIG", tmp_path / "etc" / "rvaed.yaml")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_file_holds_exactly_the_built_in_defaults():
    config = load_config(shipped_config())
    assert config == DaemonConfig()
    assert config.source == shipped_config()


def leaf_keys(cls, prefix=()):
    """Every key path a config file can hold, walking the dataclasses."""
    for field in dataclasses.fields(cls):
        if field.metadata.get("internal"):
            continue
        key = (*prefix, field.name)
        default = getattr(cls(), field.name)
        if dataclasses.is_dataclass(default):
            yield from leaf_keys(type(default), key)
        elif field.name == "outputs":
            yield from leaf_keys(type(default[0]), (*key, 0))
        else:
            yield key


def test_shipped_file_shows_and_documents_every_key():
    doc = yamlfile.load(shipped_config())
    lines = shipped_config().read_text().splitlines()
    keys = list(leaf_keys(DaemonConfig))
    assert len(keys) >= 25  # the walk found the keys (it cannot pass vacuously)
    for key in keys:
        assert key in doc.lines, f"{key} is not in config/rvaed.yaml"
        number = doc.lines[key]
        above = lines[number - 2].strip()
        assert above.startswith("#") or "#" in lines[number - 1], f"{key} has no comment"


def test_without_any_file_the_built_in_defaults_apply(tmp_path):
    config = load_config()
    assert config == DaemonConfig() and config.source is None
    home = tmp_path / "home"
    assert config.dirs.state == home / ".local/state/rvaed"
    assert config.dirs.models == home / ".local/share/rvaed/models"
    assert config.osc.port == 9000 and config.osc.bind == "0.0.0.0"
    assert config.midi.outputs[0].port == "rvaed" and config.midi.outputs[0].virtual


def test_search_order_config_option_then_xdg_then_etc(tmp_path, monkeypatch):
    etc = write(daemonconfig.SYSTEM_CONFIG, "osc: {port: 9001}\n")
    assert load_config().osc.port == 9001 and load_config().source == etc
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = write(tmp_path / "xdg/rvaed/rvaed.yaml", "osc: {port: 9002}\n")
    assert load_config().osc.port == 9002 and load_config().source == user
    given = write(tmp_path / "mine.yaml", "osc: {port: 9003}\n")
    assert load_config(given).osc.port == 9003


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    path = write(tmp_path / "c.yaml", """\
        midi:
          outputs:
            - {port: TR-8S, virtual: false, drum_machine: tr-8s, latency_ms: -3}
            - {port: Digitakt, virtual: false, clock_out: true}
          groove_input: nanoPAD
        training: {channel: null, settle_seconds: 1}
        """)
    config = load_config(path)
    first, second = config.midi.outputs
    assert (first.port, first.virtual, first.drum_machine, first.latency_ms) == \
        ("TR-8S", False, "tr-8s", -3.0)
    assert second.drum_machine == "gm" and second.clock_out and second.latency_ms == 0.0
    assert config.midi.groove_input == "nanoPAD"
    assert config.training.channel is None and config.training.settle_seconds == 1.0
    assert config.training.epochs == 150
    assert dataclasses.replace(config, midi=DaemonConfig().midi,
                               training=DaemonConfig().training) == DaemonConfig()


def test_data_directories_follow_systemd_and_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    dirs = load_config().dirs
    assert dirs.state == tmp_path / "s/rvaed" and dirs.inbox == tmp_path / "d/rvaed/inbox"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/rvaed:/var/lib/other")
    dirs = load_config().dirs
    assert dirs.all() == (Path("/var/lib/rvaed"), Path("/var/lib/rvaed/models"),
                          Path("/var/lib/rvaed/inbox"), Path("/var/lib/rvaed/captures"))
    path = write(tmp_path / "c.yaml", "dirs: {captures: ~/grooves, models: /srv/models}\n")
    dirs = load_config(path).dirs
    assert dirs.captures == tmp_path / "home/grooves" and dirs.models == Path("/srv/models")
    assert dirs.state == Path("/var/lib/rvaed")


@pytest.mark.parametrize(("text", "message"), [
    ("osc:\n  port: 70000\n", r"c\.yaml:2: osc\.port: expected 1 to 65535, got 70000"),
    ("osc:\n  prot: 9000\n", r"c\.yaml:2: osc\.prot: unknown field \(expected enabled, bind"),
    ("colour: red\n", r"c\.yaml:1: colour: unknown field \(expected model, kit, midi"),
    ("midi:\n  outputs:\n    - port: a\n    - {port: b, latency: 3}\n",
     r"c\.yaml:4: midi\.outputs\[1\]\.latency: unknown field"),
    ("midi: {outputs: [{latency_ms: 2000}]}\n",
     r"midi\.outputs\[0\]\.latency_ms: expected -1000 to 1000, got 2000"),
    ("midi: {outputs: TR-8S}\n", r"midi\.outputs: expected a list, each a mapping with port,"),
    ("midi: {api: pulse}\n", r"midi\.api: expected one of auto, alsa, jack, coremidi, winmm"),
    ("link: {enabled: 1}\n", r"link\.enabled: expected true or false, got 1"),
    ("training: {epochs: true}\n", r"training\.epochs: expected an integer, got True"),
    ("training: {epochs: 2.5}\n", r"training\.epochs: expected an integer, got 2\.5"),
    ("link: {quantum: .nan}\n", r"link\.quantum: expected a number, got nan"),
    ("osc: {allow: [127.0.0.1, my-phone]}\n", r"osc\.allow: 'my-phone' is not an address"),
    ("osc: {bind: localhost}\n", r"osc\.bind: expected an IP address"),
    ("dirs: {inbox: drop/here}\n", r"dirs\.inbox: expected an absolute path"),
    ("mappings: [touchosc, '']\n", r"mappings\[1\]: expected a non-empty string"),
    ("mappings: [touchosc, null]\n", r"mappings\[1\]: expected a non-empty string, got null"),
    ("midi: {outputs: [null]}\n", r"midi\.outputs\[0\]: expected a mapping with port"),
    ("logging: {level: loud}\n", r"logging\.level: expected one of debug, info"),
    ("- osc\n", r"c\.yaml:1: expected a mapping with model, kit, midi"),
    ("osc: {port: [9000\n", r"c\.yaml:\d+: invalid YAML"),
])
def test_bad_config_is_one_line_naming_file_line_and_field(tmp_path, text, message):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(RvaedError) as error:
        load_config(path)
    assert re.search(message, str(error.value)), str(error.value)
    assert "\n" not in str(error.value)


def test_a_config_option_naming_no_file_is_an_error(tmp_path):
    with pytest.raises(RvaedError, match=r"absent\.yaml: cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_empty_file_and_null_sections_mean_defaults(tmp_path):
    assert load_config(write(tmp_path / "empty.yaml", "")) == DaemonConfig()
    nulls = write(tmp_path / "nulls.yaml", "midi:\nosc: {port: null}\ndirs: {state: null}\n")
    assert load_config(nulls) == DaemonConfig()


def test_the_default_kit_mappings_and_drum_machine_are_shipped():
    config = DaemonConfig()
    kit = load_kit(config.kit)
    assert [m.name for m in load_mappings(config.mappings, kit)] == list(config.mappings)
    for output in config.midi.outputs:
        assert load_drum_machine(output.drum_machine, kit).name == output.drum_machine


def test_a_reload_names_each_changed_key_and_keeps_those_that_need_a_restart(tmp_path):
    old = load_config(write(tmp_path / "old.yaml", """
        osc: {port: 9000, allow: [127.0.0.0/8, "::1"]}
        training: {epochs: 150}
        mappings: [a.yaml]
    """))
    new = load_config(write(tmp_path / "new.yaml", """
        osc: {port: 9001, allow: ["::1"]}
        training: {epochs: 3}
        mappings: [b.yaml]
        link: {quantum: 8, join_wait: 0.5}
        midi: {outputs: [{drum_machine: tr-8}]}
    """))
    found = {change.key: change for change in daemonconfig.changes(old, new)}
    assert set(found) == {"osc.port", "osc.allow", "training.epochs", "mappings",
                          "link.quantum", "link.join_wait", "midi.outputs"}
    assert {key for key, change in found.items() if change.restart} == {"osc.port",
                                                                       "link.join_wait"}
    assert str(found["training.epochs"]) == "training.epochs 150 -> 3"
    assert str(found["osc.allow"]) == "osc.allow 127.0.0.0/8,::1 -> ::1"
    assert str(found["midi.outputs"]) == "midi.outputs"
    running = daemonconfig.keep_running(old, new)
    assert running.osc.port == 9000 and running.link.join_wait == old.link.join_wait
    assert running.link.quantum == 8  # Link is reconfigured while it plays
    assert running.osc.allow == ("::1",) and running.training.epochs == 3
    assert running.midi.outputs[0].drum_machine == "tr-8"
    assert daemonconfig.changes(running, new) == [found["link.join_wait"], found["osc.port"]]
    assert daemonconfig.changes(old, old) == []
