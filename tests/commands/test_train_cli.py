"""`rvaed train`, `rvaed generate`, `rvaed map`: real files in, model/MIDI/PNG out."""

import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import zlib

import pytest
from checks import DATA

from rvaed.cli import main
from rvaed.commands.train import attribution, gmd_files, plot_image, text_plot
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid
from rvaed.core.patternfile import load_pattern
from rvaed.model.modeldir import read_manifest, starter_model

FUNK = DATA / "groove/drummer1/session1/1_funk_80_beat_4-4.mid"
CLI = [sys.executable, "-m", "rvaed.cli"]


def png_size(path) -> tuple[int, int]:
    """Width and height of a PNG, after checking its signature and image data."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    pixels = zlib.decompress(data[start:start + length])
    assert len(pixels) == height * (1 + 3 * width)
    return width, height


def test_train_writes_a_model_and_shows_the_loss_curve(tmp_path, capsys):
    out, plot = tmp_path / "funk", tmp_path / "loss.png"
    assert main(["train", str(FUNK), "-o", str(out), "--epochs", "4", "--threads", "1",
                 "--seed", "3", "--hidden", "64", "32", "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert f"model written to {out} (completed; kept epoch" in printed
    assert "loss ('.' training, 'o' validation)" in printed and "epochs 1-4" in printed
    assert png_size(plot) == (600, 300)
    manifest = read_manifest(out)
    assert manifest.training["options"]["seed"] == 3 and len(manifest.history) == 4
    assert manifest.architecture["encoder_hidden"] == [64, 32]
    assert manifest.architecture["decoder_hidden"] == [32, 64]
    assert manifest.training["validation"]["by"] == "block"  # one file: a block of it


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_training_on_nothing_usable_is_one_line(tmp_path):
    (tmp_path / "songs").mkdir()
    shutil.copy(DATA / "groove/drummer1/session2/4_jazz_120_beat_3-4.mid", tmp_path / "songs")
    done = run_cli("train", tmp_path / "songs", "-o", tmp_path / "model", "--meter", "4/4")
    assert done.returncode == 2
    assert done.stderr.startswith("rvaed train: error: ") and done.stderr.count("\n") == 1
    assert "no 2-bar 4/4 windows: bars in other meters were skipped" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "model").exists()


def test_files_that_mix_meters_are_one_line_naming_them(tmp_path):
    (tmp_path / "songs").mkdir()
    shutil.copy(DATA / "groove/drummer1/session2/4_jazz_120_beat_3-4.mid", tmp_path / "songs")
    shutil.copy(DATA / "groove/drummer1/session1/1_funk_80_beat_4-4.mid", tmp_path / "songs")
    done = run_cli("train", tmp_path / "songs", "-o", tmp_path / "model")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert re.search(r"the files mix meters \(87 bars in 3/4, 29 bars in 4/4\): choose one "
                     r"with --meter \(e.g. --meter 3/4\)", done.stderr), done.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("option, value, expected", [
    ("--batch-size", "1", "an integer >= 2, got 1"),
    ("--epochs", "0", "an integer >= 1, got 0"),
    ("--threads", "-1", "an integer >= 1, got -1"),
    ("--seed", "-5", "an integer from 0 to"),
    ("--patience", "-1", "an integer >= 0 (0 = never), got -1"),
    ("--hidden", "0", "layer widths >= 1, got 0"),
    ("--plot", "/no/such/folder/loss.png", "a file in an existing folder"),
])
def test_an_option_that_cannot_train_is_one_line_naming_it(tmp_path, option, value, expected):
    done = run_cli("train", FUNK, "-o", tmp_path / "model", "--epochs", "2", option, value)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"rvaed train: error: {option}")
    assert expected in done.stderr and not (tmp_path / "model").exists()


def test_ctrl_c_writes_the_best_model_so_far(tmp_path):
    out = tmp_path / "model"
    proc = subprocess.Popen([*CLI, "train", str(FUNK), "-o", str(out), "--epochs", "100000",
                             "--patience", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("epoch 10/"):
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopping after this batch" in stderr and "(cancelled; kept epoch" in stdout
    manifest = read_manifest(out)
    assert manifest.training["stopped"] == "cancelled" and len(manifest.history) >= 10


def test_generate_writes_the_decoded_pattern(tmp_path, capsys):
    out = tmp_path / "groove.mid"
    assert main(["generate", "--xy", "0.2", "0.8", "--threshold", "0.4", "-o", str(out)]) == 0
    hits = int(capsys.readouterr().out.split(": ")[1].split()[0])
    pattern = load_pattern(out, load_kit("gmd"), Grid())
    assert hits > 0 and len(pattern.hits()) == hits


def test_generate_without_a_point_writes_the_models_default_groove(tmp_path, capsys):
    out = tmp_path / "groove.mid"
    assert main(["generate", "-o", str(out)]) == 0
    latent = read_manifest(starter_model()).latent
    z = latent.z_of(*latent.default)
    assert f"at z = ({z[0]:.3f}, {z[1]:.3f})" in capsys.readouterr().out


def test_generate_refuses_a_broken_model_in_one_line(tmp_path):
    shutil.copytree(DATA.parent.parent / "rvaed/models/starter", tmp_path / "model")
    manifest = tmp_path / "model/manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 2}))
    done = run_cli("generate", "--model", tmp_path / "model", "-o", tmp_path / "x.mid")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == (f"rvaed generate: error: {manifest}: format_version 2 is not "
                           "supported (this rvaed reads version 1)\n")
    assert not (tmp_path / "x.mid").exists()


def test_gmd_split_picks_the_4_4_beats_and_credits_them(tmp_path):
    rows = [("a/1_funk_80_beat_4-4.mid", "train", "beat", "4-4"),
            ("a/2_funk_80_fill_4-4.mid", "train", "fill", "4-4"),
            ("a/3_jazz_120_beat_3-4.mid", "train", "beat", "3-4"),
            ("a/4_rock_120_beat_4-4.mid", "validation", "beat", "4-4")]
    with open(tmp_path / "info.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["midi_filename", "split", "beat_type", "time_signature"])
        writer.writerows(rows)
    assert gmd_files([str(tmp_path)], "train") == [tmp_path / rows[0][0]]
    assert gmd_files([str(tmp_path)], "validation") == [tmp_path / rows[3][0]]
    text = attribution([tmp_path / rows[0][0]], [str(tmp_path)], "train")
    assert "CC BY 4.0" in text and "- a/1_funk_80_beat_4-4.mid" in text and "1 files" in text
    with pytest.raises(Exception, match="no 4/4 beats in the test split"):
        gmd_files([str(tmp_path)], "test")


def test_text_plot_draws_both_curves():
    history = [{"loss": 10.0 - e, "val_loss": 12.0 - e} for e in range(8)]
    lines = text_plot(history).splitlines()
    assert len(lines) == 12 and lines[-1].endswith("epochs 1-8")
    plot = [line.split("|", 1)[1] for line in lines[1:-1]]
    assert plot[0][0] == "o" and plot[-1][-1] == "."  # validation starts high, training ends low
    assert all(len(row) == 8 for row in plot)


def test_plot_image_draws_each_curve_in_its_own_range():
    history = [{"loss": 10.0 - e, "val_loss": 12.0 - e} for e in range(8)]
    image = plot_image(history, width=80, height=60)
    orange = [(image[:, x] == (255, 127, 14)).all(axis=1).nonzero()[0] for x in range(80)]
    blue = [(image[:, x] == (31, 119, 180)).all(axis=1).nonzero()[0] for x in range(80)]
    assert orange[0].min() <= 2  # validation starts at the top of the range...
    assert blue[-1].max() >= 57  # ...training ends at its bottom
    assert orange[-1].mean() == pytest.approx(blue[56].mean(), abs=2)  # 5 at both: one scale


def test_train_says_what_it_read(tmp_path, capsys):
    songs = tmp_path / "songs"
    shutil.copytree(FUNK.parent, songs / "funk")
    (songs / "notes.mid").write_text("not MIDI")
    assert main(["train", str(songs), "-o", str(tmp_path / "m"), "--epochs", "1",
                 "--hidden", "16"]) == 0
    said = capsys.readouterr().err
    files = len(list(FUNK.parent.glob("*.mid")))
    assert f"read {files} file(s)" in said
    assert f"refused {songs / 'notes.mid'}: not a MIDI file (no MThd header)" in said
    (unmapped,) = [line for line in said.splitlines() if line.startswith("unmapped notes")]
    assert unmapped.startswith("unmapped notes (no voice of kit rhythmvae): note ")
    assert "note 22 x" in unmapped and "; kit gmd reads" in unmapped


@pytest.mark.parametrize("kit", ["gmd", "rhythmvae", "rhythmvae-greedy"])
def test_a_generated_file_inspects_as_one_window_with_every_hit_in_its_voice(tmp_path, kit):
    out = tmp_path / "t.mid"
    assert run_cli("generate", "--model", "starter", "--xy", "0", "1", "-o", out).returncode == 0
    done = run_cli("inspect", "--kit", kit, "--json", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    pattern = load_pattern(out, load_kit(kit), Grid())
    expected = [int((pattern.onsets[v] > 0.5).sum()) for v in range(pattern.voices)]
    assert report["summary"]["windows"] == 1 and report["unmapped_notes"] == {}
    assert list(report["summary"]["hits_per_voice"].values()) == expected


def test_training_without_torch_is_one_line_naming_what_to_install(tmp_path):
    # torch is hidden the way Python documents it (sys.modules['torch'] = None makes it
    # unimportable and unfindable); the Pi install test runs the same in a real play-only venv
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = run_cli("train", FUNK, "-o", tmp_path / "model", env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "rvaed train: error: training needs torch" in done.stderr
    assert "-m pip install '.[train]' --extra-index-url" in done.stderr
    assert FUNK.exists() and not (tmp_path / "model").exists()
