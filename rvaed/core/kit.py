"""Drum kits: which MIDI notes feed each voice of the model, and which note each voice plays.

A kit is a small YAML file in config/kits/ (or anywhere, by path):

    name: rhythmvae
    voices:
      - {name: kick, inputs: [35, 36], output: 36}

The order of the voices is the order of the model's rows, so a model and its kit travel
together (the model manifest stores the kit).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from rvaed.core import yamlfile
from rvaed.core.errors import RvaedError
from rvaed.core.resources import resolve, shipped

DEFAULT_KIT = "rhythmvae"


@dataclass(frozen=True)
class Voice:
    """One row of the model: a drum sound, the notes that count as it, the note it plays."""

    name: str
    inputs: tuple[int, ...]
    output: int


@dataclass(frozen=True)
class Kit:
    """An ordered set of voices with a note -> voice lookup for reading MIDI files."""

    name: str
    voices: tuple[Voice, ...]

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for voice in self.voices:
            for note in voice.inputs:
                if note in seen:
                    raise RvaedError(
                        f"kit {self.name}: note {note} maps to both {seen[note]} and {voice.name}"
                    )
                seen[note] = voice.name
        object.__setattr__(self, "_lookup", {n: i for i, v in enumerate(self.voices)
                                             for n in v.inputs})

    @property
    def size(self) -> int:
        return len(self.voices)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(voice.name for voice in self.voices)

    @property
    def outputs(self) -> tuple[int, ...]:
        return tuple(voice.output for voice in self.voices)

    def voice_of(self, note: int) -> int | None:
        """The row index a MIDI note feeds, or None when the kit does not map it."""
        return self._lookup.get(note)  # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        """Plain data for manifests and JSON."""
        return {
            "name": self.name,
            "voices": [
                {"name": v.name, "inputs": list(v.inputs), "output": v.output}
                for v in self.voices
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Kit":
        """Inverse of `to_dict` (for manifests, already validated when written)."""
        voices = tuple(
            Voice(v["name"], tuple(v["inputs"]), v["output"]) for v in data["voices"]
        )
        return cls(data["name"], voices)


def shipped_kits() -> dict[str, Path]:
    """The kits that come with rvaed, by name."""
    return shipped("rvaed.config", "kits")


def load_kit(name_or_path: str | Path = DEFAULT_KIT) -> Kit:
    """Load a shipped kit by name or a kit file by path, validating every field."""
    doc = yamlfile.load(resolve(name_or_path, "rvaed.config", "kits", "kit"))
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "expected a mapping with 'name' and 'voices'")
    name = data.get("name", doc.path.stem)
    if not isinstance(name, str) or not name:
        raise doc.error(("name",), "expected a non-empty string")
    entries = data.get("voices")
    if not isinstance(entries, list) or not entries:
        raise doc.error(("voices",), "expected a non-empty list of voices")
    voices = tuple(_voice(doc, i, entry) for i, entry in enumerate(entries))
    names = [v.name for v in voices]
    for i, voice in enumerate(voices):
        if names.index(voice.name) != i:
            raise doc.error(("voices", i, "name"), f"voice {voice.name!r} appears twice")
    try:
        return Kit(name, voices)
    except RvaedError as exc:
        raise doc.error(("voices",), str(exc)) from None


def _voice(doc: yamlfile.Document, index: int, entry: object) -> Voice:
    key = ("voices", index)
    if not isinstance(entry, dict):
        raise doc.error(key, "expected a mapping with name, inputs and output")
    doc.only(key, entry, ("name", "inputs", "output"))
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise doc.error((*key, "name"), "expected a non-empty string")
    inputs = entry.get("inputs", [])
    if not isinstance(inputs, list) or not all(_is_note(n) for n in inputs):
        raise doc.error((*key, "inputs"), "expected a list of MIDI notes 0-127")
    output = entry.get("output")
    if not _is_note(output):
        raise doc.error((*key, "output"), "expected a MIDI note 0-127")
    return Voice(name, tuple(inputs), output)


def _is_note(value: object) -> TypeGuard[int]:
    return yamlfile.integer_in(value, 0, 127)
