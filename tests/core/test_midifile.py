"""Reading MIDI files: note-ons in beats, bar lines, and a clear reason for every bad file."""

import os

import numpy as np
import pytest
from midigen import (
    beat_file,
    control,
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

from rvaed.core.midifile import MidiFileError, read_midi
from rvaed.core.pattern import Grid


@pytest.mark.parametrize("ppq", [24, 96, 480, 960, 1000])
def test_positions_are_in_beats_at_any_ppq(tmp_path, ppq):
    notes = [(0.0, 36, 100), (0.75, 42, 60), (1.5, 38, 127), (7.25, 46, 1)]
    song = read_midi(beat_file(tmp_path / "a.mid", notes, ppq=ppq))
    assert song.beats.tolist() == [0.0, 0.75, 1.5, 7.25]
    assert song.notes.tolist() == [36, 42, 38, 46]
    assert song.velocities.tolist() == [100, 60, 127, 1]
    assert song.ticks_per_beat == ppq


def test_tempo_changes_do_not_move_notes(tmp_path):
    notes = [(beat / 2, 42, 80) for beat in range(16)]
    ramp = [tempo(480 * beat, 60 + 13 * beat) for beat in range(8)]
    steady = read_midi(beat_file(tmp_path / "steady.mid", notes))
    ramped = read_midi(beat_file(tmp_path / "ramp.mid", notes, extra=ramp))
    assert np.array_equal(steady.beats, ramped.beats)


def test_velocity_zero_note_on_is_a_note_off(tmp_path):
    events = [note_on(0, 36, 100), note_on(120, 36, 0), note_on(480, 38, 90), note_off(600, 38)]
    song = read_midi(write(tmp_path / "a.mid", smf([track(events)])))
    assert song.notes.tolist() == [36, 38]
    assert song.beats.tolist() == [0.0, 1.0]


def test_running_status_is_read(tmp_path):
    events = [note_on(0, 36, 100), note_on(0, 42, 70), note_on(60, 36, 0), note_on(60, 42, 0),
              note_on(240, 42, 71), control(250, 4, 10), control(260, 4, 20)]
    data = smf([track(events, running_status=True)])
    plain = smf([track(events)])
    assert len(data) == len(plain) - 5  # five repeated status bytes were left out
    song = read_midi(write(tmp_path / "a.mid", data))
    assert song.notes.tolist() == [36, 42, 42]
    assert song.velocities.tolist() == [100, 70, 71]
    assert song.beats.tolist() == [0.0, 0.0, 0.5]


def test_channels_count_from_one(tmp_path):
    events = [note_on(0, 36, 100, channel=10), note_on(10, 60, 100, channel=1),
              note_on(20, 61, 100, channel=16)]
    song = read_midi(write(tmp_path / "a.mid", smf([track(events)])))
    assert song.channels.tolist() == [10, 1, 16]


def test_type_1_tracks_are_merged_in_time_order(tmp_path):
    conductor = track([meter(0, 4, 4), tempo(0, 100), meter(1920, 3, 4)])
    kick = track(hits([(0.0, 36, 100), (2.0, 36, 100)]))
    hats = track(hits([(0.5, 42, 60), (1.5, 42, 61), (4.5, 42, 62)]))
    song = read_midi(write(tmp_path / "a.mid", smf([conductor, kick, hats])))
    assert song.beats.tolist() == [0.0, 0.5, 1.5, 2.0, 4.5]
    assert song.notes.tolist() == [36, 42, 42, 36, 42]
    assert [(m.beat, str(m)) for m in song.meters] == [(0.0, "4/4"), (4.0, "3/4")]


def test_bars_follow_time_signatures(tmp_path):
    events = [meter(0, 4, 4), meter(480 * 8, 3, 4), meter(480 * 14, 6, 8), *hits([(20.0, 36, 1)])]
    song = read_midi(write(tmp_path / "a.mid", smf([track(events)])))
    bars = song.bars(until=20.0)
    assert [(b.start, str(b.meter)) for b in bars] == [
        (0.0, "4/4"), (4.0, "4/4"), (8.0, "3/4"), (11.0, "3/4"), (14.0, "6/8"), (17.0, "6/8"),
        (20.0, "6/8"),
    ]
    assert [b.fits(Grid()) for b in bars] == [True, True, False, False, False, False, False]
    three = Grid(numerator=3)
    assert [b.fits(three) for b in bars] == [False, False, True, True, False, False, False]


def test_a_time_signature_change_inside_a_bar_cuts_it_short(tmp_path):
    events = [meter(0, 4, 4), meter(480 * 6, 3, 4), *hits([(12.0, 36, 1)])]
    song = read_midi(write(tmp_path / "a.mid", smf([track(events)])))
    bars = song.bars(until=12.0)
    assert [(b.start, b.beats) for b in bars] == [(0.0, 4.0), (4.0, 2.0), (6.0, 3.0),
                                                  (9.0, 3.0), (12.0, 3.0)]
    assert [b.fits(Grid()) for b in bars] == [True, False, False, False, False]


def test_a_meter_restated_inside_a_bar_draws_no_bar_line(tmp_path):
    events = [meter(0, 4, 4), meter(480 * 6, 4, 4), meter(480 * 6, 4, 4), *hits([(12.0, 36, 1)])]
    song = read_midi(write(tmp_path / "a.mid", smf([track(events)])))
    assert [(b.start, b.beats) for b in song.bars(until=12.0)] == [
        (0.0, 4.0), (4.0, 4.0), (8.0, 4.0), (12.0, 4.0)]


def test_no_time_signature_means_four_four(tmp_path):
    song = read_midi(write(tmp_path / "a.mid", smf([track(hits([(9.0, 36, 100)]))])))
    assert [(b.start, str(b.meter)) for b in song.bars(until=9.0)] == [
        (0.0, "4/4"), (4.0, "4/4"), (8.0, "4/4")]


def test_length_includes_a_controller_tail(tmp_path):
    tail = [control(480 * 4 + 10 * i, 4, i % 128) for i in range(500)]
    song = read_midi(beat_file(tmp_path / "a.mid", [(0.0, 36, 100)], extra=tail))
    assert song.beats.tolist() == [0.0]
    assert song.length == pytest.approx(4 + 4990 / 480)


def test_non_ascii_file_names(tmp_path):
    path = beat_file(tmp_path / "grooves" / "Café ブレイク.MID", [(0.0, 36, 100)])
    assert read_midi(path).notes.tolist() == [36]


def _refusal(path, **kwargs) -> str:
    with pytest.raises(MidiFileError) as caught:
        read_midi(path, **kwargs)
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    assert "\n" not in str(caught.value)
    return caught.value.reason


def test_type_2_is_refused(tmp_path):
    data = smf([track(hits([(0.0, 36, 100)])), track(hits([(0.0, 38, 100)]))], kind=2)
    assert "type 2" in _refusal(write(tmp_path / "a.mid", data))


def test_smpte_division_is_refused(tmp_path):
    data = smf([track(hits([(0.0, 36, 100)]))], division=0xE728)  # -25 fps, 40 ticks/frame
    assert "SMPTE" in _refusal(write(tmp_path / "a.mid", data))


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "empty file"),
    (b"hello, I am a text file\n" * 4, "not a MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00", "truncated"),
    (smf([track(hits([(float(i), 36, 100) for i in range(8)]))])[:-20], "truncated"),
    (smf([b"MTrx" + track([])[4:]]), "corrupt"),
    (smf([track([meter(0, 0, 4)])]), "time signature 0/4"),
])
def test_bad_bytes_get_a_reason(tmp_path, data, expected):
    assert expected in _refusal(write(tmp_path / "bad.mid", data))


def test_huge_files_are_refused_before_reading(tmp_path):
    path = tmp_path / "huge.mid"
    with path.open("wb") as file:
        file.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    assert "too large: 209.7 MB" in _refusal(path)
    small = beat_file(tmp_path / "small.mid", [(0.0, 36, 100)])
    assert "too large" in _refusal(small, max_bytes=10)


def test_unreadable_files_are_refused(tmp_path):
    link = tmp_path / "gone.mid"
    link.symlink_to(tmp_path / "nowhere.mid")
    assert _refusal(link) == "unreadable: No such file or directory"
    folder = tmp_path / "folder.mid"
    folder.mkdir()
    assert _refusal(folder) == "not a regular file (a folder)"
    fifo = tmp_path / "fifo.mid"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever (the trainer hung so)
    assert _refusal(fifo) == "not a regular file (a FIFO)"
    assert _refusal(tmp_path.parent / os.devnull) == "not a regular file (a device)"
    if os.geteuid() != 0:  # root reads anything, so this case exists only for users
        locked = beat_file(tmp_path / "locked.mid", [(0.0, 36, 100)])
        locked.chmod(0)
        assert _refusal(locked) == "unreadable: Permission denied"


def _repaired(path) -> tuple:
    song = read_midi(path)
    assert song.repairs, "expected the file to need a repair"
    return song


def test_a_data_byte_above_127_is_clipped_not_refused(tmp_path):
    events = [control(0, 4, 10), (10, bytes((0xB9, 4, 200))), *hits([(1.0, 36, 100)])]
    song = _repaired(write(tmp_path / "a.mid", smf([track(events)])))
    assert song.notes.tolist() == [36]
    assert song.repairs == ("data bytes above 127 were clipped to 127",)


def test_an_impossible_key_signature_is_ignored(tmp_path):
    events = [meta(0, 0x59, bytes((9, 3))), *hits([(0.0, 36, 100), (1.0, 38, 90)])]
    song = _repaired(write(tmp_path / "a.mid", smf([track(events)])))
    assert song.notes.tolist() == [36, 38]
    assert song.repairs == ("an invalid key signature was ignored",)


def test_a_header_announcing_more_tracks_reads_the_tracks_there(tmp_path):
    data = bytearray(smf([track(hits([(0.0, 36, 100)])), track(hits([(1.0, 42, 80)]))]))
    data[10:12] = (5).to_bytes(2, "big")
    song = _repaired(write(tmp_path / "a.mid", bytes(data)))
    assert song.notes.tolist() == [36, 42]
    assert "announces 5 tracks, the file holds 2" in song.repairs[0]


def test_a_length_field_past_the_end_is_read_to_the_end(tmp_path):
    data = bytearray(smf([track(hits([(0.0, 36, 100), (1.0, 38, 90)]))]))
    data[18:22] = (len(data) + 100).to_bytes(4, "big")
    song = _repaired(write(tmp_path / "a.mid", bytes(data)))
    assert song.notes.tolist() == [36, 38]
    assert "read to the end" in song.repairs[0]


def test_a_file_cut_inside_a_track_is_still_truncated(tmp_path):
    data = smf([track(hits([(float(i), 36, 100) for i in range(8)]))])
    reason = _refusal(write(tmp_path / "a.mid", data[:-20]))
    assert reason.startswith("truncated: the file ends inside track 1 (")


def test_durations_tracks_and_texts_are_kept(tmp_path):
    named = track([meta(0, 0x03, b"Drums"), meta(0, 0x01, b"hello"), note_on(0, 36, 100),
                   note_off(240, 36)])
    other = track([note_on(480, 38, 90), note_on(960, 38, 0)])
    song = read_midi(write(tmp_path / "a.mid", smf([named, other])))
    assert song.durations.tolist() == [0.5, 1.0]
    assert song.tracks.tolist() == [0, 1]
    assert song.track_names == ("Drums", "")
    assert song.texts == ("hello",)


def test_folders_are_searched_into_symlinked_folders_and_each_file_once(tmp_path):
    from rvaed.core.midifile import midi_files

    beat_file(tmp_path / "library" / "a.mid", [(0.0, 36, 100)])
    beat_file(tmp_path / "elsewhere" / "b.mid", [(0.0, 36, 100)])
    (tmp_path / "library" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "library" / "loop").symlink_to(tmp_path / "library")  # a cycle
    (tmp_path / "library" / "again.mid").symlink_to(tmp_path / "library" / "a.mid")
    refused: list = []
    found = midi_files([tmp_path / "library", tmp_path / "elsewhere" / "b.mid"], refused)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "library/a.mid", "library/linked/b.mid"]
    assert refused == []


def test_a_folder_nested_deeper_than_the_limit_is_refused_not_a_crash(tmp_path):
    from rvaed.core.midifile import midi_files
    from rvaed.core.reading import MAX_DEPTH

    deep = tmp_path
    for _ in range(MAX_DEPTH + 2):
        deep = deep / "d"
    beat_file(deep / "lost.mid", [(0.0, 36, 100)])
    beat_file(tmp_path / "d" / "near.mid", [(0.0, 36, 100)])
    refused: list = []
    assert [p.name for p in midi_files([tmp_path], refused)] == ["near.mid"]
    assert [why for _, why in refused] == [f"folders nested deeper than {MAX_DEPTH} are not read"]
