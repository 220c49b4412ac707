"""A model in 6/8 from end to end: `rvaed train` reads the meter from the files, the manifest
keeps it, and the real `rvaed run` plays it with Link's quantum set to its bar (3 beats)."""

import subprocess
import sys

import pytest
from midigen import hits, meter, smf, tempo, track, write
from rig import DaemonProcess, free_udp_port

from rvaed.model.modeldir import read_manifest

NOTE_ON = 0x90


def six_eight_file(path):
    """Eight bars of a 6/8 groove: kick on 1 and 4, snare on 4 of every other bar, 8ths on
    the hat (each bar 3 quarter notes)."""
    notes = []
    for bar in range(8):
        base = 3.0 * bar
        notes += [(base + eighth / 2, 42, 80) for eighth in range(6)]
        notes += [(base, 36, 110), (base + 1.5, 36 if bar % 2 else 38, 100)]
    return write(path, smf([track([meter(0, 6, 8), tempo(0, 100.0), *hits(notes)])]))


@pytest.fixture
def six_eight_model(tmp_path):
    pytest.importorskip("torch")
    model = tmp_path / "six-eight"
    done = subprocess.run(
        [sys.executable, "-m", "rvaed.cli", "train", str(six_eight_file(tmp_path / "a.mid")),
         "-o", str(model), "--epochs", "3", "--hidden", "32", "16", "--threads", "1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "meter 6/8, as 8 of the files' 8 whole bars are" in done.stdout + done.stderr
    return model


def test_a_six_eight_model_is_trained_and_played_in_its_meter(tmp_path, six_eight_model,
                                                              receiver):
    grid = read_manifest(six_eight_model).grid
    assert (grid.meter, grid.steps_per_beat, grid.bars, grid.steps) == ("6/8", 4, 2, 24)
    (tmp_path / "run").mkdir()
    daemon = DaemonProcess(tmp_path / "run", free_udp_port(), verbose=False,
                           model=str(six_eight_model), link={"enabled": False})
    try:
        daemon.start()
        daemon.wait_log("playing six-eight at", 15)
        text = daemon.text()
        assert "Link: off (link.enabled: false); internal clock, 120.0 BPM, quantum 3" in text
        assert "2-bar 6/8 windows of 1 file(s), kit rhythmvae, 9 voices x 24 steps" in text
        receiver.connect_from("rvaed:rvaed")
        assert receiver.wait_for(lambda m: any(s & 0xF0 == NOTE_ON for _, (s, *_) in m), 10), \
            daemon.text()[-2000:]
    finally:
        daemon.kill()
