"""Train a model on drum MIDI files and write it as a model directory.

Shows a live progress line, and the loss curves at the end (`--plot FILE.png` also draws
them as a picture: training blue, validation orange, epochs left to right, no labels).
Ctrl-C stops after the current batch and still writes the best model so far; a second Ctrl-C
abandons the run. With `--gmd-split SPLIT` the folders given are Groove MIDI Dataset copies:
only the 4/4 beats (no fills) of that split are read, the validation split is evaluated
(unless --evaluate says otherwise), and an attribution goes into the model directory.
"""

import csv
import os
import signal
import sys
from pathlib import Path

from rvaed.commands.arguments import add_channel, add_grid, grid_of
from rvaed.core.errors import RvaedError

HELP = "train a model on drum MIDI files or folders (-o MODEL)"
PLOT_HEIGHT, PLOT_WIDTH = 10, 60
GMD = ("Groove MIDI Dataset v1.0.0 by Magenta (Jon Gillick, Adam Roberts, Jesse Engel, "
       "Douglas Eck, David Bamman), https://magenta.tensorflow.org/datasets/groove, licensed "
       "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)")


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILES|DIRS", help="MIDI files or folders")
    parser.add_argument("-o", "--output", type=Path, metavar="MODEL",
                        help="the model directory to write (replaced if it is a model)")
    parser.add_argument("--daemon", action="store_true",
                        help="instead, ask the daemon running on this machine to train on the "
                        "files and play the new model: shows its progress, exits 1 if it "
                        "refuses or fails; the files must lie in its data directories (its "
                        "inbox, for instance)")
    parser.add_argument("--config", metavar="FILE",
                        help="with --daemon: the daemon's config, to find its state directory "
                        "(default: the one `rvaed run` reads)")
    parser.add_argument("--epochs", type=int, default=150, help="at most this many (150)")
    parser.add_argument("--seed", type=int, default=0, help="for a reproducible run (0)")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                        help="CPU threads for training (default: the cores, at most 4)")
    parser.add_argument("--kit", help="kit name or file (default rhythmvae, or the kit of "
                        "--continue-from)")
    add_channel(parser)
    add_grid(parser)
    parser.add_argument("--continue-from", type=Path, metavar="MODEL",
                        help="start from this model's weights (same kit and grid)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="windows per training step (64, the paper's)")
    parser.add_argument("--patience", type=int, default=30,
                        help="stop after this many epochs without a better validation loss; "
                        "0 = never (30)")
    parser.add_argument("--hidden", type=int, nargs="+", metavar="WIDTH",
                        help="hidden layer widths of the encoder, the decoder mirrors them "
                        "(default 512 512, the paper's; narrower decodes faster on a Pi)")
    parser.add_argument("--hits-only", action="store_true",
                        help="count velocity/timing errors only where a hit is")
    parser.add_argument("--name", help="the model's name (default: the directory name)")
    parser.add_argument("--evaluate", nargs="+", metavar="FILES|DIRS",
                        help="held-out files: record onset F1 on them and the baseline's")
    parser.add_argument("--gmd-split", choices=("train", "validation", "test"),
                        help="the folders are Groove MIDI Dataset copies: use this split's "
                        "4/4 beats")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="also draw the loss curves into a PNG")


def run(args) -> int:
    if args.daemon:
        return ask_daemon(args.config, args.paths)
    if args.output is None:
        raise RvaedError("-o MODEL is required (or --daemon to let the daemon train)")
    from rvaed.training.job import TrainRequest, run_training, training_unavailable

    if hint := training_unavailable():
        raise RvaedError(hint)

    request = TrainRequest(**request_fields(args))
    stop = Stop()
    previous = signal.signal(signal.SIGINT, stop.handle)
    try:
        summary = run_training(request, show_progress, stop.requested, show_read)
    finally:
        signal.signal(signal.SIGINT, previous)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    report(summary)
    if args.plot:
        from rvaed.core.png import write_png

        write_png(args.plot, plot_image(summary["history"]))
        print(f"loss curves drawn in {args.plot}")
    return 0


def request_fields(args) -> dict:
    """TrainRequest fields from the command line (validated: one-line errors)."""
    from rvaed.core.kit import load_kit
    from rvaed.training.options import IngestOptions, LossWeights, ModelConfig, TrainOptions

    check_numbers(args)
    if args.plot and not args.plot.parent.is_dir():
        raise RvaedError(f"--plot {args.plot}: expected a file in an existing folder")
    channel = args.channel
    grid, auto = grid_of(args)
    if args.continue_from is not None:
        previous = _continued(args.continue_from)  # its grid, unless --meter says another
        kit = previous.kit if args.kit is None else load_kit(args.kit)
        grid, auto = (previous.grid if auto else grid), False
    else:
        kit = load_kit(args.kit or "rhythmvae")
    ingest = IngestOptions(kit, grid, channel=channel, meter_from_data=auto)
    if args.hidden and args.continue_from is not None:
        raise RvaedError("--hidden: a continued model keeps its sizes; leave --hidden out")
    model = (ModelConfig(encoder_hidden=tuple(args.hidden),
                         decoder_hidden=tuple(reversed(args.hidden)))
             if args.hidden else ModelConfig())
    options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                           threads=args.threads, patience=args.patience or None, model=model,
                           loss=LossWeights(hits_only=args.hits_only))
    fields = {"paths": tuple(args.paths), "out_dir": args.output, "options": options,
              "ingest": ingest, "continue_from": args.continue_from, "name": args.name,
              "evaluate": tuple(args.evaluate or ())}
    if args.gmd_split:
        files = gmd_files(args.paths, args.gmd_split)
        fields["paths"] = tuple(map(str, files))
        if args.evaluate is None and args.gmd_split == "train":
            fields["evaluate"] = tuple(map(str, gmd_files(args.paths, "validation")))
        fields["extra_files"] = {"ATTRIBUTION.md": attribution(files, args.paths, args.gmd_split)}
    return fields


def check_numbers(args) -> None:
    """A one-line error for a number the run cannot work with, naming its option."""
    from rvaed.training.options import INTEGER_LIMITS, out_of_limits

    for name in INTEGER_LIMITS:
        if name in vars(args) and (wrong := out_of_limits(name, getattr(args, name))):
            raise RvaedError(f"--{name.replace('_', '-')}: {wrong}")
    if args.patience < 0:
        raise RvaedError(f"--patience: expected an integer >= 0 (0 = never), got {args.patience}")
    if args.hidden and min(args.hidden) < 1:
        widths = " ".join(map(str, args.hidden))
        raise RvaedError(f"--hidden: expected layer widths >= 1, got {widths}")


def _continued(model_dir: Path):
    from rvaed.model.modeldir import MANIFEST, parse_manifest

    return parse_manifest(model_dir / MANIFEST)


def gmd_files(folders: list[str], split: str) -> list[Path]:
    """The 4/4 beats (not fills) of ``split`` listed in each folder's info.csv."""
    files: list[Path] = []
    for folder in map(Path, folders):
        info = folder / "info.csv"
        try:
            with open(info, newline="", encoding="utf-8") as stream:
                rows = list(csv.DictReader(stream))
            files += [folder / row["midi_filename"] for row in rows
                      if row["split"] == split and row["beat_type"] == "beat"
                      and row["time_signature"] == "4-4"]
        except OSError as exc:
            raise RvaedError(f"{info}: cannot read the Groove MIDI Dataset index: "
                             f"{exc.strerror or exc}") from None
        except KeyError as exc:
            raise RvaedError(f"{info}: expected a Groove MIDI Dataset index with column "
                             f"{exc}") from None
    if not files:
        raise RvaedError(f"{', '.join(folders)}: no 4/4 beats in the {split} split of info.csv")
    return files


def attribution(files: list[Path], folders: list[str], split: str) -> str:
    roots = [Path(folder) for folder in folders]
    names = "\n".join(f"- {f.relative_to(next(r for r in roots if f.is_relative_to(r)))}"
                      for f in files)
    return (f"# Attribution\n\nThis model was trained on the {GMD}.\n\n"
            f"Used: the MIDI files of the {split} split whose info.csv entry is a beat (not a "
            f"fill) in 4/4, {len(files)} files; nothing in them was changed. The model's "
            f"weights are derived from them.\n\nFiles:\n{names}\n")


class Stop:
    """First Ctrl-C: stop after this batch, keep the best so far. Second: give up."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        print("\nstopping after this batch; the best model so far will be written "
              "(Ctrl-C again to abandon)", file=sys.stderr)

    def requested(self) -> bool:
        return self.count > 0


def show_read(lines: list[str]) -> None:
    """What the files gave, before the first epoch."""
    for line in lines:
        print(line, file=sys.stderr)


def show_progress(p) -> None:
    """One live line on a terminal; every 10th epoch as its own line otherwise."""
    width = 20
    done = round(width * p.epoch / p.epochs)
    line = (f"epoch {p.epoch}/{p.epochs} [{'#' * done}{'.' * (width - done)}] "
            f"loss {p.loss:.1f} val {p.val_loss:.1f} onset F1 {p.val_onset_f1:.3f} "
            f"best {p.best_epoch} ETA {_duration(p.eta)}")
    if sys.stderr.isatty():
        print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
    elif p.epoch % 10 == 0 or p.epoch == p.epochs:
        print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def report(summary: dict) -> None:
    metrics = summary["metrics"]
    print(f"model written to {summary['model_dir']} ({summary['stopped']}; kept epoch "
          f"{summary['best_epoch']}: validation loss {metrics['val_loss']:.2f}, onset F1 "
          f"{metrics['val_onset_f1']:.3f} on {metrics['val_windows']} windows; the pad holds "
          f"{metrics['pad_patterns']} distinct patterns)")
    held_out = metrics.get("held_out")
    if held_out:
        print(f"held-out files: onset F1 {held_out['onset_f1']:.3f} on {held_out['windows']} "
              f"windows (per-cell-frequency baseline {held_out['baseline_onset_f1']:.3f})")
    for note in summary["notes"]:
        print(f"note: {note}")
    print(text_plot(summary["history"]))


def _curves(history: list[dict], width: int):
    """Training and validation losses averaged into ``width`` columns, and a y range that
    leaves out the first epochs' very high losses."""
    import numpy as np

    losses = np.array([[h["loss"], h["val_loss"]] for h in history], dtype=np.float64)
    columns = np.array_split(losses, min(width, len(losses)))
    curves = np.array([c.mean(axis=0) for c in columns])
    low, high = curves.min(), np.percentile(curves, 95)
    return curves, low, max(high, low + 1e-9)


def text_plot(history: list[dict]) -> str:
    """The loss curves as text: '.' training, 'o' validation, '*' both."""
    curves, low, high = _curves(history, PLOT_WIDTH)
    rows = [[" "] * len(curves) for _ in range(PLOT_HEIGHT)]
    for column, values in enumerate(curves):
        for mark, value in zip(".o", values, strict=True):
            level = min(1.0, (value - low) / (high - low))
            row = rows[PLOT_HEIGHT - 1 - round(level * (PLOT_HEIGHT - 1))]
            row[column] = "*" if row[column] not in (" ", mark) else mark
    label = [f"{high:9.1f} |", *[" " * 9 + " |"] * (PLOT_HEIGHT - 2), f"{low:9.1f} |"]
    lines = [f"{lab}{''.join(row)}" for lab, row in zip(label, rows, strict=True)]
    footer = f"{'':10}+{'-' * len(curves)} epochs 1-{len(history)}"
    return "\n".join(["loss ('.' training, 'o' validation)", *lines, footer])


def plot_image(history: list[dict], width: int = 600, height: int = 300):
    """The loss curves as an RGB image: white ground, blue training, orange validation."""
    import numpy as np

    curves, low, high = _curves(history, width)
    image = np.full((height, width, 3), 255, np.uint8)
    image[-1, :] = image[:, 0] = (0, 0, 0)
    xs = np.linspace(0, width - 1, len(curves))
    fine = np.arange(width)
    for index, colour in ((0, (31, 119, 180)), (1, (255, 127, 14))):
        level = np.clip((np.interp(fine, xs, curves[:, index]) - low) / (high - low), 0, 1)
        ys = (height - 2 - level * (height - 4)).round().astype(int)
        for x in fine:  # a vertical run to the previous column's point: no gaps on steep drops
            top, bottom = sorted((ys[x], ys[max(x - 1, 0)]))
            image[max(top - 1, 0):bottom + 2, x] = colour
    return image


def ask_daemon(config: str | None, paths: list[str]) -> int:
    """Train in the running daemon through its local socket: its progress, then the result
    (0) or the refusal or failure (1)."""
    from rvaed.daemon.config import load_config
    from rvaed.daemon.localsocket import ask_to_train, socket_path

    files = [str(Path(path).resolve()) for path in paths]
    for answer in ask_to_train(socket_path(load_config(config)), files):
        if "progress" in answer:
            print(f"{answer['progress']:4.0%} {answer['status']}", file=sys.stderr, flush=True)
        elif "accepted" in answer:
            print(f"the daemon is {answer['accepted']}", file=sys.stderr, flush=True)
        elif "done" in answer:
            print(f"model {answer['done']} trained; the daemon plays it from the next loop")
            return 0
        else:
            reason = answer.get("refused") or answer.get("failed") or answer
            print(f"rvaed train: the daemon {'refused' if 'refused' in answer else 'failed'}: "
                  f"{reason}", file=sys.stderr)
            return 1
    print("rvaed train: the daemon closed the connection before the result", file=sys.stderr)
    return 1
