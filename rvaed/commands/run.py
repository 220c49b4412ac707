"""Run the daemon: play the model's groove to the MIDI outputs in time with Ableton Link,
follow controllers and OSC, and train new models on request. Stops cleanly on SIGTERM or
Ctrl-C; SIGHUP reloads the configuration and mappings without stopping the music."""

import asyncio
import logging
from pathlib import Path

HELP = "run the daemon: play, follow controllers and OSC, train on request"


def add_arguments(parser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="configuration file (default: the first of "
                             "$XDG_CONFIG_HOME/rvaed/rvaed.yaml, /etc/rvaed/rvaed.yaml, "
                             "built-in defaults)")


def run(args) -> int:
    from rvaed.daemon.config import load_config
    from rvaed.daemon.service import Daemon

    config = load_config(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(config.logging.level.upper())
    asyncio.run(Daemon(config, args.config).run())
    return 0
