"""The daemon's side of the web page: its commands through the OSC route registry, and the
file work the page asks for (uploads, training, the model library, captures).

The page dispatches every command through the route table the OSC server serves
(rvaed.daemon.routes: the same handlers, the same ``files`` marks); with OSC off, an unbound
OSC server holds that table for the page alone. Uploads land in a fresh folder of
``dirs.state/uploads/`` (inside the data directories, so every later use of them passes the
file policy as an OSC command would), and `rvaed inspect` reads them in its own process (the
daemon never imports the training side): the page shows what was read, what was refused and
why, and the notes no voice takes, with the shipped kit that would take most of them.
"""

import asyncio
import importlib
import json
import logging
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rvaed.control.osc import OscServer
from rvaed.core.atomic import write_new
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit, shipped_kits
from rvaed.core.midifile import MIDI_SUFFIXES
from rvaed.core.png import encode_png
from rvaed.daemon import routes
from rvaed.daemon.policy import secret_path
from rvaed.model.latentmap import draw_map
from rvaed.model.library import safe_name
from rvaed.model.modeldir import model_path, read_manifest
from rvaed.model.runtime import Decoder

if TYPE_CHECKING:
    from rvaed.control.web.server import Lookup, WebServer

log = logging.getLogger(__name__)

UPLOADS = "uploads"
DROPPED = "dropped"  # the folder of one upload: models trained on it are named after it
THUMB_TILES = 4
MAX_CURVE = 10000  # epochs kept for the training curves
_BATCH = re.compile(r"^\d{8}-\d{6}-\d+$")


async def start_web(daemon) -> "WebServer | None":
    """Serve the page for ``daemon`` (a rvaed.daemon.service.Daemon) as configured; None
    when it is off or its port cannot be had (the log says why; the music plays on).

    aiohttp is imported here, in a worker thread, once the music plays: its ~0.2 s of
    imports then neither delay the first note nor hold up the loop."""
    config = daemon.config
    if not config.web.enabled:
        return None
    web = await asyncio.to_thread(importlib.import_module, "rvaed.control.web.server")
    registry = daemon.osc or _unbound_registry(daemon)
    server = web.WebServer(daemon.performance, registry.route, Desk(daemon, registry.route),
                       daemon.secret,
                       host=config.web.bind, port=config.web.port,
                       max_file_bytes=config.limits.max_file_bytes,
                       max_request_bytes=config.limits.max_request_bytes)
    try:
        await server.start()
    except RvaedError as exc:
        log.error("%s: the web page is off", exc)
        return None
    page, _ = server.urls(_shown_host(config.web.bind))
    log.info("web: page at %s; uploads, training, models and captures need the key: "
             "%s?key= and the secret (%s) (or pairing code %s)", page, page,
             "osc.secret in the config" if config.osc.secret else f"in {secret_path(config)}",
             daemon.secret.code)
    return server


def _unbound_registry(daemon) -> OscServer:
    """With OSC off: the route table alone, for the page (no socket is opened)."""
    registry = OscServer(daemon.performance, daemon.controls, model_name=daemon.model.name)
    routes.serve(daemon, registry)
    return registry


def _shown_host(bind: str) -> str:
    """The host to print in the page's URL: this machine's name when bound to every address."""
    return socket.gethostname() if bind in ("0.0.0.0", "::") else bind


class Desk:
    """What the page does with files, for one daemon."""

    def __init__(self, daemon, lookup: "Lookup") -> None:
        self.daemon, self.lookup = daemon, lookup
        self._thumbs: dict[str, bytes] = {}

    @property
    def uploads(self) -> Path:
        return self.daemon.config.dirs.state / UPLOADS

    # -- the snapshot's daemon part ---------------------------------------------------------

    def extras(self) -> dict:
        return {"model": self.daemon.model.name, "training": self._training(),
                "automation": self._automation()}

    def _training(self) -> dict:
        trainer = self.daemon.trainer
        if trainer is None:
            return {"busy": False, "status": "idle", "curve": []}
        epochs = trainer.epochs
        status = trainer.last_result
        if trainer.busy:
            status = (f"epoch {epochs[-1].epoch}/{epochs[-1].epochs}" if epochs
                      else "reading the files")
        return {"busy": trainer.busy, "status": status,
                "curve": [e.to_dict() for e in epochs[-MAX_CURVE:]]}

    def _automation(self) -> dict:
        automator = getattr(self.daemon, "automator", None)
        recording = automator.automation if automator is not None else None
        return {"status": automator.status if automator is not None else "idle",
                "points": [[round(v, 4) for v in p] for p in recording.points[-400:]]
                if recording is not None else []}

    # -- uploads and training ---------------------------------------------------------------

    async def upload(self, files: list[tuple[str, bytes]]) -> dict:
        """Save the files into a fresh upload folder and say what rvaed reads in them."""
        if not files:
            raise RvaedError("no files in the upload")
        batch = await asyncio.to_thread(self._new_batch)
        refused = []
        for name, data in files:
            reason = await asyncio.to_thread(self._save, batch / DROPPED, name, data)
            if reason:
                refused.append({"file": name, "reason": reason})
        report = await self._inspect(batch / DROPPED)
        report["refused"] = refused + report.get("refused", [])
        report["batch"] = batch.name
        report["hint"] = kit_hint(report.get("unmapped_notes", {}), self.daemon.config.kit)
        return report

    def _new_batch(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for number in range(1, 1000):
            batch = self.uploads / f"{stamp}-{number}"
            try:
                (batch / DROPPED).mkdir(parents=True)
                return batch
            except FileExistsError:
                continue
        raise RvaedError(f"{self.uploads}: no free name for an upload")

    def _save(self, folder: Path, name: str, data: bytes) -> str | None:
        """Write one uploaded file (its base name only); the reason when it is refused."""
        base = Path(name.replace("\\", "/")).name
        if not base.lower().endswith(MIDI_SUFFIXES):
            return f"not a MIDI file (expected {', '.join(MIDI_SUFFIXES)})"
        stem, suffix = os.path.splitext(base)
        stem = safe_name(stem)
        names = (f"{stem}{'' if n == 1 else f'-{n}'}{suffix.lower()}" for n in range(1, 1000))
        if write_new(folder, names, data) is None:
            return "too many files of that name"
        return None

    async def _inspect(self, folder: Path) -> dict:
        """`rvaed inspect --json` on ``folder``, in its own process."""
        config = self.daemon.config
        channel = "all" if config.training.channel is None else str(config.training.channel)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rvaed.cli", "inspect", "--json", "--kit", config.kit,
            "--channel", channel, str(folder),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        try:
            report = json.loads(out)
        except ValueError:
            raise RvaedError(f"reading the upload failed: {err.decode(errors='replace')[-300:]}"
                             ) from None
        report["problem"] = err.decode(errors="replace").strip().removeprefix("rvaed inspect: ")
        for entry in report.get("files", []):
            entry["file"] = Path(entry["file"]).name
        for entry in report.get("refused", []):
            entry["file"] = Path(entry["file"]).name
        return report

    def train(self, batch: str) -> None:
        """Train on an upload, through the /rvaed/train route (its checks, its refusals)."""
        if not _BATCH.match(batch) or not (self.uploads / batch / DROPPED).is_dir():
            raise RvaedError(f"no upload {batch[:40]!r}")
        found = self.lookup("/rvaed/train")
        if found is None:
            raise RvaedError("training is not served")
        route, owner = found
        route.handler(owner, ("web", 0), (str(self.uploads / batch / DROPPED),),
                      time.perf_counter_ns())

    # -- the library --------------------------------------------------------------------------

    async def models(self) -> list[dict]:
        names = ["starter", *self.daemon.library.names()]
        return await asyncio.to_thread(lambda: [self._entry(name) for name in names])

    def _folder(self, name: str) -> Path:
        if name == "starter":
            return model_path("starter")
        if name not in self.daemon.library.names():
            raise RvaedError(f"no model {name[:60]!r} in the library")
        return self.daemon.library.root / name

    def _entry(self, name: str) -> dict:
        try:
            manifest = read_manifest(self._folder(name))
        except RvaedError as exc:
            return {"name": name, "problem": str(exc)}
        stamp = re.search(r"(\d{8})-(\d{6})", name)
        date = (f"{stamp[1][:4]}-{stamp[1][4:6]}-{stamp[1][6:]} "
                f"{stamp[2][:2]}:{stamp[2][2:4]}" if stamp else "shipped")
        return {"name": name, "date": date, "data": manifest.training.get("data", {}),
                "metrics": {k: v for k, v in manifest.metrics.items()
                            if isinstance(v, int | float)},
                "notes": [str(note) for note in manifest.training.get("notes", [])],
                "playing": name == self.daemon.model.name}

    async def thumbnail(self, name: str) -> bytes:
        if name not in self._thumbs:
            self._thumbs[name] = await asyncio.to_thread(self._draw_thumb, name)
        return self._thumbs[name]

    def _draw_thumb(self, name: str) -> bytes:
        decoder = Decoder(self._folder(name))
        return encode_png(draw_map(decoder, THUMB_TILES, labels=False))

    async def rename(self, name: str, new: str) -> str:
        if name == "starter":
            raise RvaedError("the starter model keeps its name")
        library = self.daemon.library
        self._folder(name)
        target = await asyncio.to_thread(library.rename, name, new)
        if self.daemon.model == library.root / name:
            self.daemon.model = target
        self._thumbs.pop(name, None)
        return target.name

    # -- captures --------------------------------------------------------------------------

    async def capture(self, bars: int | None, coming: bool = False) -> str:
        path = await self.daemon.capture.capture(bars, coming)
        return Path(path).name

    def capture_file(self, name: str) -> Path:
        """A capture's file by its name: a .mid directly inside the captures folder."""
        folder = self.daemon.config.dirs.captures
        path = self.daemon.policy.resolve(name, folder)
        if path.parent != folder.resolve() or path.suffix != ".mid" or not path.is_file():
            raise RvaedError(f"no capture {name[:60]!r}")
        return path


def kit_hint(unmapped: dict, kit: str) -> str | None:
    """Which shipped kit would take most of the ``unmapped`` note-ons (note -> count), as a
    line for the page; None when none takes any."""
    counts = {int(note): int(n) for note, n in unmapped.items()}
    if not counts:
        return None
    best, taken = None, 0
    for name in shipped_kits():
        if name == kit:
            continue
        voices = load_kit(name)
        covered = sum(n for note, n in counts.items() if voices.voice_of(note) is not None)
        if covered > taken:
            best, taken = name, covered
    if best is None:
        return None
    total = sum(counts.values())
    return (f"kit {best} maps {taken} of these {total} note-ons: set kit: {best} in the "
            "configuration (SIGHUP applies it) and upload again")
