"""Locate files shipped inside the package (kits, output maps, controller maps, models).

A name like ``gmd`` resolves to a shipped file; anything that looks like a path is used as is,
so a musician can point every option at a file of their own.
"""

from importlib import resources
from pathlib import Path

from rvaed.core.errors import RvaedError


def shipped(package: str, folder: str, suffix: str = ".yaml") -> dict[str, Path]:
    """Map the names of the shipped files in ``package/folder`` to their paths."""
    root = resources.files(package).joinpath(folder)
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda entry: entry.name)
        if entry.name.endswith(suffix)
    }


def resolve(name_or_path: str | Path, package: str, folder: str, what: str) -> Path:
    """Return the file a user named: an existing path, or the name of a shipped file."""
    path = Path(name_or_path)
    if path.suffix or path.parent != Path(".") or path.exists():
        if not path.is_file():
            raise RvaedError(f"{path}: no such {what} file")
        return path
    choices = shipped(package, folder)
    if str(name_or_path) not in choices:
        known = ", ".join(sorted(choices))
        raise RvaedError(f"unknown {what} {name_or_path!r}: expected a path or one of {known}")
    return choices[str(name_or_path)]
