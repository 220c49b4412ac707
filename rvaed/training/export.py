"""Write a trained RhythmVAE as a model directory (ONNX + manifest), atomically; read it back.

The ONNX graphs are written directly from the weights (Gemm -> BatchNormalization ->
LeakyRelu per layer), with initializers named as the torch parameters, so that training can
continue from a model directory and the graphs stay small and plain for onnxruntime. Before
anything is written, onnxruntime's output is compared with torch's on a latent grid and on
the training windows; a model that does not match is refused, and nothing is written. The
decoder's int8 twin (rvaed.model.int8) is written beside it when it plays the same notes.
"""

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from rvaed.core.atomic import write_directory
from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit
from rvaed.core.pattern import Grid
from rvaed.model.int8 import int8_twin
from rvaed.model.latent import LATENT, LatentRegion
from rvaed.model.modeldir import (
    DECODER,
    DECODER_INPUT,
    DECODER_INT8,
    DECODER_OUTPUT,
    ENCODER,
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    ensure_replaceable,
    parse_manifest,
)
from rvaed.model.typical import typical_window
from rvaed.training.loop import encode_means
from rvaed.training.network import RhythmVAE
from rvaed.training.options import ModelConfig

OPSET, IR_VERSION = 17, 9  # onnxruntime >= 1.15 reads these (a Raspberry Pi may lag behind)
PARITY = 1e-4  # max abs difference allowed between onnxruntime and torch


def windows_sha256(windows: np.ndarray) -> str:
    """A fingerprint of exactly the training windows (float32, C order)."""
    return hashlib.sha256(np.ascontiguousarray(windows, dtype=np.float32).tobytes()).hexdigest()


def export_model(model: RhythmVAE, out_dir: str | Path, kit: Kit, grid: Grid,
                 windows: np.ndarray, training: dict, metrics: dict, history: list,
                 name: str | None = None, extra_files: dict[str, str] | None = None) -> Manifest:
    """Check parity, then write ``out_dir`` (replacing a previous model there) in one rename."""
    out_dir = Path(out_dir)
    if (model.voices, model.steps) != (kit.size, grid.steps):
        raise RvaedError(f"{out_dir}: the model has {model.voices} voices x {model.steps} steps "
                         f"but kit {kit.name} has {kit.size} voices and the grid {grid.steps}")
    ensure_replaceable(out_dir)
    model.eval()
    decoder, encoder = decoder_graph(model), encoder_graph(model)
    means = encode_means(model, windows)
    region = LatentRegion.around(means)
    typical = means[typical_window(windows, kit)]
    latent = replace(region, default=region.xy_of(float(typical[0]), float(typical[1])))
    check_parity(model, decoder, encoder, windows, latent, out_dir)
    twin, int8 = int8_twin(decoder, latent)
    manifest = Manifest(
        FORMAT_VERSION, name or out_dir.name, kit, grid,
        {"voices": kit.size, "steps": grid.steps, **model.config.to_dict()},
        {**training, "windows": len(windows), "windows_sha256": windows_sha256(windows)},
        metrics, history, latent, int8)
    files = {DECODER: decoder.SerializeToString(), ENCODER: encoder.SerializeToString(),
             MANIFEST: (json.dumps(manifest.to_dict(), indent=2) + "\n").encode()}
    if twin is not None:
        files[DECODER_INT8] = twin.SerializeToString()
    files.update({n: text.encode() for n, text in (extra_files or {}).items()})
    try:
        write_directory(out_dir, files)
    except OSError as exc:
        raise RvaedError(f"{out_dir}: cannot write the model: {exc.strerror or exc}") from None
    return manifest


def _weights(module: torch.nn.Module, prefix: str) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(t.detach().numpy().astype(np.float32), f"{prefix}.{k}")
            for k, t in module.state_dict().items() if not k.endswith("num_batches_tracked")]


def _blocks(nodes: list, blocks: torch.nn.Sequential, prefix: str, x: str, slope: float) -> str:
    """Append Gemm -> BatchNormalization -> LeakyRelu nodes for each block; return the output."""
    for i, block in enumerate(blocks):
        p = f"{prefix}.blocks.{i}"
        nodes += [
            helper.make_node("Gemm", [x, f"{p}.linear.weight", f"{p}.linear.bias"],
                             [f"{p}.gemm"], transB=1),
            helper.make_node("BatchNormalization",
                             [f"{p}.gemm", f"{p}.norm.weight", f"{p}.norm.bias",
                              f"{p}.norm.running_mean", f"{p}.norm.running_var"],
                             # torch types a submodule as Tensor | Module
                             [f"{p}.norm"], epsilon=block.norm.eps),  # type: ignore[union-attr]
            helper.make_node("LeakyRelu", [f"{p}.norm"], [f"{p}.out"], alpha=slope),
        ]
        x = f"{p}.out"
    return x


def _gemm(prefix: str, x: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Gemm", [x, f"{prefix}.weight", f"{prefix}.bias"], [out], transB=1)


def _graph_model(nodes: list, name: str, inputs: list, outputs: list,
                 weights: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rvaed")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def decoder_graph(model: RhythmVAE) -> onnx.ModelProto:
    """z (batch, 2) -> pattern (batch, 3, voices, steps)."""
    nodes: list = []
    h = _blocks(nodes, model.decoder.blocks, "decoder", DECODER_INPUT, model.config.leaky_slope)
    heads = [("onsets", "Sigmoid"), ("velocities", "Sigmoid"), ("offsets", "Tanh")]
    for head, activation in heads:
        nodes += [_gemm(f"decoder.{head}", h, f"{head}.linear"),
                  helper.make_node(activation, [f"{head}.linear"], [head])]
    shape = numpy_helper.from_array(np.array([-1, 3, model.voices, model.steps], np.int64),
                                    "pattern_shape")
    nodes += [helper.make_node("Concat", [head for head, _ in heads], ["heads"], axis=1),
              helper.make_node("Reshape", ["heads", "pattern_shape"], [DECODER_OUTPUT])]
    return _graph_model(
        nodes, "rvaed-decoder",
        [helper.make_tensor_value_info(DECODER_INPUT, TensorProto.FLOAT, ["batch", LATENT])],
        [helper.make_tensor_value_info(DECODER_OUTPUT, TensorProto.FLOAT,
                                       ["batch", 3, model.voices, model.steps])],
        [*_weights(model.decoder, "decoder"), shape])


def encoder_graph(model: RhythmVAE) -> onnx.ModelProto:
    """pattern (batch, 3, voices, steps) -> mean and logvar of z, each (batch, 2)."""
    nodes = [helper.make_node("Flatten", [ENCODER_INPUT], ["flat"], axis=1)]
    h = _blocks(nodes, model.encoder.blocks, "encoder", "flat", model.config.leaky_slope)
    nodes += [_gemm("encoder.mean", h, ENCODER_OUTPUT), _gemm("encoder.logvar", h, "logvar")]
    return _graph_model(
        nodes, "rvaed-encoder",
        [helper.make_tensor_value_info(ENCODER_INPUT, TensorProto.FLOAT,
                                       ["batch", 3, model.voices, model.steps])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", LATENT])
         for out in (ENCODER_OUTPUT, "logvar")],
        _weights(model.encoder, "encoder"))


def latent_grid(region: LatentRegion, points: int = 33) -> np.ndarray:
    """points x points latent points covering the region and the prior's +-3."""
    return LatentRegion(tuple(np.minimum(region.low, -3.0)),
                        tuple(np.maximum(region.high, 3.0))).grid(points)


@torch.no_grad()
def check_parity(model: RhythmVAE, decoder: onnx.ModelProto, encoder: onnx.ModelProto,
                 windows: np.ndarray, region: LatentRegion, out_dir: Path) -> None:
    """onnxruntime must match torch within PARITY, decoding a latent grid and encoding
    (up to 512 of) the windows."""
    z = latent_grid(region)
    x = np.ascontiguousarray(windows[:512], dtype=np.float32)
    checks = (
        ("decoder", decoder, {DECODER_INPUT: z}, model.decoder(torch.from_numpy(z))),
        ("encoder", encoder, {ENCODER_INPUT: x}, model.encoder(torch.from_numpy(x))[0]),
    )
    for what, proto, feed, expected in checks:
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        diff = float(np.max(np.abs(sess.run(None, feed)[0] - expected.numpy())))
        if not diff <= PARITY:
            raise RvaedError(f"{out_dir}: {what} export failed the parity check: onnxruntime "
                             f"differs from torch by {diff:.2e} (> {PARITY:g}); nothing written")


def load_model(model_dir: str | Path) -> tuple[RhythmVAE, Manifest]:
    """The torch model stored in a model directory (to continue training it) and its manifest."""
    folder = Path(model_dir)
    manifest = parse_manifest(folder / MANIFEST)
    try:
        config = ModelConfig.from_dict(manifest.architecture)
    except (KeyError, TypeError, ValueError) as exc:
        raise RvaedError(f"{folder / MANIFEST}: architecture: missing or invalid ({exc})") from None
    model = RhythmVAE(manifest.kit.size, manifest.grid.steps, config)
    state = model.state_dict()
    loaded: set[str] = set()
    for file in (DECODER, ENCODER):
        try:
            proto = onnx.load(str(folder / file))
        except Exception as exc:  # onnx raises protobuf errors of several types
            raise RvaedError(f"{folder / file}: not a readable ONNX model ({exc})") from None
        for tensor in proto.graph.initializer:
            if tensor.name in state:
                value = torch.from_numpy(numpy_helper.to_array(tensor).copy())
                if value.shape != state[tensor.name].shape:
                    raise RvaedError(f"{folder / file}: {tensor.name} has shape "
                                     f"{tuple(value.shape)}, expected "
                                     f"{tuple(state[tensor.name].shape)} from the manifest")
                state[tensor.name] = value
                loaded.add(tensor.name)
    missing = [k for k in state if k not in loaded and not k.endswith("num_batches_tracked")]
    if missing:
        raise RvaedError(f"{folder}: the ONNX files lack weights {missing[0]} (and "
                         f"{len(missing) - 1} more): cannot continue training from them")
    model.load_state_dict(state)
    model.eval()
    return model, manifest
