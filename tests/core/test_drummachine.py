"""Drum-machine maps: the shipped GM map, the YAML forms, and errors that name file:line:field."""

import pytest

from rvaed.core.drummachine import Destination, load_drum_machine, shipped_drum_machines
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit

KIT = load_kit("rhythmvae")
VOICES = "".join(f"  {name}: {36 + i}\n" for i, name in enumerate(KIT.names))


def write(tmp_path, text: str):
    path = tmp_path / "machine.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kit", ["rhythmvae", "rhythmvae-greedy", "gmd"])
def test_gm_plays_every_voice_of_the_shipped_kits_on_channel_10(kit):
    machine = load_drum_machine("gm", load_kit(kit))
    assert "gm" in shipped_drum_machines()
    assert machine.channels == {10}
    assert machine.destinations[0] == Destination(36, 10)  # kick: Bass Drum 1
    assert machine.destinations[1] == Destination(38, 10)  # snare: Acoustic Snare
    assert machine.destinations[0].status_channel == 9


def test_note_shorthand_mapping_and_null(tmp_path):
    text = ("name: box\nsource: manual p. 12\nchannel: 3\nvoices:\n" + VOICES)
    text = text.replace("  snare: 37", "  snare: {note: 40, channel: 11}")
    text = text.replace("  clap: 43", "  clap: null  # no clap on this box")
    machine = load_drum_machine(write(tmp_path, text), KIT)
    assert machine.name == "box" and machine.source == "manual p. 12"
    assert machine.destinations[KIT.names.index("kick")] == Destination(36, 3)
    assert machine.destinations[KIT.names.index("snare")] == Destination(40, 11)
    assert machine.destinations[KIT.names.index("clap")] is None
    assert machine.channels == {3, 11}


@pytest.mark.parametrize(("change", "line", "expected"), [
    (("  kick: 36", "  kick: 128"), 5, "voices.kick: expected a MIDI note 0-127"),
    (("  kick: 36", "  kik: 36"), 5, "voices.kik: not a voice of kit rhythmvae"),
    (("  rim: 44\n", ""), 4, "voices: missing voice 'rim' of kit rhythmvae (write `rim: null`"),
    (("channel: 10", "channel: 0"), 3, "channel: expected a MIDI channel 1-16"),
    (("  snare: 37", "  snare: {note: 37, channel: 17}"), 6, "voices.snare.channel: expected"),
    (("  snare: 37", "  snare: {note: 37, chanel: 2}"), 6, "voices.snare.chanel: unknown field"),
    (("  snare: 37", "  snare: true"), 6, "voices.snare: expected a MIDI note"),
    (("name: box", "nmae: box"), 1, "nmae: unknown field"),
])
def test_errors_name_file_line_and_field(tmp_path, change, line, expected):
    text = ("name: box\nsource: x\nchannel: 10\nvoices:\n" + VOICES).replace(*change)
    path = write(tmp_path, text)
    with pytest.raises(RvaedError) as error:
        load_drum_machine(path, KIT)
    assert str(error.value).startswith(f"{path}:{line}: {expected}")


def test_unknown_name_and_non_mapping(tmp_path):
    with pytest.raises(RvaedError, match=r"unknown drum machine 'tr-9000'.*gm"):
        load_drum_machine("tr-9000", KIT)
    with pytest.raises(RvaedError, match="expected a mapping"):
        load_drum_machine(write(tmp_path, "- 1\n- 2\n"), KIT)
