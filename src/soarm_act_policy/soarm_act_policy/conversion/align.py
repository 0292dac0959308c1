"""Resampling irregular streams onto the dataset's fixed time grid (pure numpy).

Rules (all times are message header stamps, integer nanoseconds):
- grid: t_k = t_0 + round(k * 1e9 / fps), k = 0..K, from the first time every stream has
  a sample to the last time every stream still has one;
- "hold": the value of the newest sample with stamp <= t_k (zero-order hold);
- "linear": linear interpolation between the newest sample <= t_k and the oldest one
  > t_k (exact at sample stamps; held after the last sample);
- images: the newest frame with stamp <= t_k ("nearest not newer"): a frame is never
  shown before it was captured.
"""

from __future__ import annotations

import numpy as np


def make_grid(start_ns: int, end_ns: int, fps: int) -> np.ndarray:
    """Grid stamps (int64 ns) from start to end inclusive at fps."""
    if end_ns < start_ns:
        return np.zeros(0, dtype=np.int64)
    n = int((end_ns - start_ns) * fps // 1_000_000_000) + 1
    k = np.arange(n, dtype=np.int64)
    # exact integer rounding of k * 1e9 / fps
    return start_ns + (k * 1_000_000_000 * 2 + fps) // (2 * fps)


def newest_not_newer(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index into sorted `stamps` of the newest sample <= each grid time (-1 when none)."""
    return np.searchsorted(stamps, grid, side="right") - 1


def hold(stamps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    idx = newest_not_newer(stamps, grid)
    if np.any(idx < 0):
        raise ValueError("grid starts before the first sample")
    return values[idx]


def linear(stamps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    if len(stamps) and grid[0] < stamps[0]:
        raise ValueError("grid starts before the first sample")
    base = stamps[0]
    x = (stamps - base).astype(np.float64)
    g = (grid - base).astype(np.float64)
    out = np.empty((len(grid), values.shape[1]), dtype=np.float64)
    for j in range(values.shape[1]):
        out[:, j] = np.interp(g, x, values[:, j])
    # np.interp with repeated stamps is ill-defined: where a grid time equals a sample
    # stamp take that (newest) sample exactly.
    idx = newest_not_newer(stamps, grid)
    exact = stamps[idx] == grid
    out[exact] = values[idx[exact]]
    return out


RESAMPLERS = {"hold": hold, "linear": linear}


def resample(rule: str, stamps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Values of a joint stream on the grid by `rule` ("hold" or "linear")."""
    return RESAMPLERS[rule](stamps, values, grid)
