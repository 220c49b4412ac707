"""The clock's time domain, the internal clock's beat line, tempo range and start."""

import math
import time

import pytest

from rvaed.engine.clock import (
    MAX_TEMPO,
    MIN_TEMPO,
    START_LEAD,
    InternalClock,
    Timeline,
    clamp_tempo,
    next_bar,
    now,
)


def test_host_time_is_the_link_clock_domain():
    ours = now()
    raw = time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
    assert abs(raw - ours) < 0.001


def test_beats_advance_at_the_tempo_and_convert_both_ways():
    clock = InternalClock(tempo=150)
    t = clock.now()
    assert clock.beat_at(t + 2.0) - clock.beat_at(t) == pytest.approx(5.0)
    assert clock.time_at(clock.beat_at(t + 0.3)) == pytest.approx(t + 0.3)
    line = clock.timeline()
    assert isinstance(line, Timeline) and line.quantum == 4.0 and not line.playing


def test_a_tempo_change_keeps_the_beat_continuous():
    clock = InternalClock(tempo=60)
    time.sleep(0.05)
    before = clock.timeline()
    clock.set_tempo(999)
    after = clock.timeline()
    assert after.tempo == 999
    t = after.time0  # the moment of the change: both lines agree on the beat there
    assert before.beat_at(t) == pytest.approx(after.beat_at(t), abs=1e-9)
    assert after.beat_at(t + 0.06) - after.beat_at(t) == pytest.approx(0.999)


@pytest.mark.parametrize(("asked", "got"), [(5, MIN_TEMPO), (2000, MAX_TEMPO), (math.nan, 120),
                                            (-math.inf, 120), (133.5, 133.5)])
def test_tempo_is_clamped_to_link_range(asked, got):
    assert clamp_tempo(asked) == got
    clock = InternalClock()
    clock.set_tempo(asked)
    assert clock.tempo == got


def test_starting_puts_beat_zero_a_moment_ahead_and_anchors_the_loop_there():
    clock = InternalClock(tempo=120)
    time.sleep(0.02)
    asked = now()
    clock.set_playing(True)
    line = clock.timeline()
    assert line.playing and line.start_beat == 0.0
    assert line.time_at(0.0) == pytest.approx(asked + START_LEAD, abs=0.005)
    clock.set_playing(False)
    stopped = clock.timeline()
    assert not stopped.playing
    assert stopped.beat_at(stopped.time0) == pytest.approx(line.beat_at(stopped.time0))


def test_next_bar_and_quantum():
    assert next_bar(4.0, 4) == 4.0
    assert next_bar(4.0 - 1e-6, 4) == 4.0  # a microsecond's rounding is not a bar late
    assert next_bar(-1.3, 4) == 0.0
    assert next_bar(5.1, 3) == 6.0
    with pytest.raises(ValueError):
        InternalClock(quantum=0)
    clock = InternalClock()
    clock.set_quantum(3)
    assert clock.quantum == 3.0
