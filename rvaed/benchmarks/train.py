"""Training speed: seconds per epoch and windows per second at 1 and 2 torch threads.

Trains the default (paper-sized) model on 1,000 synthetic windows for a few epochs at each
thread count; the work per epoch does not depend on what the windows contain. Also gives the
time 150 epochs would take (the original device's default run).
"""

import os

import numpy as np

from rvaed.benchmarks.progress import Progress

HELP = "training speed (seconds per epoch, windows/s) at 1 and 2 threads"


def add_arguments(parser) -> None:
    parser.add_argument("--windows", type=int, default=1000, help="training windows (1000)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per run (5)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts to try (1 2)")
    parser.add_argument("--steps", type=int, nargs="+", default=[32],
                        help="steps per window to try (32: two bars of 16ths; 96: of 12 per "
                        "beat)")


def synthetic_windows(count: int, voices: int = 9, steps: int = 32, seed: int = 0) -> np.ndarray:
    """Drum-like windows: about 15% of cells hit, with velocities and offsets."""
    rng = np.random.default_rng(seed)
    onsets = (rng.random((count, voices, steps)) < 0.15).astype(np.float32)
    velocities = onsets * rng.uniform(0.2, 1.0, onsets.shape).astype(np.float32)
    offsets = onsets * rng.uniform(-0.5, 0.5, onsets.shape).astype(np.float32)
    return np.stack([onsets, velocities, offsets], axis=1)


def run(args) -> dict:
    from rvaed.training.loop import train
    from rvaed.training.options import TrainOptions

    progress = Progress("train")
    figures: dict = {"windows": args.windows, "epochs": args.epochs, "runs": []}
    for steps in args.steps:
        windows = synthetic_windows(args.windows, steps=steps)
        for threads in args.threads:
            progress.say(f"{args.epochs + 1} epochs of {steps} steps on {threads} thread(s)")
            options = TrainOptions(epochs=args.epochs + 1, threads=threads, patience=None)
            result = train(windows, options)
            times = np.diff([0.0] + [entry["seconds"] for entry in result.history])[1:]
            per_epoch = float(np.median(times))  # the first epoch (warm-up) is left out
            figures["runs"].append({
                "steps": steps, "threads": min(threads, os.cpu_count() or 1),
                "train_windows": result.train_windows,
                "seconds_per_epoch": round(per_epoch, 3),
                "windows_per_second": round(result.train_windows / per_epoch),
                "seconds_for_150_epochs": round(150 * per_epoch, 1)})
    print(f"training on {args.windows} windows ({figures['runs'][0]['train_windows']} after "
          f"the validation split), median of {args.epochs} epochs")
    print(f"{'steps':>6}{'threads':>8}{'s/epoch':>10}{'windows/s':>11}{'150 epochs s':>14}")
    for row in figures["runs"]:
        print(f"{row['steps']:>6}{row['threads']:>8}{row['seconds_per_epoch']:>10}"
              f"{row['windows_per_second']:>11}{row['seconds_for_150_epochs']:>14}")
    return figures
