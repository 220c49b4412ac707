"""The int8 twin of a decoder: the same network with 8-bit weights, for a fast decode on a
busy machine.

On a live rig the decoder runs once per control change, and between two changes the rest of
the machine evicts its 2.8 MB of fp32 weights from the CPU caches: a decode then waits on
memory, several times slower than warm (docs/decisions.md). With 8-bit weights there is a
quarter as much to fetch. The twin folds each batch norm into the layer before it,
merges the onset and velocity heads into one matrix, and stores the larger matrices for
onnxruntime's MatMulNBits (8 bits, symmetric, one scale per block of inputs, int8
arithmetic). The first layer (2 inputs) stays fp32.

A twin is only worth shipping if it plays the same notes: `onset_agreement` compares its onset
decisions with the fp32 decoder's on a 65 x 65 grid over the latent region at every threshold
from 0.05 to 0.95. `int8_twin` tries blocks of 128 inputs (the fastest) down to 16 (the most
precise) and keeps the first twin that agrees on >= 99.9 % of the cells at every threshold,
or none. This module uses onnx and onnxruntime, not torch.
"""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from rvaed.model.agreement import MIN_AGREEMENT, THRESHOLDS
from rvaed.model.agreement import agreement as share_agreeing
from rvaed.model.latent import LATENT, LatentRegion
from rvaed.model.modeldir import DECODER_INPUT, DECODER_INT8, DECODER_OUTPUT

BITS = 8
BLOCKS = (128, 64, 32, 16)  # inputs per quantization block, fastest first
GRID_POINTS = 65
CONTRIB = "com.microsoft"


def int8_twin(decoder: onnx.ModelProto,
              region: LatentRegion) -> tuple[onnx.ModelProto | None, dict]:
    """The first twin of ``decoder`` (blocks of 128 inputs down to 16) that plays the same
    notes, and what was measured (for the manifest); (None, measured) when none does."""
    z = region.grid(GRID_POINTS)
    reference = _onsets(decoder, z)
    best = 0.0
    for block in BLOCKS:
        twin = int8_decoder(decoder, block)
        agreement = share_agreeing(reference, _onsets(twin, z))
        if agreement >= MIN_AGREEMENT:
            return twin, _measured(block, agreement)
        best = max(best, agreement)
    return None, _measured(None, best)


def int8_decoder(decoder: onnx.ModelProto, block: int = BLOCKS[0]) -> onnx.ModelProto:
    """The int8 twin of an exported fp32 decoder graph (see the module docstring)."""
    weights = {t.name: numpy_helper.to_array(t) for t in decoder.graph.initializer}
    slope = next(helper.get_attribute_value(a) for n in decoder.graph.node
                 if n.op_type == "LeakyRelu" for a in n.attribute if a.name == "alpha")
    epsilon = {n.output[0]: helper.get_attribute_value(a) for n in decoder.graph.node
               if n.op_type == "BatchNormalization" for a in n.attribute if a.name == "epsilon"}
    layers = []
    for i in range(len(epsilon)):
        p = f"decoder.blocks.{i}"
        layers.append(_fold(weights, p, epsilon[f"{p}.norm"]))
    heads = [weights[f"decoder.{h}.weight"] for h in ("onsets", "velocities", "offsets")]
    biases = [weights[f"decoder.{h}.bias"] for h in ("onsets", "velocities", "offsets")]
    voices, steps = _pattern_shape(decoder)

    nodes, tensors = [], []
    x = DECODER_INPUT
    for i, (w, b) in enumerate(layers):
        out = f"layer{i}"
        if i == 0:  # 2 inputs: too small to quantize, and too small to matter
            tensors += [numpy_helper.from_array(w, f"{out}.weight"),
                        numpy_helper.from_array(b, f"{out}.bias")]
            nodes.append(helper.make_node("Gemm", [x, f"{out}.weight", f"{out}.bias"],
                                          [f"{out}.linear"], transB=1))
        else:
            nodes.append(_matmul_nbits(x, w, b, block, out, tensors))
        nodes.append(helper.make_node("LeakyRelu", [f"{out}.linear"], [out], alpha=slope))
        x = out
    nodes += [
        _matmul_nbits(x, np.concatenate(heads[:2]), np.concatenate(biases[:2]), block, "hits",
                      tensors),
        helper.make_node("Sigmoid", ["hits.linear"], ["hits"]),
        _matmul_nbits(x, heads[2], biases[2], block, "offsets", tensors),
        helper.make_node("Tanh", ["offsets.linear"], ["offsets"]),
        helper.make_node("Concat", ["hits", "offsets"], ["heads"], axis=1),
        helper.make_node("Reshape", ["heads", "pattern_shape"], [DECODER_OUTPUT]),
    ]
    tensors.append(numpy_helper.from_array(np.array([-1, 3, voices, steps], np.int64),
                                           "pattern_shape"))
    graph = helper.make_graph(
        nodes, "rvaed-decoder-int8",
        [helper.make_tensor_value_info(DECODER_INPUT, TensorProto.FLOAT, ["batch", LATENT])],
        [helper.make_tensor_value_info(DECODER_OUTPUT, TensorProto.FLOAT,
                                       ["batch", 3, voices, steps])],
        tensors)
    model = helper.make_model(graph, producer_name="rvaed", opset_imports=[
        *decoder.opset_import, helper.make_opsetid(CONTRIB, 1)])
    model.ir_version = decoder.ir_version
    return model


def onset_agreement(decoder: onnx.ModelProto, twin: onnx.ModelProto,
                    region: LatentRegion) -> float:
    """The smallest share, over `THRESHOLDS`, of onset cells on a 65 x 65 grid over
    ``region`` where ``twin`` decides hit / no hit as ``decoder`` does."""
    z = region.grid(GRID_POINTS)
    return share_agreeing(_onsets(decoder, z), _onsets(twin, z))


def _onsets(proto: onnx.ModelProto, z: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([DECODER_OUTPUT], {DECODER_INPUT: z})[0][:, 0]


def _measured(block: int | None, agreement: float) -> dict:
    return {"file": DECODER_INT8 if block else None, "bits": BITS, "block": block,
            "onset_agreement": round(agreement, 6), "grid": GRID_POINTS,
            "thresholds": [float(THRESHOLDS[0]), float(THRESHOLDS[-1])]}


def _fold(weights: dict, prefix: str, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """A linear layer with the batch norm after it folded in (inference statistics)."""
    w, b = weights[f"{prefix}.linear.weight"], weights[f"{prefix}.linear.bias"]
    gamma, beta = weights[f"{prefix}.norm.weight"], weights[f"{prefix}.norm.bias"]
    mean, var = weights[f"{prefix}.norm.running_mean"], weights[f"{prefix}.norm.running_var"]
    scale = gamma / np.sqrt(var + epsilon)
    return ((w * scale[:, None]).astype(np.float32),
            ((b - mean) * scale + beta).astype(np.float32))


def _matmul_nbits(x: str, w: np.ndarray, b: np.ndarray, block: int, out: str,
                  tensors: list) -> onnx.NodeProto:
    """x @ w.T + b with ``w`` (outputs, inputs) quantized to 8 bits per block of inputs (the
    last block padded with zeros)."""
    rows, cols = w.shape
    padded = np.pad(w, ((0, 0), (0, -cols % block)))
    blocks = padded.reshape(rows, -1, block)
    limit = 2 ** (BITS - 1) - 1
    scales = np.abs(blocks).max(axis=-1) / limit
    scales[scales == 0] = 1.0
    # MatMulNBits stores unsigned values around the default zero point 2^(bits-1)
    quantized = np.clip(np.rint(blocks / scales[..., None]), -limit, limit) + 2 ** (BITS - 1)
    tensors += [numpy_helper.from_array(quantized.astype(np.uint8), f"{out}.weight"),
                numpy_helper.from_array(scales.reshape(-1).astype(np.float32), f"{out}.scales"),
                numpy_helper.from_array(b.astype(np.float32), f"{out}.bias")]
    return helper.make_node("MatMulNBits", [x, f"{out}.weight", f"{out}.scales", "", "",
                                            f"{out}.bias"], [f"{out}.linear"], domain=CONTRIB,
                            K=cols, N=rows, bits=BITS, block_size=block, accuracy_level=4)


def _pattern_shape(decoder: onnx.ModelProto) -> tuple[int, int]:
    dims = decoder.graph.output[0].type.tensor_type.shape.dim
    return dims[2].dim_value, dims[3].dim_value
