"""The int8 twin of a decoder: plays the same notes as the fp32 weights, or is not used."""

import json
import logging
import shutil

import numpy as np
import onnx
import pytest

from rvaed.model.agreement import MIN_AGREEMENT
from rvaed.model.int8 import GRID_POINTS, int8_twin, onset_agreement
from rvaed.model.modeldir import DECODER, DECODER_INT8, read_manifest, starter_model
from rvaed.model.runtime import Decoder


@pytest.fixture(scope="module")
def fp32():
    return onnx.load(starter_model() / DECODER)


def test_the_starter_ships_a_twin_that_agrees_on_the_onsets(fp32):
    manifest = read_manifest(starter_model())
    assert manifest.int8["file"] == DECODER_INT8
    assert manifest.int8["onset_agreement"] >= MIN_AGREEMENT
    shipped = onnx.load(starter_model() / DECODER_INT8)
    measured = onset_agreement(fp32, shipped, manifest.latent)
    assert measured == pytest.approx(manifest.int8["onset_agreement"], abs=2e-4)
    assert measured >= MIN_AGREEMENT


def test_the_decoder_plays_the_twin_and_it_stays_close_to_fp32():
    fast, exact = Decoder(starter_model()), Decoder(starter_model(), int8=False)
    assert (fast.weights, exact.weights) == ("int8", "fp32")
    z = fast.manifest.latent.grid(GRID_POINTS)[::97]
    a, b = fast.decode_many(z), exact.decode_many(z)
    assert np.abs(a - b).max() < 0.05  # 8-bit weights, not another network
    assert np.mean((a[:, 0] > 0.5) == (b[:, 0] > 0.5)) >= MIN_AGREEMENT
    for zx, zy in z[:5]:
        assert np.array_equal(fast.decode(zx, zy).to_array(), fast.decode_many([[zx, zy]])[0])


def test_bending_zero_gives_the_twin_back():
    fast = Decoder(starter_model())
    bent = fast.bent(0.3, seed=1)
    assert bent.weights == "fp32" and bent.bending == 0.3
    back = bent.bent(0.0)
    assert back.weights == "int8" and back.decode(0.1, 0.2) == fast.decode(0.1, 0.2)


def test_export_keeps_a_twin_only_when_it_agrees(fp32, monkeypatch):
    region = read_manifest(starter_model()).latent
    twin, measured = int8_twin(fp32, region)
    assert twin is not None and measured["onset_agreement"] >= MIN_AGREEMENT
    assert measured["file"] == DECODER_INT8 and measured["block"] in (128, 64, 32, 16)
    monkeypatch.setattr("rvaed.model.int8.MIN_AGREEMENT", 1.01)  # nothing can pass
    none, measured = int8_twin(fp32, region)
    assert none is None and measured["file"] is None and measured["block"] is None
    assert 0.99 < measured["onset_agreement"] < 1.0


def test_a_broken_twin_is_one_warning_and_the_fp32_decoder_plays(tmp_path, caplog):
    folder = tmp_path / "model"
    shutil.copytree(starter_model(), folder)
    (folder / DECODER_INT8).write_bytes(b"not onnx")
    caplog.set_level(logging.WARNING, logger="rvaed.model.modeldir")
    decoder = Decoder(folder)
    assert decoder.weights == "fp32"
    assert decoder.decode(0.0, 0.0) == Decoder(starter_model(), int8=False).decode(0.0, 0.0)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert DECODER_INT8 in warning and "fp32" in warning and "\n" not in warning
    data = json.loads((folder / "manifest.json").read_text())
    data["int8"] = {"file": None}
    (folder / "manifest.json").write_text(json.dumps(data))
    assert Decoder(folder).weights == "fp32"  # a model without a twin
