"""MIDI clock out, for gear that cannot speak Link: 24 ticks per beat from the clock's timeline.

The messages are not sent here: `MidiClock` says at which beat each one falls and the sequencer
sends them with the notes, so clock and notes share one timing path (and one latency offset).
Starting on the session's first bar sends Start; joining a session already playing sends Song
Position Pointer then Continue on the next 16th, so a follower lands on the right step.
"""

import math

from rvaed.core.midi import CLOCK, CONTINUE, SONG_POSITION, START, STOP

TICKS_PER_BEAT = 24
SIXTEENTHS_PER_BEAT = 4  # the unit of Song Position Pointer ("MIDI beats")

Message = tuple[int, ...]


def song_position(sixteenths: int) -> Message:
    """A Song Position Pointer message (14-bit count of 16ths since the song start)."""
    sixteenths %= 1 << 14
    return (SONG_POSITION, sixteenths & 0x7F, sixteenths >> 7)


class MidiClock:
    """The clock messages of one playing session, produced a stretch of beats at a time."""

    def __init__(self, start_beat: float, from_beat: float) -> None:
        """Begin a session whose step 0 is ``start_beat``; nothing before ``from_beat``."""
        self.start_beat = start_beat
        if from_beat <= start_beat:
            self._first: list[tuple[float, Message]] = [(start_beat, (START,))]
            self._tick = 0
        else:
            position = math.ceil((from_beat - start_beat) * SIXTEENTHS_PER_BEAT)
            beat = start_beat + position / SIXTEENTHS_PER_BEAT
            self._first = [(beat, song_position(position)), (beat, (CONTINUE,))]
            self._tick = position * TICKS_PER_BEAT // SIXTEENTHS_PER_BEAT

    def until(self, beat: float) -> list[tuple[float, Message]]:
        """The messages due up to and including ``beat``, in order; each is given once."""
        due, self._first = self._first, []
        while (at := self.start_beat + self._tick / TICKS_PER_BEAT) <= beat:
            due.append((at, (CLOCK,)))
            self._tick += 1
        return due

    @staticmethod
    def stop() -> Message:
        return (STOP,)
