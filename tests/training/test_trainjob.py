"""Training in a spawned process: progress, cancel, continue, a killed child, bad data."""

import json
import os
import signal
import subprocess
import sys

from checks import DATA

from rvaed.core.kit import load_kit
from rvaed.model.modeldir import read_manifest
from rvaed.training.job import TrainJob, TrainRequest, run_training
from rvaed.training.options import IngestOptions, ModelConfig, TrainOptions

FUNK = DATA / "groove/drummer1/session1/1_funk_80_beat_4-4.mid"
TINY = ModelConfig(encoder_hidden=(16,), decoder_hidden=(16,))
FOREVER = TrainOptions(epochs=100_000, patience=None, model=TINY)

PARENT = """
import json, sys
from rvaed.training.options import ModelConfig, TrainOptions
from rvaed.training.job import TrainJob, TrainRequest, run_training
options = TrainOptions(epochs=3, model=ModelConfig((16,), (16,)))
seen = []
job = TrainJob.start([sys.argv[1]], sys.argv[2], options, seen.append)
finished = job.wait(120)
print(json.dumps({"finished": finished, "reason": job.reason, "result": job.result,
                  "epochs": [p.epoch for p in seen],
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def test_a_job_trains_in_a_child_and_the_parent_never_imports_torch(tmp_path):
    out = tmp_path / "model"
    done = subprocess.run([sys.executable, "-c", PARENT, str(FUNK), str(out)],
                          capture_output=True, text=True, timeout=180, check=True)
    report = json.loads(done.stdout)
    assert report["finished"] and report["reason"] is None
    assert report["epochs"] == [1, 2, 3] and report["torch"] == []
    assert report["result"]["stopped"] == "completed"
    manifest = read_manifest(out)
    assert manifest.training["epochs_run"] == 3 and manifest.kit.name == "rhythmvae"


def test_the_manifest_records_how_the_run_was_validated(tmp_path):
    rock = DATA / "groove/drummer9/session1/14_rock_120_beat_4-4.mid"
    options = TrainOptions(epochs=2, model=TINY)
    ingest = IngestOptions(load_kit("gmd"), workers=1)
    summary = run_training(TrainRequest((str(FUNK), str(rock)), tmp_path / "two", options,
                                        ingest))
    validation = read_manifest(tmp_path / "two").training["validation"]
    assert validation["by"] == "file" and validation["files"] == 1
    assert validation["windows"] == summary["metrics"]["val_windows"] > 0
    assert validation["train_windows"] == summary["metrics"]["train_windows"] > 0
    run_training(TrainRequest((str(FUNK),), tmp_path / "one", options, ingest))
    validation = read_manifest(tmp_path / "one").training["validation"]
    assert validation["by"] == "block" and validation["dropped_windows"] > 0


def start_and_wait_for_progress(tmp_path, name, **request):
    seen = []
    job = TrainJob.start([FUNK], tmp_path / name, FOREVER, seen.append, **request)
    while not seen and not job.finished:
        job.wait(0.5)
    assert seen, job.reason
    return job, seen


def test_cancel_keeps_the_best_so_far_and_continuing_extends_the_history(tmp_path):
    first, _ = start_and_wait_for_progress(tmp_path, "first")
    first.cancel()
    assert first.wait(60) and first.result["stopped"] == "cancelled"
    epochs = len(read_manifest(tmp_path / "first").history)
    assert epochs >= 1

    again, seen = start_and_wait_for_progress(tmp_path, "again",
                                              continue_from=tmp_path / "first")
    again.cancel()
    assert again.wait(60) and again.reason is None
    manifest = read_manifest(tmp_path / "again")
    assert manifest.training["continued_from"] == str(tmp_path / "first")
    assert [h["epoch"] for h in manifest.history][:epochs + 1] == list(range(1, epochs + 2))
    assert manifest.architecture["encoder_hidden"] == [16]
    assert seen[0].epoch == 1 and again.pid != first.pid

    other_kit = TrainJob.start([FUNK], tmp_path / "other", FOREVER,
                               continue_from=tmp_path / "first",
                               ingest=IngestOptions(load_kit("gmd")))
    assert other_kit.wait(60)
    assert other_kit.reason == (f"{tmp_path / 'first'}: the model was trained with kit "
                                "rhythmvae, grid of 32 steps; cannot continue it with kit gmd")


def test_a_child_whose_parent_stopped_listening_writes_its_model_and_says_nothing(
        tmp_path, capfd):
    job, _ = start_and_wait_for_progress(tmp_path, "model")
    capfd.readouterr()
    job._progress.close()  # what a daemon that stops without waiting for its training does
    job._control.close()
    job._process.join(60)
    assert job._process.exitcode == 0
    assert capfd.readouterr().err == ""  # no BrokenPipeError traceback in the daemon's log
    assert read_manifest(tmp_path / "model").history


def test_a_killed_child_is_noticed_and_leaves_no_model(tmp_path):
    job, _ = start_and_wait_for_progress(tmp_path, "model")
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(30)
    assert job.result is None
    assert job.reason == ("the training process was killed by SIGKILL (out of memory?) "
                          "before it wrote a model")
    assert list(tmp_path.iterdir()) == []


def test_data_without_windows_is_a_one_line_reason(tmp_path):
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "notes.txt").write_text("not a MIDI file")
    job = TrainJob.start([tmp_path / "songs"], tmp_path / "model", FOREVER)
    assert job.wait(60)
    assert job.result is None and "\n" not in job.reason
    assert str(tmp_path / "songs") in job.reason or "no" in job.reason
    assert not (tmp_path / "model").exists()
