"""Writes the phone layouts into controllers/: ``python -m rvaed.daemon.layoutfiles [FOLDER]``.

The files (controllers/rvaed.tosc for TouchOSC, controllers/rvaed.json for Open Stage Control)
ship in the package and are committed; they are generated from `rvaed.daemon.layouts`, and a
test holds them to what this makes, byte for byte, so a change to the parameter table, the
kit or the routes that is not regenerated fails there. Run it after such a change (default
FOLDER: the package's controllers/).
"""

import sys
from importlib import resources
from pathlib import Path

from rvaed.core.atomic import write_atomic
from rvaed.daemon import layouts, openstage, touchosc

NAME = "rvaed"  # the files are NAME.tosc and NAME.json


def files() -> dict[str, bytes]:
    """The generated files by name: the TouchOSC layout and the Open Stage Control session."""
    layout = layouts.pages()
    return {f"{NAME}.tosc": touchosc.render(layout), f"{NAME}.json": openstage.render(layout)}


def write(folder: Path) -> list[Path]:
    """Write the generated files into ``folder`` (atomically); the paths that changed."""
    changed = []
    for name, data in files().items():
        path = folder / name
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
            path.chmod(0o644)  # package data: readable by the service user of an install
            changed.append(path)
    return changed


def shipped_folder() -> Path:
    """The package's controllers/ folder (where the layouts ship)."""
    return Path(str(resources.files("rvaed.controllers")))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else shipped_folder()
    print("\n".join(f"{path}: written" for path in write(target)) or f"{target}: up to date")
