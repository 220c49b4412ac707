"""Train a RhythmVAE on windows of drums: a plain loop that works from one window to the GMD.

The loop holds out about 1/6 of the windows for validation, keeps the weights of the epoch
with the lowest validation loss, stops early when that loss has not improved for
``patience`` epochs, and can be cancelled between batches (the best weights so far are kept).
The validation windows come from files the training never sees: windows overlap (they start
every bar), so a random split of windows validates on bars the training saw and measures
memory of the training files (figures in docs/decisions.md). A single file, or one holding
most windows, gives a contiguous block of its windows instead, and the windows that share a
bar with the block are trained on by neither side. Sets too small to split train on
everything and validate on everything; batches smaller than ``batch_size`` are filled by
repeating windows, so batch norm always sees several samples (the original device silently
did nothing below 64 windows).
"""

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rvaed.core.errors import RvaedError
from rvaed.model.latent import LatentRegion
from rvaed.training.network import RhythmVAE, vae_loss
from rvaed.training.options import Progress, TrainOptions

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """The best model of a run (in eval mode) and how the run went."""

    model: RhythmVAE
    best_epoch: int
    stopped: str  # "completed", "early-stopped", "cancelled" or "diverged"
    seconds: float
    train_windows: int
    val_windows: int
    validation: dict  # Split.to_dict
    history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict:
        """The history entry of the kept epoch."""
        return self.history[self.best_epoch - 1]


def onset_f1(probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of predicted hits (probability > threshold) against the hits of ``targets``."""
    predicted, actual = probabilities > threshold, targets > 0.5
    true_hits = np.count_nonzero(predicted & actual)
    wrong = np.count_nonzero(predicted ^ actual)
    return 1.0 if true_hits + wrong == 0 else float(2 * true_hits / (2 * true_hits + wrong))


def frequency_baseline(train_windows: np.ndarray) -> np.ndarray:
    """The (voices, steps) onsets of the per-cell-frequency baseline: a hit where that cell
    holds a hit in more than half of the training windows."""
    return ((train_windows[:, 0] > 0.5).mean(axis=0) > 0.5).astype(np.float32)


@torch.no_grad()
def reconstruct(model: RhythmVAE, windows: np.ndarray) -> np.ndarray:
    """Decode the encoded mean of each window: (N, 3, V, S) float32."""
    model.eval()
    return model(torch.from_numpy(windows))[0].numpy()


@torch.no_grad()
def encode_means(model: RhythmVAE, windows: np.ndarray) -> np.ndarray:
    """The latent mean of each window: (N, 2) float32."""
    model.eval()
    return model.encoder(torch.from_numpy(windows))[0].numpy()


PAD_POINTS = 16  # a 16 x 16 grid over the pad: finer than a hand on an XY pad tells apart
FEW_PATTERNS = 4  # fewer distinct patterns than this (or than the data has) is a collapse


@torch.no_grad()
def pad_patterns(model: RhythmVAE, windows: np.ndarray) -> int:
    """How many distinct onset patterns (threshold 0.5) the pad decodes to: a grid of
    PAD_POINTS x PAD_POINTS over the region the training windows encode to (as the pad sends
    it). A model whose validation F1 looks fine can still decode one pattern everywhere."""
    region = LatentRegion.around(encode_means(model, windows))
    onsets = model.decoder(torch.from_numpy(region.grid(PAD_POINTS)))[:, 0].numpy() > 0.5
    return len(np.unique(onsets.reshape(len(onsets), -1), axis=0))


def collapse_note(patterns: int, windows: np.ndarray) -> str | None:
    """A warning when the pad holds fewer patterns than the data (at most FEW_PATTERNS)."""
    distinct = len(np.unique((windows[:, 0] > 0.5).reshape(len(windows), -1), axis=0))
    if patterns >= min(distinct, FEW_PATTERNS):
        return None
    return (f"the whole pad decodes to only {patterns} distinct pattern(s) from {distinct} "
            "distinct training windows: the model collapsed; train on more files, for more "
            "epochs, or with --hits-only")


def evaluate(model: RhythmVAE, windows: np.ndarray, train_windows: np.ndarray) -> dict:
    """Onset F1 of the model's reconstructions of ``windows`` and of the frequency baseline."""
    baseline = np.broadcast_to(frequency_baseline(train_windows), windows[:, 0].shape)
    return {"windows": len(windows),
            "onset_f1": onset_f1(reconstruct(model, windows)[:, 0], windows[:, 0]),
            "baseline_onset_f1": onset_f1(baseline, windows[:, 0])}


def bound_threads(threads: int) -> int:
    """Use at most ``threads`` torch threads, and never more than this machine's cores."""
    threads = max(1, min(threads, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class Split:
    """Indices of the training and validation windows, and how they were chosen: "file"
    (whole files held out), "block" (a contiguous block of one file), "window" (windows of
    unknown origin, held out at random) or "none" (too few: all on both sides)."""

    train: np.ndarray
    val: np.ndarray
    by: str
    files: int  # files with windows on the validation side
    dropped: int = 0  # windows overlapping the validation block, on neither side

    def to_dict(self) -> dict:
        """How the run was validated, for the model's manifest."""
        return {"by": self.by, "files": self.files, "windows": len(self.val),
                "train_windows": len(self.train), "dropped_windows": self.dropped}


def split(count: int, sources: Sequence[tuple[str, int]] | None, span: int,
          options: TrainOptions, rng: np.random.Generator, notes: list[str]) -> Split:
    """Hold out whole files; a block of the largest file when no choice of files leaves at
    least half of the windows for training. ``sources`` are the (file, first bar) of each
    window, ``span`` the bars of a window."""
    if count < options.min_split_windows:
        notes.append(f"{count} window(s) is too few to hold some out: training and validating "
                     "on all of them")
        every = np.arange(count)
        return Split(every, every, "none", 0)
    target = max(1, round(count * options.validation_fraction))
    if sources is None:
        order = rng.permutation(count)
        return Split(order[target:], order[:target], "window", 0)
    _, file_of = np.unique([file for file, _ in sources], return_inverse=True)
    sizes = np.bincount(file_of)
    held = held_out_files(sizes, target, rng)
    if held is not None:
        val = np.isin(file_of, held)
        return Split(np.flatnonzero(~val), np.flatnonzero(val), "file", len(held))
    bars = np.array([bar for _, bar in sources])
    return held_out_block(file_of, bars, span, int(np.argmax(sizes)), target, rng)


def held_out_files(sizes: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray | None:
    """Files (in random order) whose windows come closest to ``target``, keeping at least one
    file and half of the windows for training; None when no such choice exists."""
    if len(sizes) < 2:
        return None
    order = rng.permutation(len(sizes))
    held = np.cumsum(sizes[order])[:-1]
    best = int(np.argmin(np.abs(held - target)))
    return order[:best + 1] if held[best] <= sizes.sum() / 2 else None


def held_out_block(file_of: np.ndarray, bars: np.ndarray, span: int, file: int, target: int,
                   rng: np.random.Generator) -> Split:
    """``target`` consecutive windows of ``file`` for validation; the training side keeps the
    windows that share no bar with them."""
    mine = np.flatnonzero(file_of == file)
    mine = mine[np.argsort(bars[mine], kind="stable")]
    start = int(rng.integers(0, len(mine) - target + 1))
    val = mine[start:start + target]
    first, end = bars[val].min(), bars[val].max() + span
    apart = (file_of != file) | (bars + span <= first) | (bars >= end)
    train = np.flatnonzero(apart)
    return Split(train, val, "block", 1, len(file_of) - len(train) - len(val))


def batches(count: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of indices; windows repeat to fill one batch when there are few, and a
    last batch of one joins the one before (batch norm cannot train on a single sample)."""
    order = rng.permutation(count)
    if count < batch_size:
        order = np.resize(order, batch_size)
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2:] = [np.concatenate(chunks[-2:])]
    return chunks


def train(windows: np.ndarray, options: TrainOptions,
          on_progress: Callable[[Progress], None] | None = None,
          cancelled: Callable[[], bool] | None = None,
          model: RhythmVAE | None = None, sources: Sequence[tuple[str, int]] | None = None,
          span: int = 1) -> TrainResult:
    """Train ``model`` (a new one when None) on ``windows`` (N, 3, V, S) and return the best.

    ``sources`` (file, first bar) of each window, ``span`` bars long, let validation hold out
    files (see split); without them the windows are taken as independent."""
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if windows.ndim != 4 or windows.shape[1] != 3 or len(windows) == 0:
        raise RvaedError(f"training data: expected windows of shape (N, 3, voices, steps) with "
                         f"N >= 1, got {windows.shape}")
    if not np.isfinite(windows).all():
        raise RvaedError("training data: windows contain values that are not finite")
    _, _, voices, steps = windows.shape
    bound_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    if model is None:
        model = RhythmVAE(voices, steps, options.model)
    elif (model.voices, model.steps) != (voices, steps):
        raise RvaedError(f"training data: {voices} voices x {steps} steps, but the model to "
                         f"continue has {model.voices} x {model.steps}")
    notes: list[str] = []
    if sources is not None and len(sources) != len(windows):
        raise RvaedError(f"training data: {len(sources)} sources for {len(windows)} windows")
    held = split(len(windows), sources, span, options, rng, notes)
    train_x, val_x = torch.from_numpy(windows[held.train]), torch.from_numpy(windows[held.val])
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, fused=True)
    history: list[dict] = []
    best_state, best_loss, best_epoch, stopped = None, math.inf, 0, "completed"
    start = time.monotonic()
    for epoch in range(1, options.epochs + 1):
        loss, complete = run_epoch(model, optimizer, train_x, options, rng, cancelled)
        if not complete and best_state is not None:
            stopped = "cancelled"
            break
        val_loss, val_f1 = validate(model, val_x, options)
        if not (math.isfinite(loss) and math.isfinite(val_loss)):
            stopped = "diverged"
            notes.append(f"training diverged at epoch {epoch} (loss not finite)")
            break
        elapsed = time.monotonic() - start
        history.append({"epoch": epoch, "loss": round(loss, 4), "val_loss": round(val_loss, 4),
                        "val_onset_f1": round(val_f1, 4), "seconds": round(elapsed, 3)})
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_progress:
            eta = elapsed / epoch * (options.epochs - epoch)
            on_progress(Progress(epoch, options.epochs, loss, val_loss, val_f1, best_epoch,
                                 elapsed, eta))
        if not complete:
            stopped = "cancelled"
            break
        if options.patience is not None and epoch - best_epoch >= options.patience:
            stopped = "early-stopped"
            break
    if best_state is None:
        raise RvaedError("training diverged in its first epoch (loss not finite)")
    model.load_state_dict(best_state)
    model.eval()
    if stopped != "completed":
        notes.append(f"{stopped} after epoch {len(history)}; kept epoch {best_epoch}")
    for note in notes:
        log.info("%s", note)
    return TrainResult(model, best_epoch, stopped, time.monotonic() - start, len(held.train),
                       len(held.val), held.to_dict(), history, notes)


def run_epoch(model: RhythmVAE, optimizer: torch.optim.Optimizer, train_x: torch.Tensor,
              options: TrainOptions, rng: np.random.Generator,
              cancelled: Callable[[], bool] | None) -> tuple[float, bool]:
    """One pass over the training windows: (mean batch loss, False if cancelled midway)."""
    model.train()
    total, seen = 0.0, 0
    for index in batches(len(train_x), options.batch_size, rng):
        x = train_x[torch.from_numpy(index)]
        out, mean, logvar = model(x)
        loss = vae_loss(x, out, mean, logvar, options.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, seen = total + loss.item() * len(index), seen + len(index)
        if cancelled and cancelled():
            return total / seen, False
    return total / seen, True


@torch.no_grad()
def validate(model: RhythmVAE, val_x: torch.Tensor, options: TrainOptions) -> tuple[float, float]:
    """Validation loss (z = the posterior mean) and onset F1 of the reconstructions."""
    model.eval()
    out, mean, logvar = model(val_x)
    loss = vae_loss(val_x, out, mean, logvar, options.loss).item()
    return loss, onset_f1(out[:, 0].numpy(), val_x[:, 0].numpy())
