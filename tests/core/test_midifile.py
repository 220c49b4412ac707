"""Reading MIDI files: note-ons in beats, bar lines, and a clear reason for every bad file."""

import os

import numpy as np
import pytest
from midigen import beat_file, control, hits, meter, note_off, note_on, smf, tempo, track, write

from rvaed.core.midifile import MidiFileError, read_midi


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
    assert [b.fits(4) for b in bars] == [True, True, False, False, False, False, False]
    assert [b.fits(3) for b in bars] == [False, False, True, True, False, False, False]


def test_a_time_signature_change_inside_a_bar_cuts_it_short(tmp_path):
    events = [meter(0, 4, 4), meter(480 * 6, 4, 4), *hits([(12.0, 36, 1)])]
    song = read_midi(write(tmp_path / "a.mid", smf([track(events)])))
    bars = song.bars(until=12.0)
    assert [(b.start, b.beats) for b in bars] == [(0.0, 4.0), (4.0, 2.0), (6.0, 4.0),
                                                  (10.0, 4.0)]
    assert [b.fits(4) for b in bars] == [True, False, True, True]


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
    (smf([track([(0, bytes((0x99, 200, 100)))])]), "corrupt"),  # data byte above 127
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
