"""MIDI clock: 24 ticks per beat, Start on the session's first bar, SPP + Continue mid-session;
and through the sequencer to a JACK port, sharing the notes' timing."""

import time

import pytest
from jackmidi import PERIOD, Receiver

from rvaed.engine.clock import InternalClock
from rvaed.engine.midiclock import (
    CLOCK,
    CONTINUE,
    SONG_POSITION,
    START,
    STOP,
    MidiClock,
    song_position,
)
from rvaed.engine.midiout import Output
from rvaed.engine.sequencer import Sequencer


def test_start_on_step_zero_then_24_ticks_per_beat():
    clock = MidiClock(start_beat=8.0, from_beat=7.5)
    messages = clock.until(9.0)
    assert messages[0] == (8.0, (START,))
    ticks = [beat for beat, message in messages if message == (CLOCK,)]
    assert len(ticks) == 25 and ticks[0] == 8.0 and ticks[-1] == pytest.approx(9.0)
    assert clock.until(9.0) == []  # each message once
    assert [b for b, _ in clock.until(9.1)] == pytest.approx([9 + 1 / 24, 9 + 2 / 24])


def test_joining_mid_session_sends_song_position_then_continue_on_the_next_sixteenth():
    clock = MidiClock(start_beat=0.0, from_beat=10.1)
    messages = clock.until(10.3)
    assert messages[:2] == [(10.25, song_position(41)), (10.25, (CONTINUE,))]
    assert messages[2] == (10.25, (CLOCK,))
    assert song_position(41) == (SONG_POSITION, 41, 0)
    assert song_position(300) == (SONG_POSITION, 300 & 0x7F, 300 >> 7)


def test_clock_out_through_the_sequencer(jack_server):
    receiver = Receiver("clockin")
    clock = InternalClock(tempo=150)
    output = Output("clockin", clock_out=True, api="jack", poll=0.05)
    sequencer = Sequencer(clock, [output])
    try:
        sequencer.start()
        deadline = time.monotonic() + 15  # its sender process starts (slow when loaded)
        while not output.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        clock.set_playing(True)
        time.sleep(1.0)
        clock.set_playing(False)
        time.sleep(0.1)
    finally:
        sequencer.stop()
        receiver.close()
    kinds = [m[0] for _, m in receiver.messages if m[0] in (START, CLOCK, STOP)]
    assert kinds[0] == START and kinds[-1] == STOP
    ticks = [t for t, m in receiver.messages if m[0] == CLOCK]
    # ticks too late to send, or that waited too long to be sent (a loaded machine)
    dropped = sequencer.timing.dropped[1] + output.dropped_by_sender()
    assert 55 <= len(ticks) + dropped <= 65  # 1 s at 150 BPM: 60 ticks
    # arrivals come in JACK periods; over many ticks the spacing is the tempo's
    spacing = (ticks[-1] - ticks[0]) / (len(ticks) - 1 + dropped)
    assert spacing == pytest.approx(60 / 150 / 24, abs=PERIOD / 10)
