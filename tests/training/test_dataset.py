"""MIDI files -> training windows: every rule of ingestion, on generated files and on a
subset of the real Groove MIDI Dataset."""

import json
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from midigen import (
    beat_file,
    control,
    groove,
    hits,
    meta,
    meter,
    note_off,
    note_on,
    smf,
    tempo,
    track,
    write,
)

from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.midifile import PARALLEL_FROM
from rvaed.core.pattern import Grid
from rvaed.core.windows import quantize
from rvaed.training.dataset import ingest, load_dataset
from rvaed.training.options import IngestOptions

GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"
KIT = load_kit("rhythmvae")
KICK, SNARE, HAT, LOW_TOM = 0, 1, 2, 4
ONSETS, VELOCITIES, OFFSETS = 0, 1, 2


def options(**kwargs) -> IngestOptions:
    return IngestOptions(kit=kwargs.pop("kit", KIT), **kwargs)


@pytest.mark.parametrize(("beat", "step", "offset"), [
    (0.0, 0, 0.0),
    (0.25, 1, 0.0),
    (0.3125, 1, 0.5),      # a quarter step late
    (0.1, 0, 0.8),         # 0.4 of a step late
    (0.125, 1, -1.0),      # exactly half way: the later step, a 32nd early
    (-0.05, 0, -0.4),      # just before the window: step 0, early
    (-0.125, 0, -1.0),
    (7.95, 32, -0.4),      # just before the next window's bar line: not in this window
])
def test_quantize_examples(beat, step, offset):
    steps, offsets = quantize(np.array([beat]), 4)
    assert steps.tolist() == [step]
    assert offsets[0] == pytest.approx(offset, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.floats(-0.5, 64.0), st.sampled_from([2, 3, 4, 6, 8]))
def test_quantize_is_the_nearest_step_and_an_offset_in_range(x, steps_per_beat):
    steps, offsets = quantize(np.array([x / steps_per_beat]), steps_per_beat)
    step, offset = int(steps[0]), float(offsets[0])
    assert -1.0 <= offset < 1.0
    assert abs(step - x) <= 0.5
    assert step + offset / 2 == pytest.approx(x, abs=1e-5)


def test_a_groove_becomes_windows_cell_by_cell(tmp_path):
    path = beat_file(tmp_path / "rock.mid", groove(3))
    data = load_dataset([path], options())
    assert data.windows.shape == (2, 3, 9, 32)
    assert data.windows.dtype == np.float32
    assert data.sources == [(str(path), 1), (str(path), 2)]
    window = data.windows[0]
    assert np.flatnonzero(window[ONSETS, KICK]).tolist() == [0, 8, 16, 24]
    assert np.flatnonzero(window[ONSETS, SNARE]).tolist() == [4, 12, 20, 28]
    assert np.flatnonzero(window[ONSETS, HAT]).tolist() == list(range(0, 32, 2))
    assert window[VELOCITIES, KICK, [0, 8]] == pytest.approx([110 / 127, 100 / 127])
    assert window[VELOCITIES, SNARE, 12] == pytest.approx(118 / 127)
    assert not window[OFFSETS].any()
    assert not window[:, [3, 4, 5, 6, 7, 8]].any()
    assert data.report.hits_per_voice["kick"] == 6
    assert data.report.hits_per_voice["closed-hat"] == 24


def test_microtiming_is_kept_and_an_early_hit_starts_the_next_bar(tmp_path):
    early = 4.0 - 0.05  # a low tom a little before bar 2's line
    late = 1.0 + 0.03125  # a snare an eighth of a step behind beat 2
    notes = [n for n in groove(3) if n[:2] != (1.0, 38)] + [(early, 45, 90), (late, 38, 120)]
    data = load_dataset([beat_file(tmp_path / "a.mid", notes)], options())
    first, second = data.windows
    assert first[OFFSETS, LOW_TOM, 16] == pytest.approx(-0.4, abs=1e-5)
    assert not first[ONSETS, LOW_TOM, 15]
    assert second[ONSETS, LOW_TOM, 0] == 1.0
    assert second[OFFSETS, LOW_TOM, 0] == pytest.approx(-0.4, abs=1e-5)
    assert first[OFFSETS, SNARE, 4] == pytest.approx(0.25, abs=1e-5)


def test_several_hits_in_one_cell_keep_the_loudest_and_its_offset(tmp_path):
    cell = [(0.0, 36, 50), (0.025, 35, 90), (0.05, 36, 90), (0.0125, 36, 30)]
    notes = [n for n in groove(2) if n[:2] != (0.0, 36)] + cell
    window = load_dataset([beat_file(tmp_path / "a.mid", notes)], options()).windows[0]
    assert window[VELOCITIES, KICK, 0] == pytest.approx(90 / 127)
    assert window[OFFSETS, KICK, 0] == pytest.approx(0.2, abs=1e-5)  # the earlier of the 90s
    assert window[ONSETS, KICK].sum() == 4


def test_windows_do_not_depend_on_tempo_or_ppq(tmp_path):
    notes = [*groove(4), (5.0 + 1 / 96, 45, 70), (10.0 - 2 / 96, 47, 80)]
    steady = beat_file(tmp_path / "steady.mid", notes, ppq=96)
    ramp = [tempo(960 * beat, 70 + 11 * beat) for beat in range(16)]
    ramped = beat_file(tmp_path / "ramped.mid", notes, ppq=960, extra=ramp)
    windows = load_dataset([steady, ramped], options()).windows
    assert len(windows) == 6
    assert np.array_equal(windows[:3], windows[3:])


def test_windows_start_on_bar_lines_every_hop_bars(tmp_path):
    path = beat_file(tmp_path / "a.mid", groove(6))
    assert [bar for _, bar in load_dataset([path], options()).sources] == [1, 2, 3, 4, 5]
    assert [bar for _, bar in load_dataset([path], options(hop_bars=2)).sources] == [1, 3, 5]


def _mixed_meters(path: Path) -> Path:
    """2 bars 4/4, 2 bars 3/4, 3 bars 4/4, a kick on every beat and a snare on each bar line."""
    lines = [0, 4, 8, 11, 14, 18, 22]
    notes = [(float(b), 36, 100) for b in range(26)] + [(float(b), 38, 90) for b in lines]
    events = [meter(0, 4, 4), meter(480 * 8, 3, 4), meter(480 * 14, 4, 4), *hits(notes)]
    return write(path, smf([track(events)]))


def test_bars_in_other_meters_are_skipped_and_counted(tmp_path):
    data = load_dataset([_mixed_meters(tmp_path / "a.mid")], options())
    assert [bar for _, bar in data.sources] == [1, 5, 6]
    assert data.report.skipped_bars == {"3/4": 2}
    after = data.windows[1]  # starts on the bar line at beat 14, after the 3/4 bars
    assert np.flatnonzero(after[ONSETS, SNARE]).tolist() == [0, 16]
    assert np.flatnonzero(after[ONSETS, KICK]).tolist() == list(range(0, 32, 4))


def test_the_grid_sets_which_meter_is_read(tmp_path):
    data = load_dataset([_mixed_meters(tmp_path / "a.mid")], options(grid=Grid(numerator=3)))
    assert [bar for _, bar in data.sources] == [3]
    assert data.windows.shape == (1, 3, 9, 24)
    assert data.report.skipped_bars == {"4/4": 5}


def test_a_controller_tail_makes_no_windows(tmp_path):
    tail = [control(480 * 12 + 10 * i, 4, i % 128) for i in range(20_000)]
    path = beat_file(tmp_path / "a.mid", groove(3), extra=tail)
    data = load_dataset([path], options(min_onsets=0))
    assert [bar for _, bar in data.sources] == [1, 2]
    assert data.report.files[0].bars == 3


def test_sparse_windows_are_dropped_and_counted(tmp_path):
    notes = [*groove(2), (8.0, 36, 100), (12.0, 36, 100)]
    path = beat_file(tmp_path / "a.mid", notes)
    data = load_dataset([path], options())
    assert [bar for _, bar in data.sources] == [1, 2]
    assert data.report.dropped_windows == 1
    assert len(load_dataset([path], options(min_onsets=2)).windows) == 3


def test_unknown_notes_are_counted_per_note(tmp_path):
    notes = [*groove(2), (0.5, 60, 90), (1.5, 60, 90), (2.5, 60, 90), (0.0, 49, 120),
             (4.0, 49, 120)]
    data = load_dataset([beat_file(tmp_path / "a.mid", notes)], options())
    assert data.report.unmapped == {60: 3, 49: 2}
    assert sum(data.report.hits_per_voice.values()) == 24
    assert not load_dataset([beat_file(tmp_path / "a.mid", notes)],
                            options(kit=load_kit("rhythmvae-greedy"))).report.unmapped[49]


def test_a_channel_given_is_the_only_one_read(tmp_path):
    path = beat_file(tmp_path / "a.mid", groove(3), channel=1)
    with pytest.raises(RvaedError) as caught:
        load_dataset([path], options(channel=10))
    assert str(caught.value) == "no notes on channel 10; 36 notes on channel 1: try --channel 1"
    assert len(load_dataset([path], options(channel=1)).windows) == 2
    assert len(load_dataset([path], options(channel=None)).windows) == 2


def _notes(events: list[tuple[float, int, int]], channel: int, length: float,
           name: str = "") -> bytes:
    """A track of notes ``length`` beats long on ``channel`` (480 ticks a beat)."""
    timed = []
    for beat, note, velocity in events:
        timed += [note_on(round(beat * 480), note, velocity, channel),
                  note_off(round((beat + length) * 480), note, channel)]
    return track(([meta(0, 0x03, name.encode())] if name else []) + timed)


def test_auto_finds_the_drums_of_each_file_and_says_how(tmp_path):
    drums = groove(3)
    bass = [(beat / 2, 40 + (beat % 3), 90) for beat in range(24)]  # E, F, F#: mapped notes
    folder = tmp_path / "mixed"
    write(folder / "gm.mid", smf([_notes(drums, 10, 0.1), _notes(bass, 1, 0.45)]))
    write(folder / "named.mid", smf([_notes(drums, 3, 1.0, name="Drum Kit")]))
    write(folder / "short.mid", smf([_notes(drums, 2, 0.1), _notes(bass, 1, 0.45)]))
    write(folder / "bass.mid", smf([_notes(bass, 1, 0.45)]))
    data = ingest([folder], options())
    found = {Path(f.path).name: (f.channels, f.windows) for f in data.report.files}
    assert found == {
        "gm.mid": ("channel 10 (General MIDI drums)", 2),
        "named.mid": ("channel 3 (track 'Drum Kit')", 2),
        "short.mid": ("channel 2 (drum-like notes)", 2),
        "bass.mid": ("no drum channel (no channel 10, no drum track, no drum-like notes)", 0),
    }
    hits_per_voice = data.report.hits_per_voice  # no bass note (40 snare, 42 hat) was read
    assert (hits_per_voice["kick"], hits_per_voice["snare"], hits_per_voice["closed-hat"]) == \
        (3 * 6, 3 * 6, 3 * 24)


def test_other_channels_are_left_out_and_counted(tmp_path):
    piano = hits([(0.0, 60, 80), (1.0, 36, 80)], channel=1)
    data = load_dataset([beat_file(tmp_path / "a.mid", groove(2), extra=piano)], options())
    assert data.report.other_channels == {1: 2}
    assert data.report.hits_per_voice["kick"] == 4


@pytest.mark.parametrize(("notes", "kwargs", "message"), [
    ([(0.0, 60, 100)] * 1 + [(b, 61, 100) for b in range(8)], {},
     "9 notes on the drum channels but none maps to a voice of kit rhythmvae "
     "(note 61 x 8, note 60 x 1): try another --kit"),
    ([(0.0, 36, 100), (4.0, 36, 100)], {}, "all 1 2-bar 4/4 windows have fewer than 4 onsets"),
    ([(0.0, 36, 100), (1.0, 38, 100)], {}, "the music in the 1 file(s) read is shorter"),
    (groove(3), {"grid": Grid(numerator=5)}, "bars in other meters were skipped (3 in 4/4)"),
])
def test_nothing_usable_says_what_was_found(tmp_path, notes, kwargs, message):
    with pytest.raises(RvaedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset([beat_file(tmp_path / "a.mid", notes)], options(**kwargs))


def test_no_files_and_only_bad_files_are_explained(tmp_path):
    (tmp_path / "notes.txt").write_text("no MIDI here")
    with pytest.raises(RvaedError, match="no MIDI files found"):
        load_dataset([tmp_path], options())
    write(tmp_path / "bad.mid", b"RIFF")
    with pytest.raises(RvaedError, match=r"no readable MIDI file: 1 refused \(first: .*bad.mid: "
                                         r"not a MIDI file"):
        load_dataset([tmp_path], options())


def test_folders_are_searched_recursively_for_mid_and_midi_in_any_case(tmp_path):
    names = ["a.mid", "deep/er/b.MID", "c.Midi", "ünïcødé/グルーヴ.midi"]
    for name in names:
        beat_file(tmp_path / name, groove(2))
    beat_file(tmp_path / "skip.kar", groove(2))
    write(tmp_path / "readme.txt", b"text")
    named = beat_file(tmp_path.parent / "named.smf", groove(2))
    data = load_dataset([tmp_path, named], options())
    found = sorted(str(Path(f.path).relative_to(tmp_path.parent)) for f in data.report.files)
    assert found == sorted([f"{tmp_path.name}/{n}" for n in names] + ["named.smf"])
    assert len(data.windows) == 5
    assert not data.report.refused


def test_bad_files_are_one_line_each_and_the_good_ones_still_load(tmp_path):
    good = beat_file(tmp_path / "good.mid", groove(3))
    write(tmp_path / "empty.mid", b"")
    write(tmp_path / "text.mid", b"just some text\n")
    write(tmp_path / "cut.mid", good.read_bytes()[:-30])
    write(tmp_path / "type2.mid", smf([track([]), track([])], kind=2))
    with (tmp_path / "huge.mid").open("wb") as file:
        file.truncate(64 * 1024 * 1024)
    (tmp_path / "gone.mid").symlink_to(tmp_path / "nowhere")
    missing = tmp_path / "not-there"
    data = load_dataset([tmp_path, missing], options())
    assert len(data.windows) == 2
    reasons = {Path(path).name: reason for path, reason in data.report.refused}
    assert sorted(reasons) == ["cut.mid", "empty.mid", "gone.mid", "huge.mid", "not-there",
                               "text.mid", "type2.mid"]
    for name, expected in [("empty.mid", "empty"), ("text.mid", "not a MIDI file"),
                           ("cut.mid", "truncated"), ("type2.mid", "type 2"),
                           ("huge.mid", "too large"), ("gone.mid", "unreadable"),
                           ("not-there", "no such file or folder")]:
        assert expected in reasons[name]
        assert "\n" not in reasons[name]


def test_many_files_are_read_by_worker_processes_with_the_same_result(tmp_path):
    count = PARALLEL_FROM + 6
    for i in range(count):
        beat_file(tmp_path / f"{i:03}.mid", groove(2 + i % 3, start_bar=i % 2))
    write(tmp_path / "050-bad.mid", b"MThd")
    here = load_dataset([tmp_path], options(workers=1))
    spread = load_dataset([tmp_path], options(workers=2))
    assert len(here.windows) == sum(1 + i % 3 + i % 2 for i in range(count))  # bars - 1
    assert np.array_equal(here.windows, spread.windows)
    assert here.sources == spread.sources
    assert here.report.to_dict() == spread.report.to_dict()
    assert [Path(p).name for p, _ in spread.report.refused] == ["050-bad.mid"]


def test_options_are_checked():
    for bad in ({"channel": 0}, {"channel": 17}, {"hop_bars": 0}, {"min_onsets": -1},
                {"workers": 0}):
        with pytest.raises(RvaedError, match=next(iter(bad))):
            options(**bad)


def test_an_empty_ingest_returns_its_report(tmp_path):
    data = ingest([tmp_path], options())
    assert data.windows.shape == (0, 3, 9, 32)
    assert data.report.summary() == {"files": 0, "files_refused": 0, "windows": 0,
                                     "hits_per_voice": dict.fromkeys(KIT.names, 0)}


def _independent_count(path: Path, kit) -> tuple[int, list[int]]:
    """Bars up to the last note and note-ons per voice, counted with mido alone."""
    midi = mido.MidiFile(path)
    last, per_voice = 0, [0] * kit.size
    for midi_track in midi.tracks:
        ticks = 0
        for msg in midi_track:
            ticks += msg.time
            if msg.type == "note_on" and msg.velocity and msg.channel == 9:
                last = max(last, ticks)
                if kit.voice_of(msg.note) is not None:
                    per_voice[kit.voice_of(msg.note)] += 1
    bars = int((last / midi.ticks_per_beat + 0.125) // 4) + 1
    return bars, per_voice


def test_the_groove_midi_subset():
    kit = load_kit("gmd")
    data = load_dataset([GROOVE], options(kit=kit))
    report = data.report
    files = {Path(f.path).relative_to(GROOVE).as_posix(): f for f in report.files}
    assert len(files) == 13
    assert not report.refused
    for name in ("drummer1/session2/4_jazz_120_beat_3-4.mid",
                 "drummer6/session1/3_rock_80_beat_6-8.mid"):
        assert files[name].windows == 0
        assert sum(files[name].skipped_bars.values()) == files[name].bars > 0
    totals = np.zeros(kit.size, dtype=int)
    for name, file in files.items():
        bars, per_voice = _independent_count(GROOVE / name, kit)
        assert file.hits == per_voice, name
        totals += per_voice
        if name.endswith("4-4.mid"):
            assert file.bars == bars, name
            assert file.windows + file.dropped_windows == max(bars - 1, 0), name
    assert list(report.hits_per_voice.values()) == totals.tolist()
    tail = files["drummer1/session1/80_dance-breakbeat_170_beat_4-4.mid"]
    assert tail.windows > 10
    onsets, velocities, offsets = data.windows[:, 0], data.windows[:, 1], data.windows[:, 2]
    assert set(np.unique(onsets)) == {0.0, 1.0}
    assert (velocities[onsets == 1] > 0).all() and not velocities[onsets == 0].any()
    assert offsets.min() >= -1.0 and offsets.max() < 1.0
    assert offsets[onsets == 1].std() > 0.05  # real drummers are not quantized
    assert json.loads(json.dumps(report.to_dict()))["summary"] == {
        "files": 13, "files_refused": 0, "windows": len(data.windows),
        "hits_per_voice": report.hits_per_voice,
    }


def test_a_one_bar_loop_is_read_repeated_to_a_window(tmp_path):
    bar = [(0.0, 42, 80), (1.0, 38, 90), (2.0, 36, 100), (3.0, 38, 90), (3.9, 36, 70)]
    events = [meter(0, 4, 4)]
    for beat, note, velocity in bar:
        tick = round(beat * 480)
        events += [note_on(tick, note, velocity), note_off(tick + 24, note)]
    path = write(tmp_path / "loop.mid", smf([track(events, end=480 * 4)]))
    data = load_dataset([path], options())
    assert len(data.windows) == 1
    (report,) = data.report.files
    assert report.notes == ["a 1-bar loop, read repeated to 2 bars"]
    onsets = data.windows[0, ONSETS]
    assert np.flatnonzero(onsets[KICK]).tolist() == [0, 8, 16, 24]  # 3.9: the next bar, early
    assert np.flatnonzero(onsets[SNARE]).tolist() == [4, 12, 20, 28]
    assert data.windows[0, OFFSETS, KICK, [0, 16]] == pytest.approx([-0.8, -0.8], abs=1e-6)


def test_a_repaired_file_is_read_and_the_repair_named(tmp_path):
    data = bytearray(smf([track(hits(groove(2)))]))
    data[10:12] = (3).to_bytes(2, "big")
    report = ingest([write(tmp_path / "a.mid", bytes(data))], options()).report
    assert report.windows == 1
    assert report.files[0].notes == ["repaired: the header announces 3 tracks, the file holds 1"]
