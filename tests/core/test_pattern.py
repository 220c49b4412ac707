"""Pattern: matrices to playable hits, always safe to play."""

import numpy as np
import pytest

from rvaed.core.pattern import Grid, Hit, Pattern


def test_hits_follow_threshold_and_come_in_time_order():
    array = np.zeros((3, 9, 32), dtype=np.float32)
    array[:, 0, 4] = (0.9, 0.5, 0.0)
    array[:, 1, 4] = (0.6, 1.0, -0.5)  # a quarter step early: plays before the kick
    array[:, 2, 0] = (0.4, 0.7, 0.0)
    pattern = Pattern.from_array(array)
    assert pattern.hits(0.5) == (Hit(1, 4, 127, -0.5), Hit(0, 4, 64, 0.0))
    assert len(pattern.hits(0.3)) == 3
    assert pattern.hits(0.95) == ()


def test_nan_inf_and_out_of_range_values_are_made_safe():
    array = np.full((3, 9, 32), np.nan, dtype=np.float32)
    array[:, 3, 5] = (np.inf, 7.0, 5.0)
    array[:, 4, 6] = (1.0, 0.0, -np.inf)
    pattern = Pattern.from_array(array)
    assert np.isfinite(pattern.to_array()).all()
    assert pattern.hits() == (Hit(3, 5, 127, pattern.offsets[3, 5]), Hit(4, 6, 1, -1.0))
    assert pattern.offsets.max() < 1.0


def test_from_hits_keeps_the_loudest_of_two_in_one_cell():
    hits = [Hit(0, 0, 40, 0.2), Hit(0, 0, 100, -0.3), Hit(0, 0, 70, 0.1)]
    pattern = Pattern.from_hits(hits, 9, 32)
    assert pattern.hits() == (Hit(0, 0, 100, pytest.approx(-0.3)),)


def test_pattern_is_immutable():
    pattern = Pattern.empty(9, 32)
    with pytest.raises(ValueError):
        pattern.onsets[0, 0] = 1.0


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        Pattern(np.zeros((9, 32)), np.zeros((9, 16)), np.zeros((9, 32)))


def test_hit_beat_scales_microtiming():
    grid = Grid()
    hit = Hit(0, 6, 100, -1.0)
    assert hit.beat(grid) == pytest.approx(1.375)
    assert hit.beat(grid, timing=0.0) == pytest.approx(1.5)
    assert grid.steps == 32 and grid.beats == 8
