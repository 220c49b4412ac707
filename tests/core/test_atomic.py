"""The one atomic writer: a file replaced, a new name taken, a directory swapped; a failure
leaves the old version and no stray temporary file."""

import os

import pytest

from rvaed.core.atomic import write_atomic, write_directory, write_new


def test_a_file_is_replaced_whole_and_a_failing_writer_leaves_the_old_one(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, b"old")
    write_atomic(path, lambda file: file.write(b"new"))
    assert path.read_bytes() == b"new"

    def broken(file):
        file.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["state.json"]
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x", b"")  # the folder must exist


def test_a_new_name_never_replaces_a_file(tmp_path):
    (tmp_path / "take.mid").write_bytes(b"someone else's")
    names = iter(["take.mid", "take-2.mid", "take-3.mid"])
    assert write_new(tmp_path, names, b"mine") == tmp_path / "take-2.mid"
    assert (tmp_path / "take.mid").read_bytes() == b"someone else's"
    assert write_new(tmp_path, iter(["take.mid", "take-2.mid"]), b"again") is None
    assert sorted(os.listdir(tmp_path)) == ["take-2.mid", "take.mid"]


def test_a_directory_is_swapped_whole(tmp_path):
    model = tmp_path / "model"
    write_directory(model, {"a": b"1", "b": b"2"})
    write_directory(model, {"c": b"3"})
    assert sorted(os.listdir(model)) == ["c"] and os.listdir(tmp_path) == ["model"]
    assert oct(model.stat().st_mode & 0o777) == oct(0o755)
