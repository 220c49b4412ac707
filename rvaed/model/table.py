"""A decoder tabulated over its latent space: a 2-D latent makes the decoder a function of
two numbers, so a model can be decoded once on a grid and then read by interpolation.

A table holds the decoder's outputs (onset and velocity probabilities, timing offsets: the
quantities the pattern uses, interpolated as they are) at GRID x GRID points spanning the
model's latent region widened by half its size on every side, which is as far as the noise
control moves the point (control/performance.py). Reading a point interpolates the four
nodes around it (bilinear): four rows of the table and a few multiply-adds, a few kilobytes
to fetch, so a decode costs the same after the caches went cold. A point outside the table is
not the table's: ``lookup`` returns None and the caller decodes directly.

`build_apart` builds a table in a process of its own (spawned, niced, ending with its
parent) and maps the result from a file, so that building never holds this process's
interpreter lock: built in a thread, the build's numpy and onnxruntime calls tripled the
event loop's p99 lag on a loaded machine (docs/decisions.md).

The grid, the precision and the coverage were chosen by measurement on the starter model
(docs/decisions.md, "Decoding through a table"). A table is only used if it plays the notes
the decoder plays: ``agreement`` compares its onset decisions with direct fp32 decoding at
random points between the nodes, at every threshold from 0.05 to 0.95, and a table under
MIN_AGREEMENT at any threshold is not used (the same rule as the int8 twin's).
"""

import contextlib
import dataclasses
import multiprocessing
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from rvaed.core.errors import RvaedError
from rvaed.model.agreement import MIN_AGREEMENT, agreeing
from rvaed.model.latent import LATENT, LatentRegion

GRID = 129  # nodes per axis
PRECISION = np.float16  # half the memory of float32 at the same agreement
BATCH = 256  # latent points per onnxruntime call: the build lets go of the interpreter often
CHECK_POINTS = 4000  # random points the agreement is measured at
EDGE = 1e-6  # of a node's spacing: the span's own edge is inside, whatever the rounding

DecodeMany = Callable[[np.ndarray], np.ndarray]  # (N, 2) latent -> (N, 3, voices, steps)


def coverage(region: LatentRegion) -> LatentRegion:
    """The part of the latent plane a table spans: the region and half its size around it."""
    (lx, ly), (hx, hy) = region.low, region.high
    mx, my = (hx - lx) / 2, (hy - ly) / 2
    return LatentRegion((lx - mx, ly - my), (hx + mx, hy + my))


@dataclass(frozen=True, eq=False)
class DecodeTable:
    """Decoder outputs on a grid: ``values`` (GRID, GRID, 3 * voices * steps), rows by y."""

    span: LatentRegion
    values: np.ndarray
    shape: tuple[int, int, int]  # (3, voices, steps) of one pattern
    agreement: float  # the worst threshold's share of cells that agree with direct decoding

    @classmethod
    def build(cls, decode_many: DecodeMany, region: LatentRegion, grid: int = GRID,
              precision: type = PRECISION) -> "DecodeTable":
        """Decode the grid in batches (call it off the event loop: it takes a moment)."""
        span = coverage(region)
        z = span.grid(grid)
        first = decode_many(z[:1])
        values = np.empty((grid * grid, first[0].size), dtype=precision)  # filled batch by batch
        for i in range(0, len(z), BATCH):
            values[i:i + BATCH] = decode_many(z[i:i + BATCH]).reshape(-1, first[0].size)
        table = cls(span, values.reshape(grid, grid, -1), first.shape[1:], 0.0)
        return dataclasses.replace(table, agreement=table.measure(decode_many, region))

    @property
    def usable(self) -> bool:
        return self.agreement >= MIN_AGREEMENT

    @property
    def nbytes(self) -> int:
        return self.values.nbytes

    def lookup(self, zx: float, zy: float) -> np.ndarray | None:
        """The interpolated outputs at (zx, zy), shape (3, voices, steps); None outside."""
        grid = self.values.shape[0]
        (lx, ly), (hx, hy) = self.span.low, self.span.high
        fx = (zx - lx) / (hx - lx) * (grid - 1)
        fy = (zy - ly) / (hy - ly) * (grid - 1)
        if not (-EDGE <= fx <= grid - 1 + EDGE and -EDGE <= fy <= grid - 1 + EDGE):
            return None
        fx, fy = min(max(fx, 0.0), grid - 1.0), min(max(fy, 0.0), grid - 1.0)
        ix, iy = min(int(fx), grid - 2), min(int(fy), grid - 2)
        tx, ty = fx - ix, fy - iy
        weights = np.array([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx],
                           dtype=np.float32)
        corners = self.values[iy:iy + 2, ix:ix + 2].reshape(4, -1)
        return (weights @ corners).reshape(self.shape)

    def lookup_many(self, z: np.ndarray) -> np.ndarray:
        """``lookup`` for many points (N, 2) inside the table at once: (N, 3, voices, steps)
        (for maps and for measuring; no Python loop holds the interpreter per point)."""
        grid = self.values.shape[0]
        low, high = np.array(self.span.low), np.array(self.span.high)
        f = np.clip((np.asarray(z, dtype=np.float64) - low) / (high - low), 0, 1) * (grid - 1)
        i = np.minimum(f.astype(np.int64), grid - 2)
        t = (f - i).astype(np.float32)
        (ix, iy), (tx, ty) = i.T, t.T
        out = np.zeros((len(f), self.values.shape[2]), dtype=np.float32)
        for dy, dx, weight in ((0, 0, (1 - ty) * (1 - tx)), (0, 1, (1 - ty) * tx),
                               (1, 0, ty * (1 - tx)), (1, 1, ty * tx)):
            out += weight[:, None] * self.values[iy + dy, ix + dx]
        return out.reshape(len(f), *self.shape)

    def measure(self, decode_many: DecodeMany, region: LatentRegion,
                points: int = CHECK_POINTS, seed: int = 0) -> float:
        """Onset agreement with ``decode_many`` at random points of the coverage (between
        the nodes), the worst over THRESHOLDS."""
        rng = np.random.default_rng(seed)
        span = coverage(region)
        low, high = np.array(span.low), np.array(span.high)
        z = (low + rng.random((points, LATENT)) * (high - low)).astype(np.float32)
        agree = sum(agreeing(decode_many(z[i:i + BATCH])[:, 0],
                             self.lookup_many(z[i:i + BATCH])[:, 0])
                    for i in range(0, points, BATCH))
        return float(np.min(agree) / (points * np.prod(self.shape[1:])))


NICE = 10  # the build yields the CPU to the performing process, as training does
_building: set[multiprocessing.process.BaseProcess] = set()  # the build processes running


def end_builds() -> None:
    """Kill every build under way (the daemon stops): its `build_apart` raises RvaedError at
    once. A stop never waits for a table; on a slow machine a build takes minutes."""
    for child in list(_building):
        with contextlib.suppress(OSError):
            child.kill()


def build_apart(graph: bytes | Path, region: LatentRegion) -> DecodeTable:
    """``DecodeTable.build`` of the fp32 decoder ``graph`` (a file or its bytes), in a child
    process; the values are mapped from a file that is gone once mapped."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=_scratch(), prefix="rvaed-table-") as folder:
        path = Path(folder) / "table.npy"
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_build_child, name="rvaed-table", daemon=True,
                                args=(graph, region.low, region.high, path, send))
        child.start()
        _building.add(child)
        _nice(child.pid)  # at once, while it still imports
        send.close()
        try:
            kind, *answer = receive.recv()
        except EOFError:
            child.join()
            kind, answer = "error", [f"the process ended (exit code {child.exitcode})"]
        finally:
            child.join()
            _building.discard(child)
        if kind == "error":
            raise RvaedError(f"decode table: not built: {answer[0]}")
        values = np.load(path, mmap_mode="r")
    shape, agreement = answer
    return DecodeTable(coverage(region), values, tuple(shape), agreement)


def _nice(pid: int | None) -> None:
    if pid is not None and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):  # already gone: the pipe will say so
            os.setpriority(os.PRIO_PROCESS, pid, NICE)


def _scratch() -> str | None:
    """Memory-backed /dev/shm where there is one, else the system's temporary folder."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def _build_child(graph: bytes | Path, low: tuple, high: tuple, path: Path,
                 send: Connection) -> None:
    import onnxruntime as ort

    from rvaed.model.modeldir import session_options

    try:
        session = ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph),
                                       session_options())
        name = session.get_inputs()[0].name
        table = DecodeTable.build(lambda z: session.run(None, {name: z})[0],
                                  LatentRegion(low, high))
        np.save(path, table.values)
        send.send(("table", table.shape, table.agreement))
    except Exception as exc:  # the parent says it in one line and decodes directly
        send.send(("error", f"{type(exc).__name__}: {exc}"))
