"""Kits: the shipped ones load and are right; a broken kit file names file, line and field."""

import pytest

from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit, load_kit, shipped_kits


def test_every_shipped_kit_loads_with_nine_voices():
    assert set(shipped_kits()) >= {"rhythmvae", "rhythmvae-greedy", "gmd"}
    for name in shipped_kits():
        kit = load_kit(name)
        assert kit.size == 9
        assert kit.outputs == (36, 38, 42, 46, 41, 45, 48, 39, 37)


def test_strict_map_is_the_originals_plus_side_stick_on_rim():
    kit = load_kit("rhythmvae")
    expected = {35: "kick", 36: "kick", 38: "snare", 40: "snare", 42: "closed-hat",
                44: "open-hat", 46: "open-hat", 41: "low-tom", 45: "low-tom", 47: "mid-tom",
                48: "mid-tom", 43: "high-tom", 50: "high-tom", 39: "clap", 37: "rim",
                51: "rim", 52: "rim", 53: "rim", 59: "rim"}
    for note in range(128):
        voice = kit.voice_of(note)
        assert (kit.names[voice] if voice is not None else None) == expected.get(note), note


def test_gmd_kit_reads_td11_edge_and_rim_pitches():
    kit = load_kit("gmd")
    assert kit.names[kit.voice_of(22)] == "closed-hat"
    assert kit.names[kit.voice_of(26)] == "open-hat"
    assert kit.names[kit.voice_of(58)] == "low-tom"
    assert kit.voice_of(49) is None  # crash: counted as unmapped, not hidden


def test_kit_round_trips_through_plain_data():
    kit = load_kit("gmd")
    assert Kit.from_dict(kit.to_dict()) == kit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: k\nvoices:\n  - {name: kick, inputs: [36], output: 200}\n",
         ":3: voices[0].output: expected a MIDI note 0-127"),
        ("name: k\nvoices:\n  - {name: a, inputs: [36], output: 36}\n"
         "  - {name: b, inputs: [36], output: 38}\n", "note 36 maps to both a and b"),
        ("name: k\nvoices: [\n", "invalid YAML"),
        ("name: k\nvoices:\n  - {name: a, inputs: [x], output: 36}\n",
         ":3: voices[0].inputs: expected a list of MIDI notes"),
        ("name: k\nvoices:\n  - {name: a, output: 36, colour: red}\n",
         ":3: voices[0].colour: unknown field"),
    ],
)
def test_broken_kit_file_gets_one_line_error_with_file_line_and_field(tmp_path, text, expected):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(RvaedError) as error:
        load_kit(path)
    message = str(error.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message


def test_unknown_kit_name_lists_the_shipped_ones():
    with pytest.raises(RvaedError, match=r"expected a path or one of .*gmd"):
        load_kit("no-such-kit")
