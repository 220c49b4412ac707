"""The daemon's own OSC commands: training, the model library, and what touches files.

OSC listens on the network so a phone can play, but anyone on the network must not make the
daemon read or write files. So every command here that touches files is refused unless the
sender is in ``osc.allow`` (default: this machine only), and every path it names must resolve
inside the data directories (rvaed.daemon.policy.FilePolicy).

| address               | arguments       | effect                                                 |
| --------------------- | --------------- | ------------------------------------------------------ |
| /rvaed/train          | PATH ...        | train on these files/folders (relative to the inbox)   |
| /rvaed/train/cancel   |                 | stop training; the best model so far is still kept     |
| /rvaed/model          | NAME            | play a library model (or "starter"), on the next loop  |
| /rvaed/models         |                 | reply /rvaed/models NAME ... (the library)             |

And one that touches no file, open to every sender like the performance addresses:

| /rvaed/bend           | AMOUNT [SEED]   | nudge the decoder's weights (0..1; 0 = as trained)     |
"""

import asyncio

from rvaed.control.osc import OscServer, numbers
from rvaed.core.errors import RvaedError
from rvaed.core.midifile import midi_files
from rvaed.model.modeldir import model_path

MAX_PATHS = 256


def route_commands(daemon, server: OscServer) -> None:
    """Serve the commands above on ``server`` for ``daemon`` (a rvaed.daemon.Daemon)."""
    policy = daemon.policy

    def train(sender, args) -> None:
        if not args or len(args) > MAX_PATHS or not all(isinstance(a, str) for a in args):
            raise RvaedError(f"expected 1-{MAX_PATHS} paths (strings)")
        inbox = daemon.config.dirs.inbox
        refused: list[tuple[str, str]] = []
        found = midi_files([policy.resolve(path, inbox) for path in args], refused)
        if not found:
            raise RvaedError("no .mid or .midi files in the given paths")
        files = [policy.resolve(str(file), inbox) for file in found]  # no symlink escapes
        policy.check_request(files)
        daemon.train(files)

    def cancel(sender, args) -> None:
        if not daemon.trainer.cancel():
            raise RvaedError("no training is running")

    def model(sender, args) -> None:
        if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
            raise RvaedError("expected one model name")
        name = args[0]
        folder = model_path(name) if name == "starter" else daemon.library.resolve(name)
        asyncio.get_running_loop().create_task(daemon.switch_model(folder))

    def models(sender, args) -> None:
        server.reply(sender, "/rvaed/models", ["starter", *daemon.library.names()])

    def bend(sender, args, at) -> None:
        amount, *seed = numbers("/rvaed/bend", args, len(args) if 1 <= len(args) <= 2 else 1)
        daemon.bend(min(1.0, max(0.0, amount)), int(seed[0]) if seed else 0)

    server.route("/rvaed/bend", bend)
    for address, handler in (("/rvaed/train", train), ("/rvaed/train/cancel", cancel),
                             ("/rvaed/model", model), ("/rvaed/models", models)):
        server.route(address, policy.guard(address, handler))
