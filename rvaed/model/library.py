"""The model library: every model rvaed has trained, kept side by side and never overwritten.

A library is a directory of model directories named ``NAME-YYYYmmdd-HHMMSS`` (``-2``, ``-3``
on a collision). Models are picked by full name or unique prefix, so ``/rvaed/model funk``
finds ``funk-20250301-201500`` when it is the only funk. The library remembers the last
model loaded (in ``last-model.json``, written atomically) so a restart plays it again.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from rvaed.core.atomic import write_atomic
from rvaed.core.errors import RvaedError
from rvaed.model.modeldir import MANIFEST, read_manifest

log = logging.getLogger(__name__)

LAST_FILE = "last-model.json"
SCRATCH_PREFIX = ".scratch-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")


def safe_name(text: str) -> str:
    """``text`` as a model name: letters, digits, ``_.-`` only, at most 40 characters."""
    name = _UNSAFE.sub("-", text).strip(".-")[:40].rstrip(".-")
    return name or "model"


class ModelLibrary:
    """A directory of named, timestamped models (created when first needed)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """The models in the library, oldest first within a name (the timestamps sort)."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name for entry in os.scandir(self.root)
            if entry.is_dir() and not entry.name.startswith(".")
            and os.path.isfile(os.path.join(entry.path, MANIFEST))
        )

    def resolve(self, name: str) -> Path:
        """The model named ``name`` exactly, else the only one whose name starts with it."""
        names = self.names()
        if name in names:
            return self.root / name
        matches = [n for n in names if n.startswith(name)] if name else []
        if len(matches) == 1:
            return self.root / matches[0]
        if matches:
            raise RvaedError(f"model {name!r} is ambiguous: {', '.join(matches)}")
        known = ", ".join(names) if names else "the library is empty"
        raise RvaedError(f"no model {name!r} in {self.root} ({known})")

    def add(self, model_dir: Path, name: str | None = None,
            when: datetime | None = None) -> Path:
        """Check ``model_dir`` (`read_manifest`: manifest and ONNX graphs) and move it into
        the library as ``NAME-YYYYmmdd-HHMMSS`` (NAME: the manifest's name by default).

        The move is a rename onto a freshly made, empty directory, so nothing existing is
        ever replaced and the model appears whole or not at all. A model on another
        filesystem is copied (and left where it was).
        """
        manifest = read_manifest(model_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        source = Path(model_dir)
        if source.stat().st_dev != self.root.stat().st_dev:
            source = self.scratch()
            try:
                shutil.copytree(model_dir, source)
            except BaseException:
                shutil.rmtree(source, ignore_errors=True)
                raise
        target = self._reserve(safe_name(name or manifest.name), when or datetime.now())
        try:
            source.rename(target)
        except OSError:
            target.rmdir()
            raise
        log.info("model %s added to the library", target.name)
        return target

    def rename(self, name: str, new: str) -> Path:
        """Give the model named exactly ``name`` the name ``new`` (made safe), keeping its
        timestamp; the remembered last model follows. The renamed model's path."""
        if name not in self.names():
            raise RvaedError(f"no model {name!r} in {self.root}")
        stamp = _STAMP.search(name)
        when = datetime.strptime(stamp[1], "%Y%m%d-%H%M%S") if stamp else datetime.now()
        source, target = self.root / name, self._reserve(safe_name(new), when)
        was_last = self.last() == source
        try:
            source.rename(target)
        except OSError:
            target.rmdir()
            raise
        if was_last:
            self.remember(target)
        log.info("model %s renamed to %s", name, target.name)
        return target

    def _reserve(self, name: str, when: datetime) -> Path:
        """Create an empty directory under a name that no other model has."""
        base = f"{name}-{when:%Y%m%d-%H%M%S}"
        suffix = 1
        while True:
            target = self.root / (base if suffix == 1 else f"{base}-{suffix}")
            try:
                target.mkdir()
                return target
            except FileExistsError:
                suffix += 1

    def scratch(self) -> Path:
        """A fresh hidden path (not yet created) inside the library for a training job to
        write its model to: `add` then moves it in by a rename on the same filesystem."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.root))
        path.rmdir()  # the name is unique; the writer creates the directory atomically
        return path

    def discard_scratch(self) -> None:
        """Remove work left behind by a crash or a killed training job: every hidden
        directory in the library (models never start with a dot)."""
        for stale in self.root.glob(".*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)

    def remember(self, model: Path) -> None:
        """Note ``model`` (in the library or anywhere) as the one to load at the next start."""
        path = Path(model).resolve()
        entry = path.name if path.parent == self.root.resolve() else str(path)
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / LAST_FILE, (json.dumps({"model": entry}) + "\n").encode())

    def last(self) -> Path | None:
        """The model remembered by `remember`, if it is still there; None otherwise."""
        path = self.root / LAST_FILE
        try:
            entry = json.loads(path.read_bytes())["model"]
            model = self.root / entry if "/" not in entry else Path(entry)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable (%s); using the configured model", path, exc)
            return None
        if not (model / MANIFEST).is_file():
            log.warning("last model %s is gone; using the configured model", model)
            return None
        return model
