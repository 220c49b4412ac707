"""The model library: timestamped names never overwritten, prefix lookup, the last model."""

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid
from rvaed.model.library import LAST_FILE, ModelLibrary, safe_name
from rvaed.training.export import export_model
from rvaed.training.network import RhythmVAE
from rvaed.training.options import ModelConfig

WHEN = datetime(2025, 3, 1, 20, 15, 0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real (small, untrained) model directory written by the exporter."""
    kit, grid = load_kit(), Grid()
    model = RhythmVAE(kit.size, grid.steps, ModelConfig((16,), (16,)))
    windows = np.random.default_rng(1).random((8, 3, kit.size, grid.steps), dtype=np.float32)
    out = tmp_path_factory.mktemp("exported") / "tiny"
    export_model(model, out, kit, grid, windows, {}, {}, [], name="tiny groove")
    return out


@pytest.fixture
def fresh_model(model_dir, tmp_path):
    """A copy of the model to hand to the library (which moves what it is given)."""
    copy = tmp_path / "incoming" / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_add_names_by_time_and_never_overwrites(model_dir, tmp_path):
    library = ModelLibrary(tmp_path / "models")
    added = []
    for _ in range(3):
        copy = library.scratch()
        shutil.copytree(model_dir, copy)
        added.append(library.add(copy, "funk", WHEN))
    assert [p.name for p in added] == ["funk-20250301-201500", "funk-20250301-201500-2",
                                       "funk-20250301-201500-3"]
    assert library.names() == [p.name for p in added]
    assert not any(name.startswith(".") for name in os.listdir(library.root))
    for path in added:
        assert (path / "decoder.onnx").read_bytes() == (model_dir / "decoder.onnx").read_bytes()


def test_name_defaults_to_the_manifest_and_is_made_safe(fresh_model, tmp_path):
    library = ModelLibrary(tmp_path / "models")
    assert library.add(fresh_model, when=WHEN).name == "tiny-groove-20250301-201500"
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name("...") == "model"
    assert safe_name("Funk Vol. 2") == "Funk-Vol.-2"


def test_a_broken_model_is_refused_and_nothing_is_added(fresh_model, tmp_path):
    library = ModelLibrary(tmp_path / "models")
    (fresh_model / "decoder.onnx").write_bytes(b"not onnx")
    with pytest.raises(RvaedError, match=r"decoder\.onnx: not a readable ONNX model"):
        library.add(fresh_model, "broken", WHEN)
    shutil.rmtree(fresh_model)
    with pytest.raises(RvaedError, match="no such model directory"):
        library.add(fresh_model, "gone", WHEN)
    assert library.names() == []


def test_a_model_from_another_filesystem_is_copied(model_dir, tmp_path):
    if os.stat(model_dir).st_dev == os.stat("/dev/shm").st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the temp dir here")
    elsewhere = Path(shutil.copytree(model_dir, f"/dev/shm/rvaed-test-{os.getpid()}"))
    try:
        library = ModelLibrary(tmp_path / "models")
        added = library.add(elsewhere, "shm", WHEN)
        assert (added / "manifest.json").is_file() and (elsewhere / "manifest.json").is_file()
    finally:
        shutil.rmtree(elsewhere)


def test_resolve_by_name_or_unique_prefix(model_dir, tmp_path):
    library = ModelLibrary(tmp_path / "models")
    for name in ("funk", "funk", "fusion"):
        copy = library.scratch()
        shutil.copytree(model_dir, copy)
        library.add(copy, name, WHEN)
    assert library.resolve("fus").name == "fusion-20250301-201500"
    assert library.resolve("funk-20250301-201500").name == "funk-20250301-201500"
    assert library.resolve("funk-20250301-201500-").name == "funk-20250301-201500-2"
    with pytest.raises(RvaedError, match=r"'fu' is ambiguous: funk-20250301-201500, "):
        library.resolve("fu")
    for bad in ("jazz", "", "../models", "/etc"):
        with pytest.raises(RvaedError, match="no model"):
            library.resolve(bad)


def test_the_last_loaded_model_is_remembered(fresh_model, model_dir, tmp_path, caplog):
    library = ModelLibrary(tmp_path / "models")
    assert library.last() is None
    added = library.add(fresh_model, "funk", WHEN)
    library.remember(added)
    assert json.loads((library.root / LAST_FILE).read_text()) == {"model": added.name}
    assert ModelLibrary(library.root).last() == added
    library.remember(model_dir)  # a model outside the library, e.g. the starter
    assert library.last() == model_dir
    library.remember(added)
    shutil.rmtree(added)
    assert library.last() is None and "is gone" in caplog.text
    (library.root / LAST_FILE).write_text("{not json")
    assert library.last() is None and "unreadable" in caplog.text


def test_discard_scratch_removes_leftovers_of_a_killed_training(fresh_model, tmp_path):
    library = ModelLibrary(tmp_path / "models")
    kept = library.add(fresh_model, "keep", WHEN)
    half_written = library.scratch()
    half_written.mkdir()
    (half_written / "decoder.onnx").write_bytes(b"\0" * 10)
    library.discard_scratch()
    assert os.listdir(library.root) == [kept.name]


def test_rename_keeps_the_timestamp_and_the_remembered_model(model_dir, tmp_path):
    library = ModelLibrary(tmp_path / "lib")
    added = library.add(model_dir, "dropped", when=WHEN)
    library.remember(added)
    renamed = library.rename(added.name, "my funk / take 2")
    assert renamed.name == "my-funk-take-2-20250301-201500"
    assert not added.exists() and library.last() == renamed
    with pytest.raises(RvaedError, match="no model"):
        library.rename("nothing-20250301-201500", "x")
