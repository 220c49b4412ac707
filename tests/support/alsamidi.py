"""Receiving ends on a real ALSA sequencer (inside the ALSA guest), and what is checked there.

`SeqDump` is alsa-utils' aseqdump in its own process, subscribed to a sequencer port (the
snd-seq-dummy "Midi Through" port echoes what rvaed sends to it). `RawMidiDump` reads the
raw-MIDI side of an snd-virmidi device, where a drum machine on a cable would sit: what rvaed
sends to the virmidi sequencer port comes out there as bytes. When the card is unbound (the
cable pulled) its reads fail; it closes the device, waits for it to come back and opens it
again, numbering each stretch ("segment") it received in. Messages are tuples of bytes;
arrival order is all that counts (the guest's emulated time means nothing).
"""

from __future__ import annotations

import collections
import os
import re
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

NOTE_ON, NOTE_OFF, CONTROL_CHANGE, ALL_NOTES_OFF = 0x90, 0x80, 0xB0, 123
Message = tuple[int, ...]
_KINDS = {"Note on": NOTE_ON, "Note off": NOTE_OFF, "Control change": CONTROL_CHANGE}
_ASEQDUMP = re.compile(r"^\s*\d+:\d+\s+(Note on|Note off|Control change)\s+(\d+), "
                       r"(?:note|controller) (\d+), (?:velocity|value) (\d+)")


class Dump:
    """Messages as they arrive, each with the segment it arrived in."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Message]] = []
        self.segment = 0

    @property
    def messages(self) -> list[Message]:
        return [message for _, message in self.received]

    def in_segment(self, segment: int) -> list[Message]:
        return [message for seg, message in self.received if seg == segment]

    def note_ons(self) -> int:
        return sum(1 for message in self.messages if is_note_on(message))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; " \
                f"{len(self.received)} messages, last: {self.messages[-6:]}"
            time.sleep(0.05)


class SeqDump(Dump):
    """aseqdump subscribed to the sequencer port ``address`` (client:port)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self._proc = subprocess.Popen(["stdbuf", "-oL", "aseqdump", "-p", address],
                                      stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if found := _ASEQDUMP.match(line):
                kind, channel, data1, data2 = found.groups()
                message = (_KINDS[kind] | int(channel), int(data1), int(data2))
                self.received.append((self.segment, message))

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait()
        self._thread.join(5)


class RawMidiDump(Dump):
    """The raw-MIDI reader of /dev/snd/midiC{card}D{device}, reopened after the card returns."""

    def __init__(self, card: int, device: int) -> None:
        super().__init__()
        self.path = Path(f"/dev/snd/midiC{card}D{device}")
        self.opened = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.opened.wait(30), f"{self.path} did not open"

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
                continue
            self.opened.set()
            try:
                self._read(fd)
            finally:
                os.close(fd)
            self.segment += 1

    def _read(self, fd: int) -> None:
        """Until the device fails (the card went away) or we close."""
        parser = RunningStatus()
        while not self._closing.is_set():
            ready, _, broken = select.select([fd], [], [fd], 0.1)
            if broken:
                return
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            self.received.extend((self.segment, message) for message in parser.feed(data))

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)


class RunningStatus:
    """Channel messages from raw MIDI bytes, running status included: the kernel's virmidi
    writes consecutive messages of one status without repeating it (mido's parser drops
    those). System messages are skipped; real-time ones do not end a running status."""

    def __init__(self) -> None:
        self._status = 0
        self._data: list[int] = []

    def feed(self, data: bytes) -> list[Message]:
        messages = []
        for byte in data:
            if byte >= 0xF8:
                continue
            if byte >= 0x80:
                self._status = byte if byte < 0xF0 else 0
                self._data = []
            elif self._status:
                self._data.append(byte)
                if len(self._data) == (1 if self._status & 0xE0 == 0xC0 else 2):
                    messages.append((self._status, *self._data))
                    self._data = []
        return messages


def is_note_on(message: Message) -> bool:
    return len(message) == 3 and message[0] & 0xF0 == NOTE_ON and message[2] > 0


def is_note_off(message: Message) -> bool:
    return len(message) == 3 and (message[0] & 0xF0 == NOTE_OFF
                                  or (message[0] & 0xF0 == NOTE_ON and message[2] == 0))


def is_all_notes_off(message: Message) -> bool:
    return len(message) == 3 and message[0] & 0xF0 == CONTROL_CHANGE and message[1] == 123


def unpaired(messages: Iterable[Message]) -> list[str]:
    """Every note-on must be followed by its own note-off before the note sounds again.

    Returns what broke that: a note-on while the same note sounds, and the notes still
    sounding at the end. (A note-off for a silent note is no fault: the sender sends the
    note-off of a note-on it dropped as too late, and the clean slate is all such.)
    """
    sounding: set[tuple[int, int]] = set()
    problems = []
    for index, message in enumerate(messages):
        key = (message[0] & 0x0F, message[1]) if len(message) == 3 else (-1, -1)
        if is_note_on(message):
            if key in sounding:
                problems.append(f"#{index}: note-on {message} while the note sounds")
            sounding.add(key)
        elif is_note_off(message):
            sounding.discard(key)
    return problems + [f"left sounding: channel {c + 1} note {n}" for c, n in sorted(sounding)]


def hanging(messages: Iterable[Message]) -> list[tuple[int, int]]:
    """Notes whose last word at the receiver was a note-on (All Notes Off ends a channel's)."""
    last: dict[tuple[int, int], bool] = {}
    for message in messages:
        if is_note_on(message) or is_note_off(message):
            last[(message[0] & 0x0F, message[1])] = is_note_on(message)
        elif is_all_notes_off(message):
            last.update({key: False for key in last if key[0] == message[0] & 0x0F})
    return sorted(key for key, on in last.items() if on)


def before_first_note(messages: list[Message]) -> list[Message]:
    """What arrived before the first note-on (all of it when no note came)."""
    firsts = [i for i, message in enumerate(messages) if is_note_on(message)]
    return messages[:firsts[0]] if firsts else messages


def clean_slate_missing(messages: list[Message], notes: set[tuple[int, int]]) -> list[str]:
    """What of a clean slate (a note-off for every (channel 0-15, note) of the drum machine,
    All Notes Off on each of its channels) did not come before the first note-on."""
    head = before_first_note(messages)
    offs = {(m[0] & 0x0F, m[1]) for m in head if is_note_off(m)}
    cleared = {m[0] & 0x0F for m in head if is_all_notes_off(m)}
    missing = [f"note-off channel {c + 1} note {n}" for c, n in sorted(notes - offs)]
    channels = {c for c, _ in notes}
    return missing + [f"All Notes Off channel {c + 1}" for c in sorted(channels - cleared)]


def counted(messages: Iterable[Message]) -> collections.Counter[str]:
    """How many note-ons, note-offs and All Notes Off: for the report of a failure."""
    kinds = collections.Counter[str]()
    for message in messages:
        kinds["note-on" if is_note_on(message) else "note-off" if is_note_off(message)
              else "all-notes-off" if is_all_notes_off(message) else "other"] += 1
    return kinds
