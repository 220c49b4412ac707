"""Grooves beyond 4/4 sixteenths: generated files in 3/4, 6/8, 12/8, 5/4 and 7/8, on 16th and
triplet grids, with a meter change; the meter read from the files or chosen; a 6/8 model that
reproduces what it was trained on; pattern files that keep their meter."""

import mido
import numpy as np
import pytest
from midigen import hits, meter, smf, tempo, track, write

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid, Pattern
from rvaed.core.patternfile import load_pattern, save_pattern
from rvaed.training.dataset import ingest, load_dataset
from rvaed.training.options import IngestOptions, TrainOptions

KIT = load_kit("rhythmvae")
KICK, SNARE, HAT = 0, 1, 2
ONSETS, OFFSETS = 0, 2
NOTES = {KICK: 36, SNARE: 38, HAT: 42}


def bar_notes(bar_start: float, beats: float, spb: int, seed: int) -> list[tuple[float, int, int]]:
    """A bar with a hat on every step, a kick on the bar line and a snare on a step chosen by
    ``seed``: each hit exactly on a step of a grid of ``spb`` steps per quarter note."""
    steps = round(beats * spb)
    notes = [(bar_start + s / spb, NOTES[HAT], 70) for s in range(steps)]
    notes += [(bar_start, NOTES[KICK], 110), (bar_start + (1 + seed % (steps - 1)) / spb,
                                              NOTES[SNARE], 100)]
    return notes


def meter_file(path, meters: list[tuple[int, int, int]], spb: int, bpm: float = 100.0):
    """A type 0 file of ``bars`` bars in each (numerator, denominator, bars) in turn."""
    events, beat, notes = [tempo(0, bpm)], 0.0, []
    for numerator, denominator, bars in meters:
        events.append(meter(round(beat * 480), numerator, denominator))
        beats = numerator * 4 / denominator
        for bar in range(bars):
            notes += bar_notes(beat, beats, spb, len(notes) + bar)
            beat += beats
    return write(path, smf([track([*events, *hits(notes)])]))


def read(paths, grid=None, **kwargs):
    options = IngestOptions(KIT, grid or Grid(steps_per_beat=kwargs.pop("spb", 4)),
                            meter_from_data=grid is None, **kwargs)
    return ingest(paths, options)


@pytest.mark.parametrize("numerator, denominator, spb", [
    (3, 4, 4), (6, 8, 4), (12, 8, 3), (5, 4, 4), (7, 8, 4), (6, 8, 6), (4, 4, 3), (4, 4, 12)])
def test_each_meter_and_grid_is_read_step_for_step(tmp_path, numerator, denominator, spb):
    path = meter_file(tmp_path / "a.mid", [(numerator, denominator, 4)], spb)
    data = read([path], spb=spb)
    grid = data.report.options.grid
    assert (grid.numerator, grid.denominator, grid.steps_per_beat) == (numerator, denominator,
                                                                       spb)
    assert "as 4 of the files' 4 whole bars are" in data.report.meter_note
    steps_per_bar = round(numerator * 4 / denominator * spb)
    assert data.windows.shape == (3, 3, KIT.size, 2 * steps_per_bar)  # bars 1, 2 and 3
    first = data.windows[0]
    assert np.flatnonzero(first[ONSETS, HAT]).tolist() == list(range(2 * steps_per_bar))
    assert np.flatnonzero(first[ONSETS, KICK]).tolist() == [0, steps_per_bar]
    assert not first[OFFSETS].any()  # every hit exactly on its step: triplets too


def test_a_meter_change_is_read_bar_by_bar(tmp_path):
    path = meter_file(tmp_path / "a.mid", [(6, 8, 2), (7, 8, 2), (6, 8, 3)], 4)
    data = read([path], Grid(numerator=6, denominator=8))
    assert [bar for _, bar in data.sources] == [1, 5, 6]
    assert data.report.skipped_bars == {"7/8": 2}
    assert data.windows.shape[-1] == 24
    mixed = read([path])
    assert mixed.report.mixed_meters
    assert mixed.report.meter_note == ("the files mix meters (5 bars in 6/8, 2 bars in 7/8): "
                                       "choose one with --meter (e.g. --meter 6/8)")
    with pytest.raises(RvaedError, match=r"^the files mix meters \(5 bars in 6/8"):
        load_dataset([path], IngestOptions(KIT, meter_from_data=True))


def test_cut_time_holds_a_four_four_bar(tmp_path):
    path = meter_file(tmp_path / "a.mid", [(2, 2, 3)], 4)
    four = read([path], Grid())
    assert len(four.windows) == 2 and not four.report.skipped_bars
    assert read([path]).report.options.grid.meter == "4/4"


def test_a_meter_the_grid_cannot_hold_is_one_line(tmp_path):
    path = meter_file(tmp_path / "a.mid", [(7, 8, 4)], 4)
    report = read([path], spb=3).report
    assert report.mixed_meters and report.options.grid.meter == "4/4"
    assert report.meter_note == ("grid meter 7/8: a bar is not a whole number of steps at 3 "
                                 "steps per beat: choose --steps-per-beat (e.g. 4) or --meter")
    with pytest.raises(ValueError, match="not a whole number of steps"):
        Grid(steps_per_beat=3, numerator=7, denominator=8)


def test_a_pattern_file_keeps_its_meter(tmp_path):
    grid = Grid(steps_per_beat=3, numerator=12, denominator=8, bars=1)
    rng = np.random.default_rng(1)
    onsets = (rng.random((KIT.size, grid.steps)) < 0.3).astype(np.float32)
    pattern = Pattern.from_array(np.stack([onsets, onsets * 0.8, np.zeros_like(onsets)]))
    save_pattern(pattern, tmp_path / "a.mid", KIT, grid)
    signature = [m for m in mido.MidiFile(tmp_path / "a.mid").tracks[0]
                 if m.type == "time_signature"]
    assert [(m.numerator, m.denominator) for m in signature] == [(12, 8)]
    back = load_pattern(tmp_path / "a.mid", KIT, grid)
    assert np.array_equal(back.onsets, pattern.onsets)
    with pytest.raises(RvaedError, match="bar 1 is in 12/8: expected 4/4"):
        load_pattern(tmp_path / "a.mid", KIT, Grid(bars=1))


def test_a_six_eight_model_reproduces_its_two_windows(tmp_path):
    pytest.importorskip("torch")
    from rvaed.training.loop import onset_f1, reconstruct, train

    rng = np.random.default_rng(7)  # two different 6/8 grooves, a 16th grid: 24 steps each
    notes = [(step / 4, note, int(rng.integers(40, 127)))
             for step in range(48) for note in (36, 38, 42, 46) if rng.random() < 0.3]
    path = write(tmp_path / "a.mid", smf([track([meter(0, 6, 8), tempo(0, 100.0),
                                                  *hits(notes)])]))
    grid = Grid(numerator=6, denominator=8)
    windows = load_dataset([path], IngestOptions(KIT, grid, hop_bars=2)).windows
    assert windows.shape == (2, 3, KIT.size, 24)
    assert onset_f1(windows[0, 0], windows[1, 0]) < 0.6
    result = train(windows, TrainOptions(epochs=150, patience=None))
    out = reconstruct(result.model, windows)
    for i in range(2):
        assert onset_f1(out[i, 0], windows[i, 0]) >= 0.95
