"""A trained model on disk: a directory with decoder.onnx, encoder.onnx and manifest.json,
and usually decoder-int8.onnx (the decoder with 8-bit weights, see rvaed.model.int8).

The manifest says what the networks expect (kit, grid), what they were trained on, how well
they did, and where in the latent space the training data lies (`LatentRegion`), so that a
controller's full range covers the musically populated area rather than the prior's +-3.
Reading a model checks everything once, here, and says in one line what is wrong; this
module uses onnxruntime and numpy, never torch.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit
from rvaed.core.pattern import Grid
from rvaed.model.latent import LATENT, LatentRegion


def session_options() -> ort.SessionOptions:
    """Options for low-latency single-sample inference beside a real-time thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST, DECODER, ENCODER = "manifest.json", "decoder.onnx", "encoder.onnx"
DECODER_INT8 = "decoder-int8.onnx"
DECODER_INPUT, DECODER_OUTPUT = "z", "pattern"
ENCODER_INPUT, ENCODER_OUTPUT = "pattern", "mean"




@dataclass(frozen=True)
class Manifest:
    """Everything manifest.json says about a model (kit and grid already validated)."""

    format_version: int
    name: str
    kit: Kit
    grid: Grid
    architecture: dict
    training: dict
    metrics: dict
    history: list
    latent: LatentRegion
    int8: dict = field(default_factory=dict)  # the int8 twin: its file (or None), as measured

    def to_dict(self) -> dict:
        return {"format_version": self.format_version, "name": self.name,
                "kit": self.kit.to_dict(), "grid": self.grid.to_dict(),
                "architecture": self.architecture, "training": self.training,
                "metrics": self.metrics, "history": self.history,
                "latent": self.latent.to_dict(), "int8": self.int8}


def starter_model() -> Path:
    """The model shipped with rvaed (Groove MIDI Dataset), so it plays before any training."""
    return Path(str(resources.files("rvaed").joinpath("models", "starter")))


def model_path(name_or_path: str | Path) -> Path:
    """A model named on the command line or in a config: 'starter' or a directory."""
    return starter_model() if str(name_or_path) == "starter" else Path(name_or_path)


def ensure_replaceable(folder: Path) -> None:
    """Refuse to write a model over a folder that is not a model (someone's files)."""
    if folder.exists() and not (folder / MANIFEST).is_file():
        raise RvaedError(f"{folder}: exists and is not a model directory; not overwriting it")


def read_manifest(model_dir: str | Path) -> Manifest:
    """Read and check a model directory: manifest fields, and the fp32 ONNX files fit them
    (the int8 twin is checked when a decoder loads it, and has a fallback)."""
    return open_model(model_dir, int8=False)[0]


def open_model(model_dir: str | Path, options: ort.SessionOptions | None = None,
               int8: bool = True,
               ) -> tuple[Manifest, ort.InferenceSession, ort.InferenceSession, str]:
    """The manifest and onnxruntime sessions of the decoder and the encoder, all checked, and
    which decoder file it is: the int8 twin when the manifest names one and ``int8`` asks for
    it, else decoder.onnx. A twin that cannot be used (missing, unreadable, or an onnxruntime
    without MatMulNBits) is one warning, and the fp32 decoder plays instead."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise RvaedError(f"{folder}: no such model directory")
    manifest = parse_manifest(folder / MANIFEST)
    voices, steps = manifest.kit.size, manifest.grid.steps
    fits = f"for kit {manifest.kit.name} ({voices} voices) and {steps} steps"

    def decoder(name: str) -> ort.InferenceSession:
        return session(folder / name, options, {DECODER_INPUT: (LATENT,)},
                       {DECODER_OUTPUT: (3, voices, steps)}, fits)

    # decoder.onnx is checked even when the twin plays: bending and more training read it
    played, plays = DECODER, decoder(DECODER)
    encoder = session(folder / ENCODER, options,
                      {ENCODER_INPUT: (3, voices, steps)}, {ENCODER_OUTPUT: (LATENT,)}, fits)
    if int8 and manifest.int8.get("file") == DECODER_INT8:
        try:
            played, plays = DECODER_INT8, decoder(DECODER_INT8)
        except RvaedError as exc:
            log.warning("%s; decoding with the fp32 weights of %s", exc, DECODER)
    return manifest, plays, encoder, played


def parse_manifest(path: Path) -> Manifest:
    """manifest.json -> Manifest, or a one-line error naming the file and the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RvaedError(f"{path}: missing (is {path.parent} a model directory?)") from None
    except OSError as exc:
        raise RvaedError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RvaedError(f"{path}: not a valid manifest (corrupt JSON: {exc})") from None
    if not isinstance(data, dict):
        raise RvaedError(f"{path}: not a valid manifest (expected a JSON object)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise RvaedError(f"{path}: format_version {version!r} is not supported "
                         f"(this rvaed reads version {FORMAT_VERSION})")
    field = "kit"
    try:
        kit = Kit.from_dict(data["kit"])
        field = "grid"
        grid = Grid.from_dict(data["grid"])
        field = "latent"
        latent = LatentRegion(_pair(data["latent"]["low"]), _pair(data["latent"]["high"]),
                              _pair(data["latent"].get("default", (0.5, 0.5))))
        if not all(h > lo for lo, h in zip(latent.low, latent.high, strict=True)):
            raise ValueError("expected high > low on both axes")
        if not all(0.0 <= v <= 1.0 for v in latent.default):
            raise ValueError(f"default: expected a pad position 0-1, got {latent.default}")
        field = "name"
        name = str(data["name"])
    except (KeyError, TypeError, ValueError, RvaedError) as exc:
        raise RvaedError(f"{path}: {field}: missing or invalid ({exc})") from None
    int8 = data.get("int8") or {}
    if not isinstance(int8, dict):
        raise RvaedError(f"{path}: int8: expected an object, got {int8!r:.80}")
    return Manifest(version, name, kit, grid, data.get("architecture", {}),
                    data.get("training", {}), data.get("metrics", {}),
                    data.get("history", []), latent, int8)


def _pair(values: object) -> tuple[float, float]:
    if not isinstance(values, Iterable):
        raise ValueError("expected [low, high]")
    low, high = values
    pair = (float(low), float(high))
    if not np.isfinite(pair).all():
        raise ValueError("expected finite numbers")
    return pair


def session(path: Path, options: ort.SessionOptions | None, inputs: dict[str, tuple],
            outputs: dict[str, tuple], fits: str) -> ort.InferenceSession:
    """An onnxruntime session on ``path`` whose named inputs/outputs have the given
    per-sample shapes (after a batch dimension)."""
    if not path.is_file():
        raise RvaedError(f"{path}: missing")
    try:
        sess = ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RvaedError(f"{path}: not a readable ONNX model ({reason[:200]})") from None
    for kind, expected, args in (("input", inputs, sess.get_inputs()),
                                 ("output", outputs, sess.get_outputs())):
        shapes = {arg.name: arg.shape for arg in args}
        for name, shape in expected.items():
            if name not in shapes:
                raise RvaedError(f"{path}: no {kind} named {name!r} (has {sorted(shapes)})")
            if len(shapes[name]) != len(shape) + 1 or list(shapes[name][1:]) != list(shape):
                raise RvaedError(f"{path}: {kind} {name!r} has shape {shapes[name]}, expected "
                                 f"[batch, {', '.join(map(str, shape))}] {fits}")
    return sess
