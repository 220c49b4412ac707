"""End to end: the real `rvaed run` process, a private JACK server, Link on (loopback-only
namespace), OSC from other processes, MIDI files dropped into the inbox."""

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jackmidi import Receiver
from rig import DaemonProcess, free_udp_port, wait_until

from rvaed.engine.clock import now
from rvaed.model.modeldir import starter_model

GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"
NOTE_ON, NOTE_OFF = 0x90, 0x80


@pytest.fixture
def daemon(tmp_path, jack_server, link_network):
    process = DaemonProcess(tmp_path, free_udp_port())
    yield process
    process.kill()


def listen(daemon: DaemonProcess, receiver: Receiver) -> float:
    """Start the daemon, connect the receiver, return seconds from start to the first note."""
    started = daemon.start()
    receiver.connect_from("rvaed:rvaed")
    assert receiver.wait_for(lambda m: any(s & 0xF0 == NOTE_ON for _, (s, *_) in m), 10), \
        daemon.text()[-2000:]
    first = receiver.kinds(NOTE_ON)[0][0]
    return first - started


def note_ons_between(receiver: Receiver, start: float, end: float) -> list[tuple[int, ...]]:
    return [m for t, m in receiver.kinds(NOTE_ON) if start <= t < end]


def assert_never_stopped(receiver: Receiver, since: float, max_gap: float) -> None:
    times = [t for t, _ in receiver.kinds(NOTE_ON) if t >= since]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and max(gaps) < max_gap, f"longest silence {max(gaps):.2f} s"


def assert_no_hanging_notes(receiver: Receiver, daemon: DaemonProcess) -> None:
    """The daemon sent a note-off for every note-on, and at the receiver every note's last
    message is a note-off or an All Notes Off on its channel, the very last one All Notes Off
    on channel 10. (A JACK dummy server without real-time priority can drop a whole cycle's
    events on a loaded machine, so mid-stream pairs are counted at the sender.)"""
    sent = re.search(r"(\d+) note-ons and (\d+) note-offs sent", daemon.text())
    assert sent and int(sent[1]) == int(sent[2]) > 0, sent
    time.sleep(0.2)
    last: dict[tuple[int, int], int] = {}
    for _, message in receiver.messages:
        if len(message) == 3 and message[0] & 0xE0 == 0x80:  # note-on or note-off
            off = message[0] & 0xF0 == NOTE_OFF or message[2] == 0
            last[(message[0] & 0x0F, message[1])] = NOTE_OFF if off else NOTE_ON
        elif len(message) == 3 and message[0] & 0xF0 == 0xB0 and message[1] == 123:
            channel = message[0] & 0x0F  # All Notes Off ends every note of its channel
            last.update({key: NOTE_OFF for key in last if key[0] == channel})
    assert NOTE_ON not in last.values(), f"left sounding: {last}; end: {receiver.messages[-8:]}"
    assert receiver.messages[-1][1] == (0xB9, 123, 0)


def test_plays_moves_trains_swaps_and_stops_cleanly(receiver, daemon):
    first_note = listen(daemon, receiver)
    print(f"rvaed run to first note: {first_note:.2f} s")
    loop_seconds = 8 * 60 / 120  # two bars at the default tempo
    daemon.osc("/rvaed/threshold", 0.3)
    daemon.osc("/rvaed/xy", 0.05, 0.05)
    time.sleep(loop_seconds + 0.3)
    corner_a = now()
    time.sleep(loop_seconds)
    daemon.osc("/rvaed/xy", 0.95, 0.95)
    time.sleep(loop_seconds + 0.3)
    corner_b = now()
    time.sleep(loop_seconds)
    notes_a = note_ons_between(receiver, corner_a, corner_a + loop_seconds)
    notes_b = note_ons_between(receiver, corner_b, corner_b + loop_seconds)
    assert notes_a and notes_b and sorted(notes_a) != sorted(notes_b), "pattern did not change"
    daemon.osc("/rvaed/bend", 0.4, 3)
    daemon.wait_log("bending 0.40 (seed 3)", 10)

    inbox_files = sorted(GROOVE.rglob("*.mid"))[:3]
    for file in inbox_files:
        shutil.copy(file, daemon.dirs["inbox"] / file.name)
    daemon.wait_log("training: started", 30)
    daemon.wait_log("now playing model", 120)
    models = [p for p in daemon.dirs["models"].iterdir() if p.is_dir() and p.name[0] != "."]
    assert [p.name.split("-")[0] for p in models] == ["inbox"]
    swapped = now()
    assert receiver.wait_for(lambda m: any(t > swapped + 1 for t, _ in m), 5)
    assert_never_stopped(receiver, daemon.started + first_note, max_gap=loop_seconds)

    assert daemon.stop() == 0
    assert_no_hanging_notes(receiver, daemon)
    saved = json.loads((daemon.dirs["state"] / "state.json").read_text())
    assert saved["state"]["x"] == pytest.approx(0.95) and saved["model"] == str(models[0])


def test_killed_training_and_garbage_in_the_inbox_leave_the_music_playing(receiver, daemon):
    listen(daemon, receiver)
    (daemon.dirs["inbox"] / "notes.txt").write_text("not MIDI")
    (daemon.dirs["inbox"] / "broken.mid").write_bytes(b"MThd garbage")
    daemon.wait_log("notes.txt", 10)
    daemon.wait_log("training failed", 60)  # broken.mid was taken and refused
    good = daemon.dirs["captures"] / "good.mid"  # a data directory, not the inbox
    shutil.copy(sorted(GROOVE.rglob("*.mid"))[0], good)
    outside = daemon.root / "outside.mid"
    shutil.copy(good, outside)
    ask = [sys.executable, "-m", "rvaed.cli", "train", "--daemon", "--config", str(daemon.config)]
    refused = subprocess.run([*ask, str(outside)], capture_output=True, text=True)
    assert refused.returncode == 1 and "outside the data directories" in refused.stderr
    asked = subprocess.Popen([*ask, str(good)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # waits for the result, through the local socket
    wait_until(lambda: daemon.text().count("training: started") == 2, 30, daemon)
    children = daemon.children()
    assert children, "no training process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    daemon.wait_log("killed by SIGKILL", 30)
    out, err = asked.communicate(timeout=30)
    assert asked.returncode == 1, (out, err)
    assert "the daemon is training 1 file(s)" in err and "failed" in err, err
    killed = now()
    assert receiver.wait_for(lambda m: any(t > killed + 2 for t, _ in m), 5)
    assert_never_stopped(receiver, killed - 2, max_gap=4.0)
    assert daemon.stop() == 0
    assert_no_hanging_notes(receiver, daemon)


def test_a_corrupt_remembered_model_falls_back_and_plays(receiver, daemon):
    broken = daemon.dirs["models"] / "mine-20260101-000000"
    shutil.copytree(starter_model(), broken)
    (broken / "decoder.onnx").write_bytes(b"\x00corrupt")
    (daemon.dirs["state"]).mkdir(parents=True, exist_ok=True)
    (daemon.dirs["state"] / "state.json").write_text(f'{{"model": "{broken}", "state": {{}}}}')
    listen(daemon, receiver)
    assert "cannot load model" in daemon.text() and "decoder.onnx" in daemon.text()
    assert daemon.stop() == 0
    assert_no_hanging_notes(receiver, daemon)
