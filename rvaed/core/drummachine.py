"""Drum machines: which MIDI note and channel each kit voice plays on a particular machine.

A drum machine is a YAML file in config/drummachines/ (or anywhere, by path):

    name: tr-8s
    source: "where the factory map comes from (manual page/URL)"
    channel: 10            # default MIDI channel, 1-16 as musicians count
    voices:                # keys are kit voice names
      kick: 36             # note on the default channel
      snare: {note: 38, channel: 10}
      clap: null           # no such sound on this machine: not played

Every voice of the kit must be named, so a typo or a forgotten sound is an error at load time
rather than silence on stage.
"""

from dataclasses import dataclass, field
from pathlib import Path

from rvaed.core import yamlfile
from rvaed.core.kit import Kit
from rvaed.core.resources import resolve, shipped

DEFAULT_DRUM_MACHINE = "gm"


@dataclass(frozen=True)
class Destination:
    """Where one voice goes: a note on a channel (1-16, as on the machine's display)."""

    note: int
    channel: int
    # The note-on status byte and the whole note-off, made once: the sequencer reads them for
    # every hit on every control change.
    note_on_status: int = field(init=False, repr=False, compare=False)
    note_off: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "note_on_status", 0x90 | self.status_channel)
        object.__setattr__(self, "note_off", (0x80 | self.status_channel, self.note, 0))

    @property
    def status_channel(self) -> int:
        """The channel as it sits in a MIDI status byte (0-15)."""
        return self.channel - 1


@dataclass(frozen=True)
class DrumMachine:
    """A kit's voices mapped onto one machine; ``destinations[i]`` is None for a silent voice."""

    name: str
    source: str
    kit: Kit
    destinations: tuple[Destination | None, ...]

    def __post_init__(self) -> None:
        if len(self.destinations) != self.kit.size:
            raise ValueError(f"drum machine {self.name}: {len(self.destinations)} destinations "
                             f"for a kit of {self.kit.size} voices")

    @property
    def channels(self) -> frozenset[int]:
        """The channels (1-16) this machine is played on."""
        return frozenset(d.channel for d in self.destinations if d is not None)


def shipped_drum_machines() -> dict[str, Path]:
    """The drum-machine maps that come with rvaed, by name."""
    return shipped("rvaed.config", "drummachines")


def load_drum_machine(name_or_path: str | Path, kit: Kit) -> DrumMachine:
    """Load a shipped drum machine by name or a file by path, for ``kit``, validating it all."""
    doc = yamlfile.load(resolve(name_or_path, "rvaed.config", "drummachines", "drum machine"))
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "expected a mapping with 'name', 'channel' and 'voices'")
    doc.only((), data, ("name", "source", "channel", "voices"))
    name = data.get("name", doc.path.stem)
    if not isinstance(name, str) or not name:
        raise doc.error(("name",), "expected a non-empty string")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise doc.error(("source",), "expected a string saying where the note map comes from")
    channel = data.get("channel", 10)
    if not yamlfile.integer_in(channel, 1, 16):
        raise doc.error(("channel",), "expected a MIDI channel 1-16")
    voices = data.get("voices")
    if not isinstance(voices, dict):
        raise doc.error(("voices",), "expected a mapping of kit voice name -> note")
    for voice in voices:
        if voice not in kit.names:
            raise doc.error(("voices", voice),
                            f"not a voice of kit {kit.name} (expected one of "
                            f"{', '.join(kit.names)})")
    absent = [voice for voice in kit.names if voice not in voices]
    if absent:
        raise doc.error(("voices",), f"missing voice {absent[0]!r} of kit {kit.name} "
                        f"(write `{absent[0]}: null` if the machine has no such sound)")
    destinations = tuple(_destination(doc, voice, voices[voice], channel) for voice in kit.names)
    return DrumMachine(name, source, kit, destinations)


def _destination(doc: yamlfile.Document, voice: str, entry: object,
                 channel: int) -> Destination | None:
    key: yamlfile.Key = ("voices", voice)
    if entry is None:
        return None
    if isinstance(entry, dict):
        unknown = set(entry) - {"note", "channel"}
        if unknown:
            first = sorted(unknown, key=str)[0]
            raise doc.error((*key, first), "unknown field (expected note, channel)")
        channel = entry.get("channel", channel)
        if not yamlfile.integer_in(channel, 1, 16):
            raise doc.error((*key, "channel"), "expected a MIDI channel 1-16")
        entry = entry.get("note")
        key = (*key, "note")
    if not yamlfile.integer_in(entry, 0, 127):
        raise doc.error(key, "expected a MIDI note 0-127, {note: N, channel: C} or null")
    return Destination(entry, channel)

