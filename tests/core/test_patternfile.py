"""Patterns to MIDI files and back: what is saved is what is read."""

from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from midigen import beat_file, groove, meter, smf, track, write

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit, shipped_kits
from rvaed.core.pattern import Grid, Hit, Pattern
from rvaed.core.patternfile import load_pattern, save_pattern
from rvaed.model.runtime import Decoder
from rvaed.training.dataset import load_dataset
from rvaed.training.options import IngestOptions

KIT = load_kit("rhythmvae")
GRID = Grid()
GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"
RESOLUTION = 1 / 120  # offsets are stored in 1/120 of a half step


def random_pattern(seed: int, grid: Grid = GRID, density: float = 0.3) -> Pattern:
    """Onset probabilities as a decoder gives them, any velocities and offsets."""
    rng = np.random.default_rng(seed)
    shape = (KIT.size, grid.steps)
    return Pattern(rng.random(shape), rng.random(shape) * (1 - density) + density / 2,
                   rng.uniform(-1, 1, shape))


def assert_same_hits(saved: Pattern, loaded: Pattern, threshold: float = 0.5) -> None:
    """Same cells and velocities; offsets within the file's resolution."""
    def by_cell(pattern: Pattern, threshold: float) -> dict:
        return {(h.voice, h.step): h for h in pattern.hits(threshold)}

    expected, got = by_cell(saved, threshold), by_cell(loaded, 0.5)
    assert sorted(got) == sorted(expected)
    for cell, hit in expected.items():
        assert got[cell].velocity == hit.velocity
        assert got[cell].offset == pytest.approx(hit.offset, abs=RESOLUTION)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.95))
def test_a_generated_pattern_is_read_back_as_saved(tmp_path_factory, seed, threshold):
    path = tmp_path_factory.mktemp("p") / "p.mid"
    pattern = random_pattern(seed)
    save_pattern(pattern, path, KIT, GRID, threshold=threshold)
    loaded = load_pattern(path, KIT, GRID)
    assert_same_hits(pattern, loaded, threshold)
    assert set(np.unique(loaded.onsets)) <= {0.0, 1.0}


def test_a_saved_file_is_read_back_identically_the_second_time(tmp_path):
    first = load_pattern(save(random_pattern(7), tmp_path / "a.mid"), KIT, GRID)
    second = load_pattern(save(first, tmp_path / "b.mid"), KIT, GRID)
    assert second == first


def save(pattern: Pattern, path: Path, **kwargs) -> Path:
    save_pattern(pattern, path, KIT, kwargs.pop("grid", GRID), **kwargs)
    return path


def test_an_early_first_hit_wraps_to_the_loop_end_and_back(tmp_path):
    pattern = Pattern.from_hits([Hit(0, 0, 100, -0.5), Hit(1, 31, 90, 0.99)], KIT.size, 32)
    path = save(pattern, tmp_path / "a.mid")
    ons = [(tick, msg.note) for tick, msg in _timeline(path) if msg.type == "note_on"]
    assert ons == [(31 * 240 + 119, 38), (32 * 240 - 60, 36)]
    assert load_pattern(path, KIT, GRID).hits() == (
        Hit(0, 0, 100, pytest.approx(-0.5)), Hit(1, 31, 90, pytest.approx(119 / 120)))


def _timeline(path: Path) -> list[tuple[int, mido.Message]]:
    tick, found = 0, []
    for msg in mido.MidiFile(path).tracks[0]:
        tick += msg.time
        found.append((tick, msg))
    return found


def test_the_file_has_tempo_meter_note_offs_and_one_loop(tmp_path):
    pattern = random_pattern(3, density=0.6)
    path = save(pattern, tmp_path / "a.mid", bpm=93.5, channel=3)
    midi = mido.MidiFile(path)
    assert (midi.type, midi.ticks_per_beat) == (0, 960)
    timeline = _timeline(path)
    assert timeline[-1][0] == 8 * 960  # end of track: exactly two bars
    tempos = [msg.tempo for _, msg in timeline if msg.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(93.5)]
    assert [(m.numerator, m.denominator) for _, m in timeline if m.type == "time_signature"] == [
        (4, 4)]
    sounding: set[int] = set()
    for _, msg in timeline:
        if msg.type == "note_on":
            assert msg.note not in sounding, "a note started twice without a note-off"
            assert msg.channel == 2
            sounding.add(msg.note)
        elif msg.type == "note_off":
            sounding.remove(msg.note)
    assert not sounding
    assert len([m for _, m in timeline if m.type == "note_on"]) == len(pattern.hits())


def test_output_notes_come_back_to_their_voices(tmp_path):
    mid_tom = KIT.names.index("mid-tom")
    pattern = Pattern.from_hits([Hit(mid_tom, 4, 100, 0.0)], KIT.size, 32)
    path = save(pattern, tmp_path / "a.mid")
    assert load_pattern(path, KIT, GRID) == pattern  # 45 is read as mid tom in a pattern file
    notes = [(0.0, KIT.voices[mid_tom].output, 100)]
    other = load_pattern(beat_file(tmp_path / "b.mid", notes), KIT, GRID)
    assert other.hits() == (Hit(KIT.names.index("low-tom"), 0, 100, 0.0),)  # 45 is a GM low tom


def test_triplet_grids_round_trip(tmp_path):
    grid = Grid(steps_per_beat=3, bars=1)
    pattern = random_pattern(11, grid)
    path = save(pattern, tmp_path / "a.mid", grid=grid)
    assert mido.MidiFile(path).ticks_per_beat == 720
    assert_same_hits(pattern, load_pattern(path, KIT, grid))


def test_an_empty_pattern_round_trips(tmp_path):
    empty = Pattern.empty(KIT.size, 32)
    assert load_pattern(save(empty, tmp_path / "a.mid"), KIT, GRID) == empty


def test_saving_replaces_the_file_atomically(tmp_path):
    path = save(random_pattern(1), tmp_path / "a.mid")
    save(random_pattern(2), path)
    again = save(random_pattern(2), tmp_path / "b.mid")
    assert load_pattern(path, KIT, GRID) == load_pattern(again, KIT, GRID)
    with pytest.raises(RvaedError, match="cannot write"):
        save(random_pattern(3), tmp_path / "no-such-folder" / "c.mid")
    (tmp_path / "d.mid").mkdir()
    with pytest.raises(RvaedError, match="cannot write"):
        save(random_pattern(3), tmp_path / "d.mid")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "b.mid", "d.mid"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(RvaedError, match="9 x 16"):
        save(random_pattern(1), tmp_path / "a.mid", grid=Grid(bars=1))
    with pytest.raises(RvaedError, match="bpm"):
        save(random_pattern(1), tmp_path / "a.mid", bpm=5000)
    assert not (tmp_path / "a.mid").exists()


def test_the_first_window_of_a_longer_file_is_read(tmp_path):
    path = beat_file(tmp_path / "a.mid", groove(4))
    first = load_dataset([path], IngestOptions(KIT)).windows[0]
    assert np.array_equal(load_pattern(path, KIT, GRID).to_array(), first)


def test_a_real_groove_reads_as_its_first_window():
    path = GROOVE / "drummer7/session1/17_hiphop_100_beat_4-4.mid"
    kit = load_kit("gmd")
    windows = load_dataset([path], IngestOptions(kit, min_onsets=0)).windows
    assert np.array_equal(load_pattern(path, kit, GRID, channel=10).to_array(), windows[0])


def test_a_file_in_another_meter_is_refused(tmp_path):
    path = write(tmp_path / "waltz.mid", smf([track([meter(0, 3, 4)])]))
    with pytest.raises(RvaedError, match="bar 1 is in 3/4: expected 4/4"):
        load_pattern(path, KIT, GRID)


def test_the_channel_filter(tmp_path):
    path = beat_file(tmp_path / "a.mid", groove(2), channel=2)
    assert load_pattern(path, KIT, GRID, channel=10) == Pattern.empty(KIT.size, 32)
    assert len(load_pattern(path, KIT, GRID, channel=2).hits()) == 24


KITS = {name: load_kit(name) for name in shipped_kits()}


@pytest.fixture(scope="module")
def decoded(model_dir) -> list[Pattern]:
    """Patterns the starter model decodes at 60 points spread over the pad."""
    decoder = Decoder(model_dir)
    rng = np.random.default_rng(5)
    return [decoder.decode_xy(x, y) for x, y in rng.random((60, 2))]


@pytest.mark.parametrize("writer", sorted(KITS))
def test_every_kit_reads_back_what_any_kit_wrote_as_one_window(tmp_path, decoded, writer):
    """The round trip of captures and generated files: written with one kit, read by training
    with any kit of the same voices, each file is one window of the same hits."""
    paths = [save_with(pattern, tmp_path / f"{i:02}.mid", KITS[writer], threshold=0.3 + i / 150)
             for i, pattern in enumerate(decoded)]
    for reader in KITS.values():
        data = load_dataset(paths, IngestOptions(reader, min_onsets=0, workers=1))
        assert [f.windows for f in data.report.files] == [1] * len(paths)
        assert not data.report.unmapped
        for i, (pattern, window) in enumerate(zip(decoded, data.windows, strict=True)):
            assert_same_hits(pattern, Pattern.from_array(window), 0.3 + i / 150)


def save_with(pattern: Pattern, path: Path, kit, threshold: float) -> Path:
    save_pattern(pattern, path, kit, GRID, threshold=threshold)
    return path
