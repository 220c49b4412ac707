"""Writing files so that a crash or a power cut leaves the old version or the new, never a mix.

Three ways, one guarantee: the data is fsync'd under a temporary name in the same directory,
then made visible in one step (a rename over a file, a rename of a whole directory, or a hard
link to a name that does not exist yet), and the directory is fsync'd so the step survives a
crash too. Every state file, model, pattern and capture rvaed writes goes through here.
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], object]  # writes one file's content into an open binary file


def write_atomic(path: Path, data: bytes | Writer) -> None:
    """Replace ``path`` with ``data`` (bytes, or a function that writes into the open file) so
    readers see the old file or the new, never a mix. The folder must exist."""
    with _temporary(path.parent, f".{path.name}.", data) as temp:
        os.replace(temp, path)
    sync_directory(path.parent)


def write_new(directory: Path, names: Iterator[str], data: bytes | Writer) -> Path | None:
    """Write ``data`` under the first of ``names`` that does not exist in ``directory`` (made
    if missing); never replaces a file. None when every name is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    with _temporary(directory, ".new.", data) as temp:
        for name in names:
            try:
                os.link(temp, directory / name)
            except FileExistsError:
                continue
            sync_directory(directory)
            return directory / name
    return None


def write_directory(out_dir: Path, files: dict[str, bytes]) -> None:
    """Make ``out_dir`` hold exactly ``files``: written into a temporary sibling directory, then
    renamed into place (an existing ``out_dir`` is renamed aside first, then removed)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        temp.chmod(0o755)  # mkdtemp makes it private; a model is as readable as any file
        for name, data in files.items():
            with open(temp / name, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        sync_directory(temp)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            out_dir.rename(old / out_dir.name)
            temp.rename(out_dir)
            shutil.rmtree(old)
        else:
            temp.rename(out_dir)
        sync_directory(out_dir.parent)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so the renames and links made in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _temporary(directory: Path, prefix: str, data: bytes | Writer) -> Iterator[str]:
    """A fsync'd temporary file holding ``data`` in ``directory``, gone after the block."""
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            if isinstance(data, bytes):
                file.write(data)
            else:
                data(file)
            file.flush()
            os.fsync(file.fileno())
        yield temp
    finally:
        Path(temp).unlink(missing_ok=True)
