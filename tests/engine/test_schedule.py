"""Pattern hits -> loop events: microtiming, swing, wrap across the loop start, notes, velocity."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rvaed.core.conditions import CONDITIONS
from rvaed.core.drummachine import Destination, DrumMachine, load_drum_machine
from rvaed.core.kit import load_kit
from rvaed.core.pattern import Grid, Hit, Pattern
from rvaed.engine.schedule import MAX_PULL_STEPS, Playback, build_schedule, roll, swing_delay

KIT = load_kit()
GM = load_drum_machine("gm", KIT)
GRID = Grid()


def schedule_of(hits, playback: Playback | None = None):
    pattern = Pattern.from_hits(hits, KIT.size, GRID.steps)
    return build_schedule(pattern, GRID, playback or Playback(), GM)


@pytest.mark.parametrize(("offset", "timing", "beat"), [
    (0.0, 1.0, 1.5), (0.5, 1.0, 1.5 + 0.25 / 4), (-0.5, 1.0, 1.5 - 0.25 / 4),
    (0.5, 0.0, 1.5), (0.5, 2.0, 1.5 + 0.5 / 4),
])
def test_step_time_plus_offset_times_half_a_step_times_timing(offset, timing, beat):
    """An off-beat hit against an on-beat one on the grid (the groove's centre)."""
    _, event = schedule_of([Hit(1, 0, 100, 0.0), Hit(0, 6, 100, offset)],
                           Playback(timing=timing)).events
    assert event.beat == pytest.approx(beat)
    assert event.step == 6 and event.shift == pytest.approx(beat - 1.5)


def test_the_groove_is_centred_on_its_beats_and_push_moves_it_in_time():
    """The velocity-weighted mean offset of the on-beat hits is taken out (so a groove ahead
    of the beat as a whole lands on the grid); timing scales what is left; push is seconds."""
    hits = [Hit(0, 0, 127, -0.4), Hit(1, 4, 127, -0.2), Hit(2, 6, 64, 0.3)]
    for timing in (1.0, 2.0):
        kick, snare, hat = schedule_of(hits, Playback(timing=timing)).events
        assert kick.shift == pytest.approx(-0.1 * timing / 8)  # centre -0.3
        assert snare.shift == pytest.approx(0.1 * timing / 8)
        assert hat.shift == pytest.approx(0.6 * timing / 8)  # off-beat feel kept
    muted = schedule_of(hits, Playback(mutes={0}))
    assert muted.events[0].shift == pytest.approx(0.1 / 8)  # a mute moves nothing else
    (alone,) = schedule_of([Hit(2, 6, 64, 0.3)]).events  # no on-beat hit: all hits count
    assert alone.shift == 0.0
    assert schedule_of(hits, Playback(push=12.5)).push == pytest.approx(0.0125)


def test_swing_delays_the_odd_sixteenths_only():
    hits = [Hit(0, step, 100, 0.0) for step in range(4)]
    beats = [e.beat for e in schedule_of(hits, Playback(swing=0.75)).events]
    assert beats == pytest.approx([0.0, 0.25 + 0.125, 0.5, 0.75 + 0.125])
    assert swing_delay(1, Grid(steps_per_beat=4), 2 / 3) == pytest.approx(1 / 3)  # triplet feel
    assert swing_delay(1, Grid(steps_per_beat=3), 0.75) == 0.0  # no swing in triplet grids


def test_speed_is_the_nearest_of_half_normal_double_and_four_times():
    assert [Playback(speed=v).speed for v in (0.5, 0.7, 0.9, 1.4, 1.5, 3.0, math.nan)] == [
        0.5, 0.5, 1.0, 1.0, 2.0, 4.0, 1.0]
    assert schedule_of([Hit(0, 0, 100, 0.0)], Playback(speed=2.0)).speed == 2.0


def test_swing_past_mpc_reaches_a_whole_step_late():
    hits = [Hit(0, step, 100, 0.0) for step in range(4)]
    beats = [e.beat for e in schedule_of(hits, Playback(swing=0.9)).events]
    assert beats == pytest.approx([0.0, 0.25 + 0.2, 0.5, 0.75 + 0.2])
    assert swing_delay(3, Grid(steps_per_beat=4), 1.0) == 1.0
    last = schedule_of([Hit(0, GRID.steps - 1, 100, 0.0)], Playback(swing=1.0)).events
    assert [e.beat for e in last] == [0.0]  # the loop's last step lands on the next step 0


def test_a_hit_pulled_before_the_loop_start_wraps_to_the_loop_end():
    event, *_ = schedule_of([Hit(0, 0, 100, -1.0), Hit(1, 4, 100, 0.5),
                             Hit(1, 8, 100, 0.5)]).events  # the groove's centre is 0
    assert event.beat == pytest.approx(GRID.beats - 0.125)
    assert event.step == 0 and event.shift == pytest.approx(-0.125)


def test_notes_channels_velocities_mutes_threshold_gate():
    machine = DrumMachine("box", "", KIT, (Destination(60, 2), None, *GM.destinations[2:]))
    pattern = Pattern.from_hits([Hit(0, 0, 64, 0.0), Hit(1, 2, 100, 0.0), Hit(2, 4, 127, 0.0),
                                 Hit(3, 6, 20, 0.0)], KIT.size, GRID.steps)
    schedule = build_schedule(pattern, GRID, Playback(velocity_scale=1.5, mutes={3}, gate=2),
                              machine)
    assert [(e.voice, e.velocity, e.destination) for e in schedule.events] == [
        (0, 96, Destination(60, 2)), (1, 127, None), (2, 127, Destination(42, 10))]
    assert schedule.gate == pytest.approx(0.5)
    fixed = build_schedule(pattern, GRID, Playback(fixed_velocity=90, threshold=0.99), machine)
    assert {e.velocity for e in fixed.events} == {90}
    empty = Pattern.empty(KIT.size, GRID.steps)
    assert build_schedule(empty, GRID, Playback(), machine).events == ()


def test_playback_values_are_made_safe():
    playback = Playback(threshold=math.nan, timing=9, swing=0.1, velocity_scale=-1,
                        fixed_velocity=300, gate=math.inf)
    assert (playback.threshold, playback.timing, playback.swing, playback.velocity_scale,
            playback.fixed_velocity, playback.gate) == (0.5, 2.0, 0.5, 0.0, 127, 0.5)
    assert playback.velocity(100) == 127 and Playback(velocity_scale=0).velocity(100) == 1


def test_a_pattern_with_nan_schedules_finite_events():
    nan = np.full((KIT.size, GRID.steps), np.nan, dtype=np.float32)
    onsets = np.ones_like(nan)
    schedule = build_schedule(Pattern(onsets, nan, nan), GRID, Playback(), GM)
    assert len(schedule.events) == KIT.size * GRID.steps
    assert all(math.isfinite(e.beat) and 1 <= e.velocity <= 127 for e in schedule.events)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="16 steps"):
        build_schedule(Pattern.empty(KIT.size, 16), GRID, Playback(), GM)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 31), st.integers(1, 127),
                          st.floats(-1, 0.999)), max_size=30),
       st.floats(0, 2), st.floats(0.5, 1.0))
def test_events_are_in_play_order_in_the_loop_and_near_their_step(cells, timing, swing):
    hits = [Hit(*cell) for cell in cells]
    events = schedule_of(hits, Playback(timing=timing, swing=swing)).events
    sounding = [e.step / GRID.steps_per_beat + e.shift for e in events]
    assert sounding == sorted(sounding)
    assert all(0 <= e.beat < GRID.beats for e in events)
    pull = MAX_PULL_STEPS / GRID.steps_per_beat
    assert all(-pull <= e.shift <= pull + 1.0 / GRID.steps_per_beat for e in events)
    for e in events:
        assert (e.step / GRID.steps_per_beat + e.shift) % GRID.beats == pytest.approx(e.beat)


def test_density_moves_the_threshold_of_its_voice_only():
    hits = [Hit(voice, step, 100, 0.0) for voice in (0, 1) for step in (0, 8)]
    array = Pattern.from_hits(hits, KIT.size, GRID.steps).to_array()
    array[0, :, 8] *= 0.4  # step 8 of both voices at onset probability 0.4
    pattern = Pattern.from_array(array)
    playback = Playback(threshold=0.5, density=(0.2,))
    assert [(e.voice, e.step) for e in build_schedule(pattern, GRID, playback, GM).events] == [
        (0, 0), (1, 0), (0, 8)]
    assert list(playback.thresholds(3)) == pytest.approx([0.3, 0.5, 0.5])


def test_a_note_set_live_replaces_the_drum_machine_s_for_its_voice_only():
    hits = [Hit(voice, 0, 100, 0.0) for voice in range(3)]
    plain = {e.voice: e.destination for e in schedule_of(hits).events}
    renoted = schedule_of(hits, Playback(notes=(None, 40, 300))).events
    assert {e.voice: e.destination.note for e in renoted} == {0: plain[0].note, 1: 40, 2: 127}
    assert {e.voice: e.destination.channel for e in renoted} == {
        v: d.channel for v, d in plain.items()}
    assert Playback(notes=(None,) * 9).notes == ()  # nothing set: the drum machine's notes
    assert schedule_of(hits, Playback(notes=(None, 40))).notes == (None, 40)  # for each output


def test_density_offsets_are_made_safe():
    playback = Playback(threshold=0.9, density=(math.nan, 2.0, -2.0, 0.1))
    assert playback.density == (0.0, 0.5, -0.5, 0.1)
    assert list(playback.thresholds(2)) == pytest.approx([0.9, 0.4])
    assert list(Playback(threshold=0.9, density=(-0.5, 0.5)).thresholds(2)) == pytest.approx(
        [1.0, 0.4])


def rolls(seed: int, loops: int = 200) -> np.ndarray:
    """roll for ``loops`` loops x 32 steps x 3 voices, shaped so."""
    return np.array([[[roll(seed, loop, step, voice) for voice in range(3)]
                      for step in range(32)] for loop in range(loops)])


def test_a_roll_is_uniform_repeatable_and_independent_of_its_neighbours():
    seven = rolls(7)
    assert seven.min() >= 0.0 and seven.max() < 1.0
    counts = np.histogram(seven, bins=10, range=(0.0, 1.0))[0]
    share = seven.size / 10
    assert np.all(np.abs(counts - share) < 4 * math.sqrt(share * 0.9))  # 4 sd of a binomial
    assert np.array_equal(seven, rolls(7))  # the same arguments, the same roll
    limit = 4 / math.sqrt(seven[1:].size)  # 4 sd of the correlation of independent rolls
    for a, b in ((seven[1:], seven[:-1]), (seven[:, 1:], seven[:, :-1]),
                 (seven[..., 1:], seven[..., :-1]), (seven, rolls(8))):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < limit


def test_chances_keep_each_hit_of_their_voice_by_its_roll_every_loop():
    hits = [Hit(voice, step, 100, 0.0) for voice in (0, 1, 2) for step in range(GRID.steps)]
    schedule = schedule_of(hits, Playback(chance=(0.5, 0.0), seed=42))
    assert schedule.chances == (0.5, 0.0) and schedule.seed == 42
    for loop in (0, 1, 77):
        kept = schedule.played(schedule.events, loop)
        assert {(e.voice, e.step) for e in kept} == {
            (0, s) for s in range(GRID.steps) if roll(42, loop, s, 0) < 0.5} | {
            (2, s) for s in range(GRID.steps)}  # chance 0: never; a voice beyond: always
    kicks = [len([e for e in schedule.played(schedule.events, loop) if e.voice == 0])
             for loop in range(100)]
    assert abs(sum(kicks) - 1600) < 4 * math.sqrt(3200 * 0.25)  # half of 3200, within 4 sd
    assert len(set(map(tuple, (kicks[i:i + 10] for i in range(0, 100, 10))))) > 1


def test_chances_all_one_roll_nothing_and_values_are_made_safe():
    assert Playback(chance=(1.0, 1.0)).chance == ()  # every hit plays: nothing is rolled
    assert Playback(chance=(math.nan, 2.0, -1.0, 0.3)).chance == (1.0, 1.0, 0.0, 0.3)
    assert Playback(seed=-5).seed == 0 and Playback(seed=10**9).seed == 9999
    events = schedule_of([Hit(0, 0, 100, 0.0)]).events
    assert schedule_of([Hit(0, 0, 100, 0.0)]).played(events, 3) is events


def test_a_phrase_plays_its_last_bar_from_a_busier_fill():
    hits = [Hit(0, step, 100, 0.0) for step in range(0, GRID.steps, 8)]
    hits += [Hit(1, step, 100, 0.0) for step in range(1, GRID.steps, 2)]
    array = Pattern.from_hits(hits, KIT.size, GRID.steps).to_array()
    array[0, 1] *= 0.4  # the snares at onset probability 0.4
    pattern = Pattern.from_array(array)
    plain = build_schedule(pattern, GRID, Playback(threshold=0.5), GM)
    assert plain.fill is None and not plain.in_fill(63)
    phrased = build_schedule(pattern, GRID, Playback(threshold=0.5, phrase=4, fill=0.3,
                                                     fills=True), GM)
    assert phrased.events == plain.events and phrased.phrase == 64
    assert phrased.fill is not None
    assert {(e.voice, e.step) for e in phrased.fill.events} == {
        (e.voice, e.step) for e in plain.events} | {(1, s) for s in range(1, GRID.steps, 2)}
    assert [s for s in range(130) if phrased.in_fill(s)] == [
        *range(48, 64), *range(112, 128)]  # the fourth bar of every four
    assert build_schedule(pattern, GRID, Playback(phrase=4, fill=0.0, fills=True), GM).fill \
        is None
    two = build_schedule(pattern, GRID, Playback(phrase=4, fill_bars=2), GM)
    assert [s for s in range(130) if two.in_fill(s)] == [*range(32, 64), *range(96, 128)]
    whole = build_schedule(pattern, GRID, Playback(phrase=2, fill_bars=9), GM)  # 4 at most,
    assert all(whole.in_fill(s) for s in range(64))  # and never more than the phrase


def heard(schedule, loops, filling=lambda loop: False):
    """(loop, voice, step) of every hit that plays, loop by loop and step by step as the
    sequencer asks, with one memory of decided hits throughout."""
    decided: dict[int, bool] = {}
    played = []
    for loop in range(loops):
        for step in range(GRID.steps):
            group = tuple(e for e in schedule.events if e.step == step)
            played += [(loop, e.voice, e.step)
                       for e in schedule.played(group, loop, filling(loop), decided)]
    return set(played)


def test_a_voice_condition_plays_its_hits_on_loop_a_of_every_b_and_others_always():
    hits = [Hit(voice, step, 100, 0.0) for voice in (0, 1) for step in (0, 8)]
    schedule = schedule_of(hits, Playback(conditions=(CONDITIONS.index("2:3"),)))
    assert heard(schedule, 9) == {(loop, 0, s) for loop in (1, 4, 7) for s in (0, 8)} | {
        (loop, 1, s) for loop in range(9) for s in (0, 8)}


def test_fill_first_and_their_opposites():
    hits = [Hit(voice, 4, 100, 0.0) for voice in range(4)]
    names = ("fill", "not fill", "1st", "not 1st")
    schedule = schedule_of(hits, Playback(conditions=tuple(CONDITIONS.index(n) for n in names)))
    got = heard(schedule, 4, filling=lambda loop: loop == 2)
    assert got == {(2, 0, 4), (0, 1, 4), (1, 1, 4), (3, 1, 4), (0, 2, 4), (1, 3, 4), (2, 3, 4),
                   (3, 3, 4)}


def test_pre_follows_the_voice_and_nei_its_neighbour_as_their_last_decided_hit_went():
    # open hat: a 50 % roll on step 2, "pre" on step 14; low tom (its neighbour) "nei" on 14
    hits = [Hit(3, 2, 100, 0.0), Hit(3, 14, 100, 0.0), Hit(4, 14, 100, 0.0)]
    steps = ((3, 2, "50%"), (3, 14, "pre"), (4, 14, "nei"), (4, 15, "not nei"))
    schedule = schedule_of([*hits, Hit(4, 15, 100, 0.0)], Playback(steps=steps, seed=3))
    got = heard(schedule, 40)
    rolled = {loop for loop in range(40) if roll(3, loop, 2, 3) < 0.5}
    assert 5 < len(rolled) < 35
    assert got == {(loop, v, s) for loop in rolled for v, s in ((3, 2), (3, 14), (4, 14))} | {
        (loop, 4, 15) for loop in set(range(40)) - rolled}


def test_a_step_condition_takes_the_place_of_its_voices_and_a_wrong_one_is_refused():
    hits = [Hit(0, step, 100, 0.0) for step in (0, 8)]
    schedule = schedule_of(hits, Playback(conditions=(CONDITIONS.index("1st"),),
                                          steps=((0, 8, "always"), (0, 0, "1:2"))))
    assert heard(schedule, 4) == {(0, 0, 0), (2, 0, 0), (0, 0, 8)}  # 8: its voice's 1st
    with pytest.raises(ValueError, match="steps: expected always"):
        Playback(steps=((0, 1, "often"),))
