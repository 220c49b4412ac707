"""`rvaed inspect`: what ingestion sees, as a table or JSON."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from midigen import beat_file, groove, hits, meter, smf, track, write

from rvaed.commands import inspect
from rvaed.core.errors import RvaedError

GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"


def main(argv: list[str]) -> int:
    """The command on its own (the full CLI runs in test_the_command_on_the_groove_midi_subset)."""
    parser = argparse.ArgumentParser(prog="rvaed inspect")
    inspect.add_arguments(parser)
    return inspect.run(parser.parse_args(argv))


@pytest.fixture
def folder(tmp_path) -> Path:
    """rock.mid: 2 bars of a 12-note groove, a bar with one kick, a crash (note 49, unmapped);
    waltz.mid: 4 bars of 3/4; notes.mid: text."""
    beat_file(tmp_path / "rock.mid", [*groove(2), (8.0, 36, 100), (0.0, 49, 120)])
    waltz = [meter(0, 3, 4), *hits([(float(b), 36, 100) for b in range(12)])]
    write(tmp_path / "sub" / "waltz.mid", smf([track(waltz)]))
    write(tmp_path / "notes.mid", b"these are my notes\n")
    return tmp_path


def test_the_table(folder, capsys):
    assert main([str(folder)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if ".mid" in line}
    assert rows[str(folder / "rock.mid")] == ["2", "3", "0", "49", "x", "1"]
    assert rows[str(folder / "sub" / "waltz.mid")] == ["0", "4", "4", "(3/4", "x", "4)", "0"]
    assert f"  {folder / 'notes.mid'}: not a MIDI file (no MThd header)" in out.splitlines()
    assert "refused (1):" in out
    lines = out.splitlines()
    voices = {line.split()[0]: line.split()[1] for line in lines[lines.index("refused (1):"):]
              if len(line.split()) == 2}
    assert voices["voice"] == "hits"
    assert (voices["kick"], voices["snare"], voices["closed-hat"], voices["clap"]) == (
        "17", "4", "16", "0")
    for line in ("files: 2 read, 1 refused", "unmapped notes: 49 x 1",
                 "skipped bars (not 4/4): 4 (3/4 x 4)",
                 "dropped windows (fewer than 4 onsets): 0",
                 "windows (2-bar 4/4, 32 steps): 2"):
        assert line in lines


def test_json(folder, capsys):
    assert main(["--json", "--min-onsets", "14", str(folder)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["windows"] == 1  # the window over bars 2-3 has 13 onsets
    assert report["dropped_windows"] == 1
    assert report["refused"] == [{"file": str(folder / "notes.mid"),
                                  "reason": "not a MIDI file (no MThd header)"}]
    files = {Path(f["file"]).name: f for f in report["files"]}
    assert files["rock.mid"]["windows"] == 1
    assert files["rock.mid"]["unmapped_notes"] == {"49": 1}
    assert files["waltz.mid"]["skipped_meters"] == {"3/4": 4}
    assert report["summary"]["hits_per_voice"]["snare"] == 4


def test_nothing_usable_exits_1_and_says_what_was_found(tmp_path, capsys):
    path = beat_file(tmp_path / "a.mid", groove(3), channel=1)
    assert main([str(path)]) == 0  # auto: drum-like notes on channel 1
    assert f"  {path}: channel 1 (drum-like notes)" in capsys.readouterr().out.splitlines()
    assert main(["--channel", "10", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        "rvaed inspect: no notes on channel 10; 36 notes on channel 1: try --channel 1")
    assert "notes on other channels: channel 1 x 36" in captured.out
    assert main(["--channel", "1", str(path)]) == 0
    assert main(["--channel", "all", str(path)]) == 0
    assert "windows (2-bar 4/4, 32 steps): 2" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--channel", "17"], "expected 1-16, 'auto' or 'all', got '17'"),
    (["--channel", "drums"], "expected 1-16, 'auto' or 'all', got 'drums'"),
])
def test_bad_arguments(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as caught:
        main([*args, str(tmp_path)])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_kit_is_an_error(tmp_path):
    with pytest.raises(RvaedError, match="unknown kit 'nonesuch'"):
        main(["--kit", "nonesuch", str(tmp_path)])


def test_the_command_on_the_groove_midi_subset():
    done = subprocess.run(
        [sys.executable, "-m", "rvaed.cli", "inspect", "--kit", "gmd", str(GROOVE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "files: 13 read, 0 refused" in lines
    assert sum(".mid" in line for line in lines) == 13
    windows = int(lines[-1].rsplit(": ", 1)[1])
    per_file = sum(int(line.split()[1]) for line in lines if ".mid" in line)
    assert windows == per_file > 50
    assert "skipped bars (not 4/4)" in done.stdout and "3/4 x " in done.stdout
