"""The daemon says what it does: the real `rvaed run` on a private JACK server (Link on, in the
loopback-only namespace) logs one line per part at start, and a line for each change of
tempo, transport and outputs; -v adds the detail."""

import re
import signal

import pytest
import yaml
from rig import DaemonProcess, free_udp_port

from rvaed.model.modeldir import read_manifest, starter_model

OUTPUTS = [{"port": "rvaed", "virtual": True, "drum_machine": "gm"},
           {"port": "late-box", "virtual": False, "drum_machine": "tr-8s", "latency_ms": 5,
            "clock_out": True}]


@pytest.fixture
def daemon(tmp_path, jack_server, link_network):
    process = DaemonProcess(tmp_path, free_udp_port(), verbose=False,
                            midi={"api": "jack", "outputs": OUTPUTS})
    yield process
    process.kill()


def started_lines(daemon: DaemonProcess) -> list[str]:
    daemon.start()
    daemon.wait_log("playing starter at", 15)
    daemon.wait_log("transport: playing", 15)  # Link has joined or found none: it plays
    return daemon.text().splitlines()


def line(lines: list[str], start: str) -> str:
    found = [text for text in lines if text.startswith(start)]
    assert len(found) == 1, f"{start!r}: {found}\n" + "\n".join(lines)
    return found[0]


def test_start_says_midi_outputs_link_osc_model_and_inbox(daemon):
    lines = started_lines(daemon)
    assert line(lines, "INFO rvaed: MIDI: ") == "INFO rvaed: MIDI: API jack (midi.api)"
    assert line(lines, "INFO rvaed: MIDI out 1: ").endswith(
        "virtual port 'rvaed' (other programs connect to it), drum machine gm")
    assert line(lines, "INFO rvaed: MIDI out 2: ").endswith(
        "port matching 'late-box': not there yet, waiting for it, drum machine tr-8s, "
        "latency 5 ms, sends MIDI clock")
    assert line(lines, "INFO rvaed: Link: ").startswith(
        "INFO rvaed: Link: on, 0 peer(s), 120.0 BPM, quantum 4")
    osc = line(lines, "INFO rvaed: OSC: ")
    assert f"listening on 127.0.0.1:{daemon.port}, file commands from 127.0.0.0/8" in osc
    assert re.search(r"controller maps: touchosc \(OSC, \d+ bindings\), .*generic \(MIDI", osc)
    data = read_manifest(starter_model()).training["data"]
    default = read_manifest(starter_model()).latent.default
    assert line(lines, "INFO rvaed: model: ").endswith(
        f"trained on {data['windows']} 2-bar 4/4 windows of {data['files']} file(s), kit gmd, "
        f"9 voices x 32 steps; pad at x {default[0]:.3f} y {default[1]:.3f}")
    assert line(lines, "INFO rvaed: inbox: ") == (
        f"INFO rvaed: inbox: {daemon.dirs['inbox']}: drop MIDI files or folders there; "
        "training starts 0.5 s after the last one arrives")
    assert line(lines, "INFO rvaed: playing starter at 120.0 BPM")
    assert "LinkClock" not in daemon.text() and "InternalClock" not in daemon.text()
    assert not [text for text in lines if text.startswith("DEBUG")]  # without -v


def test_tempo_transport_and_outputs_changes_are_logged(daemon):
    started_lines(daemon)
    daemon.osc("/rvaed/tempo", 128.0)
    daemon.wait_log("INFO rvaed: tempo: 128.00 BPM (was 120.00)", 10)
    daemon.osc("/rvaed/play", 0)
    daemon.wait_log("INFO rvaed: transport: stopped", 10)
    config = yaml.safe_load(daemon.config.read_text())
    config["midi"]["outputs"] = [{**OUTPUTS[0], "drum_machine": "digitakt"}]
    daemon.config.write_text(yaml.safe_dump(config))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("INFO rvaed: now MIDI out 1: ", 15)
    assert line(daemon.text().splitlines(), "INFO rvaed: now MIDI out 1: ").endswith(
        "virtual port 'rvaed' (other programs connect to it), drum machine digitakt")
    assert "now MIDI out 2" not in daemon.text()
    assert daemon.stop() == 0


def test_verbose_after_the_command_adds_the_detail(tmp_path, jack_server, link_network):
    daemon = DaemonProcess(tmp_path, free_udp_port())  # `rvaed run -v`, the README's form
    try:
        lines = started_lines(daemon)
    finally:
        daemon.kill()
    assert line(lines, "DEBUG rvaed: config: ").startswith(f"DEBUG rvaed: config: {daemon.config}")
    assert line(lines, "DEBUG rvaed: model: ") == (
        "DEBUG rvaed: model: int8 decoder; first pattern: kick 8, snare 4, closed-hat 16")
