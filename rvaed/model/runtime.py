"""The runtime side of a model: latent point -> Pattern with onnxruntime, and back (encode).

Tuned for one sample at a time on a busy live machine: the model's int8 twin when it has
one (a quarter of the weights to fetch when the caches are cold; rvaed.model.int8), one
intra-op thread that never spins (a spinning pool would steal the core the sequencer needs),
sequential execution, all graph optimizations, and the decoder's input and output bound once
to preallocated buffers, so a decode call only writes two floats, runs the graph and copies
the result into a Pattern.

Once `tabulate` has built the model's table (rvaed.model.table: the fp32 decoder on a grid
over the pad, read by interpolation), a decode reads the table instead, several times faster
and as fast cold as warm; direct decoding serves until then, for points outside the table,
and for a table that does not play the decoder's notes. This module never imports torch.
"""

import copy
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit
from rvaed.core.pattern import Grid, Pattern
from rvaed.model.latent import LATENT, LatentRegion
from rvaed.model.modeldir import (
    DECODER,
    DECODER_INPUT,
    DECODER_INT8,
    DECODER_OUTPUT,
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    Manifest,
    open_model,
    session_options,
)
from rvaed.model.table import DecodeTable, build_apart


class Decoder:
    """A loaded model. decode/encode may be called from any one thread at a time (a lock
    guards the shared buffers if two threads try)."""

    def __init__(self, model_dir: str | Path, int8: bool = True) -> None:
        """``int8`` False decodes with the fp32 weights even when the model has a twin."""
        self.model_dir = Path(model_dir)
        self.manifest: Manifest
        self.manifest, self._decoder, self._encoder, file = open_model(
            model_dir, session_options(), int8)
        self.weights = "int8" if file == DECODER_INT8 else "fp32"
        self.bending = 0.0
        self.table: DecodeTable | None = None
        self._fp32_graph: bytes | Path = self.model_dir / DECODER  # what a table is built from
        self._trained = (self._decoder, self.weights)  # what bending 0 gives back
        self._fp32 = _Graph(self.model_dir / DECODER)  # shared by every bent twin
        self._bind()

    def bent(self, amount: float, seed: int = 0) -> "Decoder":
        """This model with its decoder's weight matrices nudged by Gaussian noise of
        ``amount`` x each matrix's spread: the original device's "bending", for happy
        accidents. ``amount`` 0 gives the trained weights back. Bends the fp32 weights (and
        decodes with them). Takes a moment (it rebuilds the session): call it off the event
        loop."""
        twin = copy.copy(self)
        twin.table = None  # another network: `tabulate` builds its own
        if amount <= 0:
            twin._fp32_graph = self.model_dir / DECODER
            twin._decoder, twin.weights = self._trained
            twin.bending = 0.0
        else:
            twin._fp32_graph = _bent_graph(self._fp32.proto(), amount, seed)
            twin._decoder = ort.InferenceSession(twin._fp32_graph, session_options())
            twin.bending, twin.weights = float(amount), "fp32"
        twin._bind()
        return twin

    def _bind(self) -> None:
        """Preallocated input/output buffers bound to the decoder session."""
        self._z = np.zeros((1, LATENT), dtype=np.float32)
        self._out = np.zeros((1, 3, self.kit.size, self.grid.steps), dtype=np.float32)
        self._binding = self._decoder.io_binding()
        self._binding.bind_input(DECODER_INPUT, "cpu", 0, np.float32, list(self._z.shape),
                                 self._z.ctypes.data)
        self._binding.bind_output(DECODER_OUTPUT, "cpu", 0, np.float32, list(self._out.shape),
                                  self._out.ctypes.data)
        self._lock = threading.Lock()

    @property
    def kit(self) -> Kit:
        return self.manifest.kit

    @property
    def grid(self) -> Grid:
        return self.manifest.grid

    def tabulate(self) -> DecodeTable:
        """Build this decoder's table from its fp32 weights (in a process of its own) and
        decode through it from now on if it plays the same notes. Takes a moment: call it off
        the event loop. RvaedError when the build fails."""
        table = build_apart(self._fp32_graph, self.manifest.latent)
        if table.usable:
            self.table = table
        return table

    def decode(self, zx: float, zy: float) -> Pattern:
        """The pattern at latent point (zx, zy); onsets are hit probabilities (the threshold
        is applied when the pattern is played)."""
        table = self.table
        if table is not None:
            values = table.lookup(zx, zy)
            if values is not None:
                return Pattern.from_array(values)
        with self._lock:
            self._z[0, 0], self._z[0, 1] = zx, zy
            self._decoder.run_with_iobinding(self._binding)
            return Pattern.from_array(self._out[0])

    def decode_xy(self, x: float, y: float, region: LatentRegion | None = None) -> Pattern:
        """The pattern under controller position (x, y) in [0, 1]^2 of ``region`` (default
        the model's: the box its training data fills)."""
        return self.decode(*(region or self.manifest.latent).z_of(x, y))

    def decode_many(self, z: np.ndarray) -> np.ndarray:
        """Decode latent points (N, 2) in one batch: (N, 3, voices, steps) (for maps)."""
        return self._decoder.run([DECODER_OUTPUT],
                                 {DECODER_INPUT: np.asarray(z, dtype=np.float32)})[0]

    def encode(self, pattern: Pattern) -> tuple[float, float]:
        """The latent point (the posterior mean) of a pattern of this model's kit and grid."""
        if (pattern.voices, pattern.steps) != (self.kit.size, self.grid.steps):
            raise RvaedError(f"pattern of {pattern.voices} voices x {pattern.steps} steps does "
                             f"not fit model {self.manifest.name} ({self.kit.size} voices x "
                             f"{self.grid.steps} steps)")
        mean = self._encoder.run([ENCODER_OUTPUT], {ENCODER_INPUT: pattern.to_array()[None]})[0]
        return float(mean[0, 0]), float(mean[0, 1])

    def encode_xy(self, pattern: Pattern,
                  region: LatentRegion | None = None) -> tuple[float, float]:
        """The controller position of a pattern in ``region`` (clipped to the square)."""
        return (region or self.manifest.latent).xy_of(*self.encode(pattern))


class _Graph:
    """The fp32 decoder graph, read from disk on the first bend only and then kept: a flood
    of /rvaed/bend requests from any host never reads the model folder again (nor a model
    replaced on disk since it was loaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._proto: Any = None
        self._lock = threading.Lock()

    def proto(self) -> Any:
        """The onnx.ModelProto, read once (onnx is imported on demand)."""
        with self._lock:
            if self._proto is None:
                import onnx

                self._proto = onnx.load(self.path)
            return self._proto


def _bent_graph(source: Any, amount: float, seed: int) -> bytes:
    """The fp32 decoder graph ``source`` (left as it is) with Gaussian noise of ``amount`` x
    each weight matrix's spread added to it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.ModelProto()
    graph.CopyFrom(source)
    rng = np.random.default_rng(seed)
    for tensor in graph.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.ndim == 2:
            noise = rng.standard_normal(weights.shape) * amount * weights.std()
            tensor.CopyFrom(numpy_helper.from_array((weights + noise).astype(weights.dtype),
                                                    tensor.name))
    return graph.SerializeToString()
