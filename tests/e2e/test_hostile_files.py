"""Hostile and damaged files against the real `rvaed run` process: state files of the wrong
shape, FIFOs and huge files named in file commands, deep folders and odd names in the inbox.
The daemon plays on a private JACK server (Link off: nothing here needs the network beyond
OSC on 127.0.0.1), and what it plays is counted at a jack_midi_dump receiver."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from checks import require_tools
from jackmidi import Receiver
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from rig import DaemonProcess, free_udp_port, wait_until

from rvaed.benchmarks.harness import jack_ports

NOTE_ON = 0x90
GROOVES = sorted((Path(__file__).resolve().parents[1] / "data" / "groove").rglob("*4-4.mid"),
                 key=lambda path: -path.stat().st_size)  # the longest 4/4 grooves first


@pytest.fixture
def daemon(tmp_path, jack_server):
    process = DaemonProcess(tmp_path, free_udp_port(), link={"enabled": False})
    yield process
    process.kill()


def plays(daemon: DaemonProcess, receiver: Receiver) -> None:
    """Start the daemon and wait for its first notes at the receiver."""
    daemon.start()
    receiver.connect_from("rvaed:rvaed")
    assert receiver.wait_for(lambda m: any(s & 0xF0 == NOTE_ON for _, (s, *_) in m), 15), \
        daemon.text()[-2000:]


@pytest.mark.parametrize(("document", "field"), [
    ({"state": {"playing": "yes"}}, "state.playing"),
    ({"state": [1]}, "state"),
    ({"model": 5}, "model"),
    ({"state": {"presets": [[0.5]] * 8, "x": 0.25}}, "state.presets"),
    ({"state": {"steps": [[0, 3, "sometimes"]]}}, "state.steps"),
    ({"automation": {"bars": 2, "beats_per_bar": 4, "points": [[0, "x", 1]]}}, "automation"),
])
def test_a_state_file_of_the_wrong_shape_is_set_aside_and_the_music_starts(
        daemon, receiver, document, field):
    state = daemon.dirs["state"]
    state.mkdir(parents=True)
    written = json.dumps(document)
    (state / "state.json").write_text(written)
    plays(daemon, receiver)
    warnings = [line for line in daemon.text().splitlines()
                if f": {field}: " in line and "expected" in line]
    assert len(warnings) == 1 and "state.json" in warnings[0] and "set aside" in warnings[0], \
        daemon.text()[-2000:]
    aside = list(state.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == written  # nothing lost
    assert daemon.stop() == 0
    saved = json.loads((state / "state.json").read_text())  # a fresh, whole file
    assert saved["state"]["playing"] is True
    if field == "state.presets":
        assert saved["state"]["x"] == 0.25  # the good fields of a damaged file are kept


def bundle(port: int, *messages: tuple) -> None:
    """One OSC bundle of ``(address, *args)`` messages over real UDP."""
    builder = OscBundleBuilder(IMMEDIATELY)
    for address, *args in messages:
        message = OscMessageBuilder(address)
        for arg in args:
            message.add_arg(arg)
        builder.add_content(message.build())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(builder.build().dgram, ("127.0.0.1", port))


def secret(daemon: DaemonProcess) -> str:
    """The daemon's secret, which file commands carry first (kept in its state folder)."""
    return (daemon.dirs["state"] / "secret").read_text().strip()


def test_long_paths_and_fifos_in_file_commands_are_one_line_errors(daemon, receiver):
    plays(daemon, receiver)
    long = "a" * 300  # longer than a file name may be (255): ENAMETOOLONG
    key = secret(daemon)
    bundle(daemon.port, ("/rvaed/train", key, long), ("/rvaed/groove", key, long),
           ("/rvaed/x", 0.125))
    daemon.wait_log("/rvaed/train: refused path", 60)  # (the groove's: rate-limited, counted)
    fifo = daemon.dirs["inbox"] / "fifo.mid"
    os.mkfifo(fifo)  # no writer: the trainer's read waited forever
    daemon.osc("/rvaed/train", key, "fifo.mid")
    daemon.wait_log("not a regular file (a FIFO)", 120)
    daemon.wait_log("training failed", 120)
    text = daemon.text()
    assert "Traceback" not in text and "File name too long" in text
    assert text.count("refused path 'aaaa") == 1
    shutil.copy(GROOVES[0], daemon.dirs["inbox"] / "good.mid")  # the trainer is free again
    daemon.osc("/rvaed/train", key, "good.mid")
    wait_until(lambda: daemon.text().count("training: started") == 2, 120, daemon)
    # (a training stopped by SIGTERM may outlast stop's wait)
    daemon.osc("/rvaed/train/cancel", secret(daemon))
    wait_until(lambda: daemon.text().count("training failed")
               + daemon.text().count("training: model") == 2, 120, daemon)
    assert daemon.stop() == 0
    saved = json.loads((daemon.dirs["state"] / "state.json").read_text())
    assert saved["state"]["x"] == 0.125  # the rest of the bundle was applied


def test_sigterm_with_a_read_only_state_folder_silences_logs_and_exits_0(daemon, receiver):
    require_tools("unshare", "mount")
    state = daemon.dirs["state"]
    state.mkdir(parents=True)
    # the daemon in its own mount namespace, its state folder a read-only file system
    mounted = ('mount -t tmpfs -o ro rvaed-ro "$1" && '
               'exec "$0" -m rvaed.cli -v run --config "$2"')
    with open(daemon.log, "ab") as log:
        daemon.proc = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", mounted, sys.executable, str(state),
             str(daemon.config)], stdout=log, stderr=log)
    wait_until(lambda: "rvaed:rvaed" in jack_ports(), 15, daemon)
    receiver.connect_from("rvaed:rvaed")
    assert receiver.wait_for(lambda m: any(s & 0xF0 == NOTE_ON for _, (s, *_) in m), 15), \
        daemon.text()[-2000:]
    assert daemon.stop() == 0, daemon.text()[-2000:]
    text = daemon.text()
    assert "Traceback" not in text and "rvaed: stopped" in text
    lines = [line for line in text.splitlines() if "cannot save state at exit" in line]
    assert len(lines) == 1 and "Read-only file system" in lines[0]
    sent = re.search(r"(\d+) note-ons and (\d+) note-offs sent", text)
    assert sent and int(sent[1]) == int(sent[2]) > 0, sent  # silenced before exiting


def test_files_dropped_during_a_training_wait_and_are_trained_next(daemon, receiver):
    plays(daemon, receiver)
    inbox = daemon.dirs["inbox"]
    shutil.copy(GROOVES[0], inbox / "first.mid")
    daemon.wait_log("training: started", 120)
    shutil.copy(GROOVES[1], inbox / "second.mid")  # while the first training runs
    daemon.wait_log("until training can start: a training is running", 120)
    assert (inbox / "second.mid").exists()  # left where it was dropped, not taken
    wait_until(lambda: daemon.text().count("training: started") == 2, 300, daemon)
    # (a training stopped by SIGTERM may outlast stop's wait)
    daemon.osc("/rvaed/train/cancel", secret(daemon))
    assert not (inbox / "second.mid").exists()
    assert len(list((inbox / "taken").rglob("second.mid"))) == 1
    text = daemon.text()
    assert text.index("training: model") < text.rindex("training: started")  # first ended
    wait_until(lambda: daemon.text().count("training failed")
               + daemon.text().count("training: model") == 2, 120, daemon)
    assert daemon.stop() == 0
