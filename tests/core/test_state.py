"""The performance state: every assignment is clamped or refused, so the state stays playable."""

import math
from fractions import Fraction

import pytest
from checks import assert_one_line
from hypothesis import given
from hypothesis import strategies as st

from rvaed.core.kit import load_kit
from rvaed.core.parameters import CLOCK, DECODE, SCHEDULE
from rvaed.core.state import (
    DENSITY,
    NOT_RESTORED,
    PARAMETERS,
    PRESETS,
    RANGES,
    PerformanceState,
    Transition,
    preset_slot,
)

anything = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                     st.text(max_size=3), st.none(), st.booleans())


@given(name=st.sampled_from(sorted(RANGES)), value=anything)
def test_a_value_field_is_clamped_into_its_range_or_refused(name, value):
    state = PerformanceState()
    before = getattr(state, name)
    try:
        setattr(state, name, value)
    except ValueError as error:
        assert name in str(error)
        assert getattr(state, name) == before
    low, high = RANGES[name]
    assert math.isfinite(getattr(state, name))
    assert low <= getattr(state, name) <= high


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.5", None, True])
def test_non_finite_and_non_numbers_are_refused(value):
    state = PerformanceState()
    with pytest.raises(ValueError, match="threshold"):
        state.threshold = value
    assert state.threshold == 0.5


def test_out_of_range_values_are_clamped():
    state = PerformanceState()
    state.x, state.y, state.swing, state.tempo, state.timing = -3, 7, 0.1, 5000, 9
    assert (state.x, state.y, state.swing, state.tempo, state.timing) == (0.0, 1.0, 0.5, 999.0,
                                                                         2.0)


def test_fixed_velocity_is_off_or_a_midi_velocity():
    state = PerformanceState()
    state.fixed_velocity = 300
    assert state.fixed_velocity == 127
    state.fixed_velocity = 0.2
    assert state.fixed_velocity == 1
    state.fixed_velocity = None
    assert state.fixed_velocity is None
    with pytest.raises(ValueError):
        state.fixed_velocity = math.nan


def test_voice_sets_accept_only_voices_of_the_kit():
    state = PerformanceState(voices=9)
    state.mutes = state.with_voice("mutes", 3, 1)
    assert state.mutes == {3}
    assert state.with_voice("mutes", 3, 0.0) == frozenset()
    for bad in (9, -1, True, 2.5):
        with pytest.raises(ValueError, match="mutes"):
            state.with_voice("mutes", bad, 1)
    with pytest.raises(ValueError):
        state.freezes = {0, 12}
    assert state.freezes == frozenset()


def test_presets_are_eight_clamped_slots():
    state = PerformanceState()
    assert state.presets == (None,) * PRESETS
    state.presets = ((2.0, -1.0), *(None,) * 7)
    assert state.presets[0] == (1.0, 0.0)
    with pytest.raises(ValueError):
        state.presets = ((0.5, 0.5),)
    assert [preset_slot(n) for n in (1, 8.0)] == [0, 7]
    for bad in (0, 9, 1.5, math.nan, "3"):
        with pytest.raises(ValueError, match="preset"):
            preset_slot(bad)


def test_transition_time_in_ms_or_bars_follows_the_tempo_only_in_bars():
    assert Transition(500, "ms").seconds(60, 4) == 0.5
    assert Transition(2, "bars").seconds(120, 4) == 4.0
    assert Transition(1e9, "ms").amount == 60000
    assert Transition(-1, "bars").amount == 0
    with pytest.raises(ValueError, match="unit"):
        Transition(1, "beats")
    with pytest.raises(ValueError):
        Transition(math.inf, "ms")
    with pytest.raises(ValueError, match="transition"):
        PerformanceState().transition = 3


def test_unknown_fields_and_playing_values():
    state = PerformanceState()
    with pytest.raises(AttributeError):
        state.colour = "red"
    state.playing = 1.0
    assert state.playing is True
    state.playing = 0
    assert state.playing is False
    with pytest.raises(ValueError):
        state.playing = math.nan


def test_every_parameter_row_is_complete_and_its_default_valid():
    assert list(PARAMETERS)[:3] == ["x", "y", "threshold"]
    assert {"fixed_velocity", "tempo", "playing"} <= set(PARAMETERS)
    for name, row in PARAMETERS.items():
        assert row.name == name and row.kind in (float, int, bool), name
        assert row.invalidates in (DECODE, SCHEDULE, CLOCK), name
        assert row.address.startswith("/rvaed/") and " " not in row.address, name
        assert row.doc and "\n" not in row.doc, name
        assert row.low < row.high and row.valid(row.default) == row.default, name
        assert getattr(PerformanceState(), name) == row.default, name
    assert len({row.address for row in PARAMETERS.values()}) == len(PARAMETERS)


def test_off_is_none_in_the_state_and_its_value_on_the_wire():
    velocity, x = PARAMETERS["fixed_velocity"], PARAMETERS["x"]
    assert (velocity.inward(0.0), velocity.inward(0.9), velocity.inward(64.0)) == (None, None, 64)
    assert (velocity.outward(None), velocity.outward(90)) == (0, 90)
    assert velocity.span == (0.0, 127.0) and velocity.arguments == "v (1..127, 0 = off)"
    assert x.inward(0.0) == 0.0 and x.span == RANGES["x"]
    assert PARAMETERS["playing"].outward(True) == 1 and PARAMETERS["playing"].arguments == "0 or 1"


def test_the_saved_state_holds_every_parameter_and_restores_the_persisted_ones():
    state = PerformanceState()
    state.threshold, state.fixed_velocity, state.tempo = 0.25, 100, 90
    saved = state.to_dict()
    assert {name: saved[name] for name in PARAMETERS} == {
        name: getattr(state, name) for name in PARAMETERS}
    assert saved["fixed_velocity"] == 100 and saved["tempo"] == 90.0
    # the clock's, and last run's hits
    assert {"freezes", "tempo", "playing", "link"} == NOT_RESTORED


@pytest.mark.parametrize("value", [10**400, Fraction(10**400, 3)])
def test_a_number_beyond_any_float_is_refused_in_one_line(value):
    state = PerformanceState()
    with pytest.raises(ValueError) as caught:
        state.threshold = value
    assert_one_line(str(caught.value), "threshold", "-bit integer")
    assert state.threshold == 0.5


@pytest.mark.parametrize("value", [7, None])
def test_presets_that_are_no_slots_at_all_are_refused(value):
    state = PerformanceState()
    with pytest.raises(ValueError, match="presets"):
        state.presets = value
    assert state.presets == (None,) * PRESETS


def test_the_density_rows_are_the_default_kits_voices_in_order():
    names = [PARAMETERS[name].address.rsplit("/", 1)[1] for name in DENSITY]
    assert names == list(load_kit().names)
    assert tuple(f"density_{voice.replace('-', '_')}" for voice in names) == DENSITY
    assert all(PARAMETERS[name].invalidates == SCHEDULE for name in DENSITY)
