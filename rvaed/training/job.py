"""Training as a job in its own process, so the performing process never imports torch.

The parent (the daemon) starts a spawned child, reads its progress from a pipe, can ask it to
stop (the child then writes the best model so far), and notices when the child dies without
a word (killed, out of memory) and says why. `run_training` is the whole job — files to
model directory — and is also what `rvaed train` runs in its own process.
"""

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.model.modeldir import MANIFEST, ensure_replaceable, parse_manifest
from rvaed.training.dataset import load_dataset
from rvaed.training.options import IngestOptions, Progress, TrainOptions

NICE = 10  # training yields the CPU to the performing process and everything else
CPU_TORCH = "https://download.pytorch.org/whl/cpu"  # torch's CPU build (PyPI's is CUDA's)


def training_unavailable() -> str | None:
    """None when this install can train; otherwise the one line that says what to install,
    with this install's own pip (the README's Set up).

    Looks for torch without importing it, so the performing process can ask at any time.
    """
    if importlib.util.find_spec("torch") is not None:
        return None
    return (f"training needs torch, which this install lacks: in rvaed's folder run "
            f"{sys.executable} -m pip install '.[train]' --extra-index-url {CPU_TORCH}")


@dataclass(frozen=True)
class TrainRequest:
    """What to train on and where to write it.

    ``ingest`` None means the kit of ``continue_from`` (or the default kit for a new model).
    ``evaluate`` names held-out files: the model's onset F1 on them and the frequency
    baseline's are recorded in the manifest. ``extra_files`` (name -> text) are written into
    the model directory with it (e.g. an attribution).
    """

    paths: tuple[str, ...]
    out_dir: Path
    options: TrainOptions = field(default_factory=TrainOptions)
    ingest: IngestOptions | None = None
    continue_from: Path | None = None
    name: str | None = None
    evaluate: tuple[str, ...] = ()
    extra_files: dict[str, str] = field(default_factory=dict)


def run_training(request: TrainRequest, on_progress: Callable[[Progress], None] | None = None,
                 cancelled: Callable[[], bool] | None = None,
                 on_read: Callable[[list[str]], None] | None = None) -> dict:
    """Read the files, train, export; return a summary.

    The files are read before torch is imported, so bad data is refused in a moment, and
    ``on_read`` hears what was read (IngestReport.lines) before the first epoch.
    """
    ensure_replaceable(request.out_dir)
    history, ingest = [], request.ingest
    if request.continue_from is not None:
        previous = parse_manifest(Path(request.continue_from) / MANIFEST)
        if ingest is not None and (ingest.kit, ingest.grid) != (previous.kit, previous.grid):
            raise RvaedError(f"{request.continue_from}: the model was trained with kit "
                             f"{previous.kit.name}, grid of {previous.grid.steps} steps; "
                             f"cannot continue it with kit {ingest.kit.name}")
        ingest = ingest or IngestOptions(previous.kit, previous.grid)
        history = list(previous.history)
    ingest = ingest or IngestOptions(load_kit())
    dataset = load_dataset(request.paths, ingest)
    ingest = dataset.report.options  # with the meter the files are in, when it was read
    if on_read:
        on_read(dataset.report.lines())
    held_out = load_dataset(request.evaluate, ingest).windows if request.evaluate else None

    from rvaed.training.export import export_model, load_model
    from rvaed.training.loop import collapse_note, evaluate, pad_patterns, train

    model = load_model(request.continue_from)[0] if request.continue_from else None
    result = train(dataset.windows, request.options, on_progress, cancelled, model,
                   dataset.sources, ingest.grid.bars)
    offset = len(history)
    history += [{**entry, "epoch": entry["epoch"] + offset} for entry in result.history]
    metrics = {"train_windows": result.train_windows, "val_windows": result.val_windows,
               **{k: v for k, v in result.best.items() if k != "seconds"},
               "epoch": result.best_epoch + offset}
    if held_out is not None:
        metrics["held_out"] = evaluate(result.model, held_out, dataset.windows)
    metrics["pad_patterns"] = pad_patterns(result.model, dataset.windows)
    collapsed = collapse_note(metrics["pad_patterns"], dataset.windows)
    if collapsed:
        result.notes.append(collapsed)
    training = {"data": dataset.report.summary(), "options": request.options.to_dict(),
                "channel": ingest.channel, "validation": result.validation,
                "stopped": result.stopped, "epochs_run": len(result.history),
                "seconds": round(result.seconds, 1),
                "continued_from": str(request.continue_from) if request.continue_from else None,
                "notes": result.notes}
    manifest = export_model(result.model, request.out_dir, ingest.kit, ingest.grid,
                            dataset.windows, training, metrics, history, request.name,
                            request.extra_files)
    return {"model_dir": str(request.out_dir), "name": manifest.name, "stopped": result.stopped,
            "best_epoch": result.best_epoch + offset, "metrics": metrics,
            "notes": result.notes, "history": history}


def _child(request: TrainRequest, progress: Connection, control: Connection) -> None:
    """The spawned process: niced, with bounded threads, cancelled by a 'cancel' message or
    by the parent going away (its model is written all the same, and nothing is printed)."""
    os.nice(NICE)
    stop = threading.Event()

    def listen() -> None:
        try:
            while control.recv() != "cancel":
                pass
        except (EOFError, OSError):
            pass  # the parent is gone: nobody will wait for more epochs
        stop.set()

    def tell(kind: str, payload: object) -> None:
        try:
            progress.send((kind, payload))
        except (BrokenPipeError, ConnectionResetError):
            stop.set()  # the parent stopped listening: end as after a cancel, the model kept

    threading.Thread(target=listen, daemon=True, name="cancel").start()
    try:
        summary = run_training(request, lambda p: tell("progress", p), stop.is_set,
                               lambda lines: tell("read", lines))
        tell("done", summary)
    except RvaedError as exc:
        tell("error", str(exc))
    except Exception as exc:  # an unexpected failure still reaches the parent in one line
        traceback.print_exc(file=sys.stderr)
        tell("error", f"training failed: {type(exc).__name__}: {exc}")


class TrainJob:
    """A running training process. Call poll() (or wait()) to receive progress and the end.

    When finished, ``result`` is the summary of run_training (the model was written, also
    after a cancel), or ``reason`` says in one line why there is no model.
    """

    def __init__(self, process, progress: Connection, control: Connection,
                 on_progress: Callable[[Progress], None] | None) -> None:
        self._process, self._progress, self._control = process, progress, control
        self._on_progress = on_progress
        self.read: list[str] = []  # what the job read (IngestReport.lines), once it has
        self.on_read: Callable[[list[str]], None] | None = None
        self.result: dict | None = None
        self.reason: str | None = None
        self.last: Progress | None = None

    @classmethod
    def start(cls, paths, out_dir: str | Path, options: TrainOptions | None = None,
              on_progress: Callable[[Progress], None] | None = None, **request) -> "TrainJob":
        """Start training ``paths`` into ``out_dir``; ``request`` adds TrainRequest fields."""
        spec = TrainRequest(tuple(map(str, paths)), Path(out_dir), options or TrainOptions(),
                            **request)
        context = multiprocessing.get_context("spawn")
        progress_read, progress_write = context.Pipe(duplex=False)
        control_read, control_write = context.Pipe(duplex=False)
        process = context.Process(target=_child, name="rvaed-train",
                                  args=(spec, progress_write, control_read))
        process.start()
        progress_write.close()
        control_read.close()
        return cls(process, progress_read, control_write, on_progress)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def finished(self) -> bool:
        return self.result is not None or self.reason is not None

    def cancel(self) -> None:
        """Ask the job to stop after the current batch; it still writes the best model."""
        if not self.finished:
            with contextlib.suppress(OSError):  # already gone: poll() will say why
                self._control.send("cancel")

    def poll(self) -> bool:
        """Handle whatever the job has sent; True once it has finished (either way)."""
        self._drain()
        if not self.finished and not self._process.is_alive():
            self._drain()  # what it sent just before it ended
            if not self.finished:
                self.reason = self._death()
        if self.finished:
            self._process.join(5)
            self._progress.close()
            self._control.close()
        return self.finished

    def wait(self, timeout: float | None = None) -> bool:
        """Poll until the job finishes or ``timeout`` seconds pass; True if finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            wait([self._progress, self._process.sentinel], left)
        return True

    def _drain(self) -> None:
        try:
            while not self.finished and self._progress.poll():
                self._handle(*self._progress.recv())
        except (EOFError, OSError):
            self._process.join(5)  # the pipe closed: the process is ending

    def _handle(self, kind: str, payload) -> None:
        if kind == "progress":
            self.last = payload
            if self._on_progress:
                self._on_progress(payload)
        elif kind == "read":
            self.read = payload
            if self.on_read:
                self.on_read(payload)
        elif kind == "done":
            self.result = payload
        else:
            self.reason = payload

    def _death(self) -> str:
        code = self._process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the training process was killed by {name}{hint} before it wrote a model"
        return f"the training process exited with code {code} before it wrote a model"
