"""Write Standard MIDI Files byte by byte, so tests can make each quirk rvaed must read.

Written independently of mido (which rvaed reads with), so a test checks the reader against
the file format, not against the library's own writer. Events are (tick, bytes) pairs.
"""

import struct
from pathlib import Path

Event = tuple[int, bytes]
DRUMS = 10


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def note_on(tick: int, note: int, velocity: int = 100, channel: int = DRUMS) -> Event:
    return tick, bytes((0x90 | (channel - 1), note, velocity))


def note_off(tick: int, note: int, channel: int = DRUMS) -> Event:
    return tick, bytes((0x80 | (channel - 1), note, 64))


def control(tick: int, controller: int, value: int, channel: int = DRUMS) -> Event:
    return tick, bytes((0xB0 | (channel - 1), controller, value))


def meta(tick: int, kind: int, data: bytes) -> Event:
    return tick, bytes((0xFF, kind)) + vlq(len(data)) + data


def tempo(tick: int, bpm: float) -> Event:
    return meta(tick, 0x51, round(60_000_000 / bpm).to_bytes(3, "big"))


def meter(tick: int, numerator: int, denominator: int) -> Event:
    return meta(tick, 0x58, bytes((numerator, denominator.bit_length() - 1, 24, 8)))


def track(events: list[Event], end: int | None = None, running_status: bool = False) -> bytes:
    """An MTrk chunk: events sorted by tick (stable), end of track at ``end`` or the last
    event. With ``running_status`` a repeated channel status byte is left out."""
    body = bytearray()
    now, status = 0, None
    ordered = sorted(events, key=lambda e: e[0])
    final = max([end or 0, *(tick for tick, _ in ordered)])
    for tick, data in [*ordered, (final, bytes((0xFF, 0x2F, 0)))]:
        body += vlq(tick - now)
        now = tick
        if running_status and data[0] < 0xF0 and data[0] == status:
            body += data[1:]
        else:
            body += data
        status = data[0] if data[0] < 0xF0 else None  # meta events cancel running status
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def smf(tracks: list[bytes], ppq: int = 480, kind: int | None = None,
        division: int | None = None) -> bytes:
    """A whole file: header + tracks; type 0 for one track, 1 for more unless given."""
    kind = (0 if len(tracks) == 1 else 1) if kind is None else kind
    division = ppq if division is None else division
    return b"MThd" + struct.pack(">IHHH", 6, kind, len(tracks), division) + b"".join(tracks)


def hits(notes: list[tuple[float, int, int]], ppq: int = 480, channel: int = DRUMS,
         length: int | None = None) -> list[Event]:
    """Note-ons with note-offs a 32nd later, from (beat, note, velocity)."""
    events = []
    for beat, note, velocity in notes:
        tick = round(beat * ppq)
        events += [note_on(tick, note, velocity, channel), note_off(tick + ppq // 8, note, channel)]
    return events


def beat_file(path: Path, notes: list[tuple[float, int, int]], ppq: int = 480,
              extra: list[Event] = (), channel: int = DRUMS) -> Path:
    """A type 0 file in 4/4 at 120 BPM with these notes and any ``extra`` events."""
    events = [meter(0, 4, 4), tempo(0, 120.0), *hits(notes, ppq, channel), *extra]
    return write(path, smf([track(events)], ppq))


def groove(bars: int, start_bar: int = 0) -> list[tuple[float, int, int]]:
    """A plain rock beat in 4/4 (kick 36, snare 38, closed hat 42): 12 notes a bar."""
    notes = []
    for bar in range(start_bar, start_bar + bars):
        base = 4.0 * bar
        notes += [(base + eighth / 2, 42, 80) for eighth in range(8)]
        notes += [(base, 36, 110), (base + 2, 36, 100), (base + 1, 38, 120), (base + 3, 38, 118)]
    return notes


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
