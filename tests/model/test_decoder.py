"""The runtime decoder (onnxruntime) on the shipped starter model: decode, encode, no torch."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from checks import DATA

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Pattern
from rvaed.core.patternfile import load_pattern
from rvaed.model.modeldir import model_path, read_manifest, starter_model
from rvaed.model.runtime import Decoder
from rvaed.training.export import load_model


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(starter_model(), int8=False)  # the fp32 weights: torch's to 1e-4


@pytest.fixture(scope="module")
def network():
    return load_model(starter_model())[0]


def test_decode_matches_the_trained_network(decoder, network):
    for zx, zy in [(0.0, 0.0), (-1.5, 0.7), (2.0, -2.5)]:
        pattern = decoder.decode(zx, zy)
        with torch.no_grad():
            expected = network.decoder(torch.tensor([[zx, zy]]))[0].numpy()
        assert isinstance(pattern, Pattern) and pattern.onsets.shape == (9, 32)
        assert np.abs(pattern.to_array() - expected).max() <= 1e-4


def test_each_decode_is_its_own_pattern(decoder):
    first = decoder.decode(-1.0, -1.0)
    kept = first.to_array().copy()
    second = decoder.decode(1.0, 1.0)
    assert first != second
    assert np.array_equal(first.to_array(), kept)  # the reused output buffer is not shared


def test_decode_xy_covers_the_latent_region(decoder):
    region = decoder.manifest.latent
    assert decoder.decode_xy(0.0, 0.0) == decoder.decode(*region.low)
    assert decoder.decode_xy(1.0, 1.0) == decoder.decode(*region.high)


def test_encode_gives_the_networks_mean(decoder, network):
    groove = load_pattern(DATA / "groove/drummer3/session1/18_rock_120_beat_4-4.mid",
                          decoder.kit, decoder.grid)
    zx, zy = decoder.encode(groove)
    with torch.no_grad():
        mean = network.encoder(torch.from_numpy(groove.to_array()[None]))[0][0].numpy()
    assert (zx, zy) == pytest.approx(tuple(mean), abs=1e-4)
    assert decoder.encode_xy(groove) == decoder.manifest.latent.xy_of(zx, zy)


def test_encode_refuses_a_pattern_of_another_shape(decoder):
    with pytest.raises(RvaedError, match="8 voices x 32 steps does not fit"):
        decoder.encode(Pattern.empty(8, 32))


def test_decode_many_agrees_with_decode(decoder):
    z = np.array([[0.3, -0.2], [1.1, 0.4]])
    many = decoder.decode_many(z)
    for row, (zx, zy) in zip(many, z, strict=True):
        assert np.abs(row - decoder.decode(zx, zy).to_array()).max() <= 1e-6


def test_the_starter_model_is_the_groove_midi_dataset_with_attribution():
    manifest = read_manifest(model_path("starter"))
    assert manifest.kit == load_kit("gmd") and manifest.name == "starter"
    held_out = manifest.metrics["held_out"]
    assert held_out["onset_f1"] > held_out["baseline_onset_f1"]
    attribution = (starter_model() / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution and "Groove MIDI Dataset" in attribution
    size = sum(p.stat().st_size for p in starter_model().iterdir())
    assert size < 8_000_000


RUNTIME = """
import json, sys
from rvaed.model.runtime import Decoder
from rvaed.model.modeldir import starter_model
from rvaed.core.pattern import Pattern
import rvaed.training.job, rvaed.commands.generate, rvaed.commands.map, rvaed.benchmarks.decode
decoder = Decoder(starter_model())
pattern = decoder.decode_xy(0.5, 0.5)
z = decoder.encode(pattern)
print(json.dumps({"hits": len(pattern.hits()), "z": z,
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def test_the_runtime_never_imports_torch():
    done = subprocess.run([sys.executable, "-c", RUNTIME], capture_output=True, text=True,
                          timeout=60, check=True)
    figures = json.loads(done.stdout)
    assert figures["torch"] == []
    assert figures["hits"] > 0 and len(figures["z"]) == 2


def test_bending_nudges_the_patterns_reproducibly_and_zero_gives_the_model_back(decoder):
    points = [(x, y) for x in (0.1, 0.5, 0.9) for y in (0.1, 0.5, 0.9)]
    trained = [decoder.decode_xy(x, y) for x, y in points]
    bent = decoder.bent(0.5, seed=7)
    moved = [bent.decode_xy(x, y) for x, y in points]
    assert bent.bending == 0.5 and decoder.bending == 0.0
    assert max(float(np.abs(a.onsets - b.onsets).max()) for a, b in zip(trained, moved,
                                                                         strict=True)) > 0.05
    again = decoder.bent(0.5, seed=7)
    assert all(again.decode_xy(x, y) == m for (x, y), m in zip(points, moved, strict=True))
    unbent = bent.bent(0.0)
    assert all(unbent.decode_xy(x, y) == t for (x, y), t in zip(points, trained, strict=True))
    assert decoder.decode_xy(0.5, 0.5) == trained[4]  # the original is untouched


def test_bending_uses_the_graph_in_memory_not_the_model_folder(model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    loaded = Decoder(folder)
    first = loaded.bent(0.5, seed=7)
    (folder / "decoder.onnx").write_bytes(b"\x00replaced on disk")  # read it again: an error
    again = first.bent(0.5, seed=7)  # a twin bends from the same graph in memory
    reference = Decoder(model_dir).bent(0.5, seed=7)
    for x, y in ((0.1, 0.9), (0.5, 0.5), (0.8, 0.2)):
        assert again.decode_xy(x, y) == first.decode_xy(x, y) == reference.decode_xy(x, y)


def test_loading_decoding_and_bending_write_nothing_outside_rvaeds_folders(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    code = ("from rvaed.model.modeldir import starter_model; "
            "from rvaed.model.runtime import Decoder; "
            "d = Decoder(starter_model()); d.decode_xy(0.5, 0.5); d.bent(0.3).decode_xy(0.2, 0.8)")
    env = {key: value for key, value in os.environ.items()
           if key not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path,
                   env={**env, "HOME": str(home)})
    written = [str(path.relative_to(home)) for path in home.rglob("*")]
    assert written == []  # onnxruntime wrote .cache/Microsoft/DeveloperTools/.onnxruntime/*
