"""Time-grid rules of the conversion (pure numpy, no bags)."""

import numpy as np
import pytest

from soarm_act_policy.conversion import align


def test_grid_is_exact_integer_nanoseconds():
    g = align.make_grid(1_000_000_000, 2_000_000_000, 30)
    assert len(g) == 31
    assert g[0] == 1_000_000_000 and g[-1] == 2_000_000_000
    assert g[1] == 1_033_333_333 and g[2] == 1_066_666_667  # rounded, not truncated
    assert len(align.make_grid(5, 4, 30)) == 0


def test_hold_takes_newest_sample_not_newer():
    stamps = np.array([0, 100, 200], dtype=np.int64)
    values = np.array([[1.0], [2.0], [3.0]])
    grid = np.array([0, 99, 100, 150, 250], dtype=np.int64)
    assert align.resample("hold", stamps, values, grid)[:, 0].tolist() == [1, 1, 2, 2, 3]


def test_linear_interpolates_between_neighbours_and_is_exact_at_samples():
    stamps = np.array([0, 100, 200], dtype=np.int64)
    values = np.array([[1.0, 10.0], [3.0, 10.0], [0.0, 20.0]])
    grid = np.array([0, 25, 100, 150, 200, 300], dtype=np.int64)
    out = align.resample("linear", stamps, values, grid)
    assert out[:, 0].tolist() == [1.0, 1.5, 3.0, 1.5, 0.0, 0.0]  # held after the last sample
    assert out[:, 1].tolist() == [10.0, 10.0, 10.0, 15.0, 20.0, 20.0]


def test_grid_before_first_sample_is_refused():
    stamps = np.array([10, 20], dtype=np.int64)
    with pytest.raises(ValueError):
        align.resample("hold", stamps, np.ones((2, 1)), np.array([5], dtype=np.int64))
    with pytest.raises(ValueError):
        align.resample("linear", stamps, np.ones((2, 1)), np.array([5], dtype=np.int64))


def test_images_nearest_not_newer():
    stamps = np.array([0, 33, 66, 100], dtype=np.int64)
    assert align.newest_not_newer(stamps, np.array([0, 32, 33, 99, 500])).tolist() == [0, 0, 1, 2, 3]
