"""The wording of the daemon's log lines, part by part (the running daemon's lines are checked
end to end in tests/e2e/test_startlog.py)."""

import sys

from rvaed.control.mapfile import load_mapping
from rvaed.core.kit import load_kit
from rvaed.daemon.config import LinkConfig, MidiOutput
from rvaed.daemon.report import inbox_line, link_line, mapping_summary, output_line
from rvaed.engine.clock import InternalClock
from rvaed.engine.midiclockin import MidiClockIn
from rvaed.engine.midiout import Output


def test_link_off_says_why_and_the_internal_tempo():
    clock = InternalClock(96.0, quantum=3)
    assert link_line(LinkConfig(enabled=False), clock) == (
        "Link: off (link.enabled: false); internal clock, 96.0 BPM, quantum 3")
    assert link_line(LinkConfig(enabled=True), clock).startswith(
        "Link: off: it could not start (see above); internal clock, 96.0 BPM")


def test_an_output_names_its_port_and_drum_machine():
    spec = MidiOutput(port="TR-8S", virtual=False, drum_machine="tr-8s")
    assert output_line(2, spec, Output("TR-8S")) == (
        "MIDI out 2: port matching 'TR-8S': not there yet, waiting for it, drum machine tr-8s")


def test_maps_say_what_they_listen_to():
    kit = load_kit()
    assert mapping_summary(load_mapping("touchosc", kit)).startswith("touchosc (OSC, ")
    assert mapping_summary(load_mapping("nanopad2", kit)).startswith(
        "nanopad2 (MIDI 'nanoPAD2', ")


def test_the_inbox_line_says_what_to_install_when_training_cannot_run(monkeypatch, tmp_path):
    assert "drop MIDI files" in inbox_line(tmp_path, 5.0)
    monkeypatch.setitem(sys.modules, "torch", None)  # Python's own way to make it unimportable
    line = inbox_line(tmp_path, 5.0)
    assert line.startswith(f"inbox: {tmp_path}: training needs torch")
    assert "-m pip install '.[train]' --extra-index-url" in line


def test_a_midi_clock_follower_names_its_clock():
    clock = MidiClockIn(quantum=4)
    assert link_line(LinkConfig(enabled=False), clock) == (
        "Link: off (link.enabled: false); MIDI clock in, 120.0 BPM, quantum 4")
    assert link_line(LinkConfig(enabled=True), clock).startswith(
        "Link: off: it could not start (see above); MIDI clock in")
