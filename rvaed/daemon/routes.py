"""The OSC route registry: every input address of the daemon in one table, and its commands.

`ROUTES` lists every address once: the performance's (`rvaed.control.osc.ROUTES`, one per
parameter of the state's table and the rest), the daemon's own commands below (training, the
model library, bending) and the tools' (automation, capture, find my groove). `serve` binds
them on a running daemon's OSC server; `readme_tables` renders the README's OSC tables from
them (a test holds the README to it: ``python -m rvaed.daemon.routes README.md`` updates it).

OSC listens on the network so a phone can play, but anyone on the network must not make the
daemon read or write files. So every route that touches files is refused unless it carries the
daemon's secret as its first argument (and the sender is in ``osc.allow``), and every path it
names must resolve inside the data directories (rvaed.daemon.policy.FilePolicy). Bending
touches no file: it is open to every sender like the performance addresses.
"""

import asyncio
import logging
import sys
from pathlib import Path

from rvaed.control import osc
from rvaed.control.osc import OscServer, Route, numbers
from rvaed.core.errors import RvaedError
from rvaed.core.midifile import MIDI_SUFFIXES, midi_files
from rvaed.daemon.policy import secret_path
from rvaed.model.modeldir import model_path
from rvaed.tools import automation, capture, groove

log = logging.getLogger(__name__)

MAX_PATHS = 256
BEGIN = ("<!-- The OSC tables below are generated from rvaed/daemon/routes.py: "
         "python -m rvaed.daemon.routes README.md -->")
END = "<!-- end of the generated OSC tables -->"
FILES_NOTE = ("Commands that touch files are obeyed only with the daemon's secret as their "
              "first argument\n(SECRET: `osc.secret`, else the file `secret` in the state "
              "directory), only from the addresses in\n`osc.allow` (default: this machine), and "
              "every path must lie inside the daemon's data directories.\nOn the daemon's "
              "machine, `rvaed train --daemon FILES` needs no secret (it uses a local socket):")


def train_files(daemon, args: tuple) -> list[Path]:
    """The MIDI files a train request names, checked against the file policy."""
    if not args or len(args) > MAX_PATHS or not all(isinstance(a, str) for a in args):
        raise RvaedError(f"expected 1-{MAX_PATHS} paths (strings)")
    policy, inbox = daemon.policy, daemon.config.dirs.inbox
    refused: list[tuple[str, str]] = []
    found = midi_files([policy.resolve(path, inbox) for path in args], refused)
    if not found:
        raise RvaedError(f"no {'/'.join(MIDI_SUFFIXES)} files in the given paths")
    files = [policy.resolve(str(file), inbox) for file in found]  # no symlink escapes
    policy.check_request(files)
    return files


def _train(daemon, sender: tuple, args: tuple, at: int) -> None:
    daemon.train(train_files(daemon, args))


def _cancel(daemon, sender: tuple, args: tuple, at: int) -> None:
    if not daemon.trainer.cancel():
        raise RvaedError("no training is running")


def _model(daemon, sender: tuple, args: tuple, at: int) -> None:
    if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
        raise RvaedError("expected one model name")
    name = args[0]
    folder = model_path(name) if name == "starter" else daemon.library.resolve(name)
    asyncio.get_running_loop().create_task(daemon.switch_model(folder))


def _models(daemon, sender: tuple, args: tuple, at: int) -> None:
    daemon.osc.reply(sender, "/rvaed/models", ["starter", *daemon.library.names()])


def _bend(daemon, sender: tuple, args: tuple, at: int) -> None:
    amount, *seed = numbers("/rvaed/bend", args, len(args) if 1 <= len(args) <= 2 else 1)
    daemon.bend(min(1.0, max(0.0, amount)), int(seed[0]) if seed else  # else the state's
                daemon.performance.state.seed)


COMMANDS = (
    Route("/rvaed/bend", "AMOUNT [SEED]", "nudge the decoder's weights (0..1; 0 = as trained; "
          "SEED: the noise's, default /rvaed/seed)",
          _bend),
    Route("/rvaed/train", "PATH ...", "train on these files/folders (relative to the inbox)",
          _train, files=True),
    Route("/rvaed/train/cancel", "", "stop training; the best model so far is still kept",
          _cancel, files=True),
    Route("/rvaed/model", "NAME", "play a library model (or `starter`), on the next loop",
          _model, files=True),
    Route("/rvaed/models", "", "reply /rvaed/models NAME ... (the library) to the sender's "
          "subscriptions", _models, files=True),
)
ROUTES = (*osc.ROUTES, *COMMANDS, *automation.ROUTES, *capture.ROUTES, *groove.ROUTES)


def serve(daemon, server: OscServer) -> None:
    """Serve the daemon's commands and its tools' routes on ``server`` (the performance's it
    serves itself) for ``daemon`` (a rvaed.daemon.service.Daemon)."""
    guard = daemon.policy
    server.serve(COMMANDS, daemon, guard)
    server.serve(automation.ROUTES, daemon.automator)
    server.serve(capture.ROUTES, daemon.capture, guard)
    files = groove.GrooveFiles(daemon.performance, daemon.policy, daemon.config.dirs.captures)
    server.serve(groove.ROUTES, files, guard)
    where = "osc.secret in the config" if daemon.config.osc.secret else secret_path(daemon.config)
    log.info("OSC: commands that touch files need the secret (in %s) as their first argument; "
             "on this machine `rvaed train --daemon` needs none", where)


def readme_tables(routes: tuple[Route, ...] = ROUTES) -> str:
    """The README's OSC tables (markdown, between the BEGIN and END lines): the open routes,
    then those that touch files."""
    return "\n".join([
        BEGIN, "", *_table(r for r in routes if not r.files), "", FILES_NOTE, "",
        *_table(r for r in routes if r.files), "", END])


def _table(routes) -> list[str]:
    return ["| address | arguments | effect |", "| --- | --- | --- |",
            *(f"| `{r.address}` | {_arguments(r)} | {r.effect} |" for r in routes)]


def _arguments(route: Route) -> str:
    return f"SECRET {route.arguments}".strip() if route.files else route.arguments


def tables_in(text: str, where: str = "README.md") -> str:
    """The generated OSC tables in ``text`` (BEGIN to END); a one-line error without them."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise RvaedError(f"{where}: no generated OSC tables (expected a line {BEGIN} and "
                         f"a line {END} after it)")
    return text[start:end + len(END)]


def update_readme(path: Path) -> bool:
    """Rewrite the OSC tables in the README at ``path`` from `ROUTES`; False if they were
    already up to date."""
    text = path.read_text()
    current = tables_in(text, str(path))
    if current == readme_tables():
        return False
    path.write_text(text.replace(current, readme_tables()))
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print(f"{target}: {'updated' if update_readme(target) else 'up to date'}")
