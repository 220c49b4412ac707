"""Model directories: written atomically with a parity check, read back with clear errors."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from checks import DATA

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid
from rvaed.model.agreement import MIN_AGREEMENT
from rvaed.model.int8 import int8_decoder, onset_agreement
from rvaed.model.latent import LatentRegion
from rvaed.model.modeldir import DECODER_INT8, read_manifest
from rvaed.model.typical import typical_window
from rvaed.training import export
from rvaed.training.dataset import load_dataset
from rvaed.training.export import export_model, load_model, windows_sha256
from rvaed.training.loop import encode_means, train
from rvaed.training.options import IngestOptions, ModelConfig, TrainOptions

FUNK = DATA / "groove/drummer1/session1/1_funk_80_beat_4-4.mid"
TINY = ModelConfig(encoder_hidden=(48, 24), decoder_hidden=(24, 48))


@pytest.fixture(scope="module")
def trained():
    kit = load_kit("gmd")
    windows = load_dataset([FUNK], IngestOptions(kit)).windows
    result = train(windows, TrainOptions(epochs=5, model=TINY))
    return result, kit, windows


def write(trained, out_dir, **extra):
    result, kit, windows = trained
    return export_model(result.model, out_dir, kit, Grid(), windows, {"note": "test"},
                        {"val_loss": 1.0}, result.history, **extra)


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "funk"
    write(trained, out, extra_files={"ATTRIBUTION.md": "from the GMD\n"})
    return out


def test_a_model_directory_holds_onnx_and_a_manifest(model_dir, trained):
    _, kit, windows = trained
    manifest = read_manifest(model_dir)
    twin = [DECODER_INT8] if manifest.int8["file"] else []
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([
        "ATTRIBUTION.md", "decoder.onnx", "encoder.onnx", "manifest.json", *twin])
    assert bool(twin) == (manifest.int8["onset_agreement"] >= MIN_AGREEMENT)
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]
    assert model_dir.stat().st_mode & 0o777 == 0o755
    manifest = read_manifest(model_dir)
    assert (manifest.format_version, manifest.name, manifest.kit) == (1, "funk", kit)
    assert manifest.grid == Grid()
    assert manifest.architecture["encoder_hidden"] == [48, 24]
    assert manifest.architecture["latent"] == 2
    assert manifest.training["windows"] == len(windows)
    assert manifest.training["windows_sha256"] == windows_sha256(windows)
    assert manifest.training["note"] == "test" and manifest.metrics == {"val_loss": 1.0}
    assert [h["epoch"] for h in manifest.history] == [1, 2, 3, 4, 5]


def test_latent_region_spans_the_encoded_training_data(model_dir, trained):
    result, _, windows = trained
    means = encode_means(result.model, windows)
    region = read_manifest(model_dir).latent
    for axis in range(2):
        inside = (means[:, axis] >= region.low[axis]) & (means[:, axis] <= region.high[axis])
        assert inside.mean() >= 0.9
        assert region.high[axis] - region.low[axis] >= 1.0


def test_the_default_point_is_where_the_typical_groove_encodes(model_dir, trained):
    result, kit, windows = trained
    region = read_manifest(model_dir).latent
    typical = encode_means(result.model, windows)[typical_window(windows, kit)]
    assert region.default == pytest.approx(region.xy_of(*map(float, typical)), abs=1e-6)
    assert region.default != (0.5, 0.5)


def test_a_default_point_off_the_pad_is_refused(copy):
    edit_manifest(copy, lambda d: d["latent"].update(default=[0.5, 1.5]))
    assert "latent: missing or invalid (default: expected a pad position 0-1" in error_of(copy)
    edit_manifest(copy, lambda d: d["latent"].pop("default"))
    assert read_manifest(copy).latent.default == (0.5, 0.5)  # a model made before it


def test_onnx_matches_torch_and_carries_the_weights(model_dir, trained):
    result = trained[0]
    decoder = ort.InferenceSession(str(model_dir / "decoder.onnx"))
    z = np.random.default_rng(3).normal(0, 2, (50, 2)).astype(np.float32)
    with torch.no_grad():
        expected = result.model.decoder(torch.from_numpy(z)).numpy()
    assert np.abs(decoder.run(None, {"z": z})[0] - expected).max() <= 1e-4
    reloaded, manifest = load_model(model_dir)
    for name, value in result.model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(reloaded.state_dict()[name], value), name
    assert manifest.name == "funk"


def test_the_int8_twin_pads_layer_widths_that_are_not_a_multiple_of_its_block(model_dir):
    fp32 = onnx.load(model_dir / "decoder.onnx")  # this small model's layers: 24 and 48 wide
    twin = int8_decoder(fp32, 16)
    assert onset_agreement(fp32, twin, read_manifest(model_dir).latent) > 0.99


def test_exporting_again_replaces_the_model_in_one_piece(trained, tmp_path):
    out = tmp_path / "model"
    write(trained, out, name="first")
    write(trained, out, name="second")
    assert read_manifest(out).name == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failed_parity_check_writes_nothing(trained, tmp_path, monkeypatch):
    # The threshold is the one input we change: no real export differs from torch by more
    # than 1e-4, so a negative allowance stands in for a graph that would.
    monkeypatch.setattr(export, "PARITY", -1.0)
    with pytest.raises(RvaedError, match=r"parity check.*nothing written"):
        write(trained, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_model_is_never_overwritten(trained, tmp_path):
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "mine.mid").write_bytes(b"MThd")
    with pytest.raises(RvaedError, match="not a model directory"):
        write(trained, tmp_path / "songs")
    assert [p.name for p in (tmp_path / "songs").iterdir()] == ["mine.mid"]


@pytest.fixture
def copy(model_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(model_dir, target)
    return target


def edit_manifest(folder, change) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))


def error_of(folder) -> str:
    with pytest.raises(RvaedError) as caught:
        read_manifest(folder)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_files_are_named(copy):
    (copy / "decoder.onnx").unlink()
    assert error_of(copy) == f"{copy / 'decoder.onnx'}: missing"
    (copy / "manifest.json").unlink()
    assert error_of(copy).startswith(f"{copy / 'manifest.json'}: missing")
    assert error_of(copy / "nowhere") == f"{copy / 'nowhere'}: no such model directory"


def test_corrupt_files_are_named(copy):
    (copy / "encoder.onnx").write_bytes(b"\x00garbage" * 100)
    assert error_of(copy).startswith(f"{copy / 'encoder.onnx'}: not a readable ONNX model")
    (copy / "manifest.json").write_text('{"format_version": 1,')
    assert error_of(copy).startswith(f"{copy / 'manifest.json'}: not a valid manifest")


def test_unknown_format_version(copy):
    edit_manifest(copy, lambda d: d.update(format_version=7))
    assert error_of(copy) == (f"{copy / 'manifest.json'}: format_version 7 is not supported "
                              "(this rvaed reads version 1)")


def test_manifest_fields_are_checked(copy):
    edit_manifest(copy, lambda d: d["latent"].update(high=[-9, -9]))
    assert "latent: missing or invalid" in error_of(copy)
    edit_manifest(copy, lambda d: d.pop("kit"))
    assert error_of(copy).startswith(f"{copy / 'manifest.json'}: kit: missing or invalid")


def test_onnx_that_does_not_fit_the_kit(copy):
    edit_manifest(copy, lambda d: d["kit"]["voices"].pop())
    message = error_of(copy)
    assert message.startswith(f"{copy / 'decoder.onnx'}: output 'pattern' has shape")
    assert "expected [batch, 3, 8, 32] for kit gmd (8 voices) and 32 steps" in message


def test_onnx_that_does_not_fit_the_grid(copy):
    edit_manifest(copy, lambda d: d["grid"].update(bars=1))
    assert "expected [batch, 3, 9, 16]" in error_of(copy)


def test_onnx_with_other_names(copy):
    proto = onnx.load(str(copy / "decoder.onnx"))
    proto.graph.input[0].name = "latent"
    proto.graph.node[0].input[0] = "latent"
    onnx.save(proto, str(copy / "decoder.onnx"))
    assert error_of(copy) == (f"{copy / 'decoder.onnx'}: no input named 'z' "
                              "(has ['latent'])")


def test_latent_region_maps_the_pad_and_back():
    region = LatentRegion((-2.0, 0.0), (2.0, 1.0))
    assert region.z_of(0, 0) == (-2.0, 0.0) and region.z_of(1, 1) == (2.0, 1.0)
    assert region.z_of(0.25, 0.5) == (-1.0, 0.5)
    assert region.xy_of(*region.z_of(0.3, 0.8)) == pytest.approx((0.3, 0.8))
    assert region.xy_of(-5.0, 9.0) == (0.0, 1.0)


def test_latent_region_of_one_point_still_has_a_range():
    region = LatentRegion.around(np.array([[0.5, -0.25]]))
    assert region.low == pytest.approx((0.0, -0.75)) and region.high == pytest.approx(
        (1.0, 0.25))
    spread = np.random.default_rng(0).normal(0, 1, (10_000, 2))
    wide = LatentRegion.around(spread)
    assert wide.low == pytest.approx((-2.33, -2.33), abs=0.1)
    assert wide.high == pytest.approx((2.33, 2.33), abs=0.1)
