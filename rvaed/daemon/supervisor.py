"""Training on request, for the daemon: one job at a time, beside the music.

A request (files from the inbox, an OSC /rvaed/train, `rvaed train --daemon`) starts a
`TrainJob` in its own niced process, writing into a scratch directory of the model library.
This supervisor follows it on the asyncio loop: progress goes to the log and to whoever
listens (OSC feedback); on success the model is added to the library under a new,
timestamped name and handed to ``on_model`` (which swaps it in); on failure, cancel or a
crash of the process the reason is logged and reported, and the playing model stays.
"""

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.daemon.config import TrainingConfig
from rvaed.model.library import ModelLibrary
from rvaed.training.job import TrainJob
from rvaed.training.options import IngestOptions, Progress, TrainOptions

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between looks at the job's pipe


class Trainer:
    """Starts, follows and finishes training jobs; refuses a second one while one runs."""

    def __init__(self, library: ModelLibrary, config: TrainingConfig, kit: str,
                 on_model: Callable[[Path], None],
                 on_progress: Callable[[float, str], None]) -> None:
        self.library = library
        self.config = config
        self.kit = kit
        self.on_model = on_model
        self.on_progress = on_progress
        self.job: TrainJob | None = None
        self.last_result: str = "idle"
        self.epochs: list[Progress] = []  # every finished epoch of the latest job (curves)
        self._task: asyncio.Task | None = None

    def update(self, config: TrainingConfig, kit: str) -> None:
        """Train with these settings from the next request on (a running job keeps its own)."""
        self.config, self.kit = config, kit

    @property
    def busy(self) -> bool:
        return self.job is not None

    def blocked(self) -> str | None:
        """Why a training cannot start now (None: it can)."""
        if self.job is not None:
            return "a training is running; they are taken when it ends"
        if importlib.util.find_spec("torch") is None:  # looked up, not imported
            return "torch is not installed (pip install 'rvaed[train]'), so nothing can train"
        return None

    def request(self, paths: list[Path], name: str | None = None) -> None:
        """Start training ``paths``; RvaedError when a job is already running."""
        if self.job is not None:
            raise RvaedError("a training job is already running: wait for it or cancel it")
        if not paths:
            raise RvaedError("training: no MIDI files given")
        options = TrainOptions(epochs=self.config.epochs, threads=self.config.threads)
        ingest = IngestOptions(load_kit(self.kit), channel=self.config.channel, workers=1,
                               meter_from_data=True)
        self.epochs = []
        self.job = TrainJob.start(paths, self.library.scratch(), options,
                                  on_progress=self.epochs.append, ingest=ingest,
                                  name=name or _name_from(paths))
        log.info("training: started on %d file(s), pid %s", len(paths), self.job.pid)
        self.job.on_read = _log_read
        self.on_progress(0.0, f"training {len(paths)} file(s)")
        self._task = asyncio.get_running_loop().create_task(self._follow(self.job))

    def cancel(self) -> bool:
        """Ask the running job to stop; it still writes the best model so far."""
        if self.job is None:
            return False
        self.job.cancel()
        log.info("training: cancel requested")
        return True

    async def close(self) -> None:
        """Stop a running job and wait for it (the daemon is shutting down)."""
        if self.job is not None:
            self.job.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.job is not None:
            await asyncio.to_thread(self.job.wait, 10)
        self.library.discard_scratch()

    async def _follow(self, job: TrainJob) -> None:
        seen = 0
        try:
            while not job.poll():
                if job.last is not None and job.last.epoch != seen:
                    seen = job.last.epoch
                    self._progress(job.last)
                await asyncio.sleep(POLL)
            self._finish(job)
        finally:
            self.job = None

    def _progress(self, progress: Progress) -> None:
        log.info("training: epoch %d/%d loss %.4f val %.4f onset F1 %.3f, %.0f s left",
                 progress.epoch, progress.epochs, progress.loss, progress.val_loss,
                 progress.val_onset_f1, progress.eta)
        self.on_progress(progress.epoch / progress.epochs,
                     f"epoch {progress.epoch}/{progress.epochs} F1 {progress.val_onset_f1:.2f}")

    def _finish(self, job: TrainJob) -> None:
        if job.result is None:
            self.last_result = f"failed: {job.reason}"
            log.error("training failed, the current model keeps playing: %s", job.reason)
            self.on_progress(0.0, self.last_result)
            self.library.discard_scratch()
            return
        try:
            model = self.library.add(Path(job.result["model_dir"]), job.result["name"])
        except RvaedError as exc:
            self.last_result = f"failed: {exc}"
            log.error("training produced no usable model, the current one keeps playing: %s",
                      exc)
            self.on_progress(0.0, self.last_result)
            return
        self.last_result = f"done: {model.name}"
        metrics = job.result["metrics"]
        log.info("training: model %s ready (onset F1 %.3f, %s distinct patterns on the pad)",
                 model.name, metrics.get("val_onset_f1", float("nan")),
                 metrics.get("pad_patterns", "?"))
        for note in job.result["notes"]:
            log.warning("training: %s", note)
        self.on_progress(1.0, self.last_result)
        self.on_model(model)


def _log_read(lines: list[str]) -> None:
    for line in lines:
        log.info("training: %s", line)


def _name_from(paths: list[Path]) -> str:
    """A model name from what was trained on: the first file's folder, or its stem."""
    first = Path(paths[0])
    return first.parent.name if len(paths) > 1 and first.parent.name else first.stem
