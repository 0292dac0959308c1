"""Human corrections in a recording: intervention windows, the per-frame `intervention` flag and the
corrections-only episodes (ROS-free).

A window opens at an INTERVENTION_START event of the episode and closes at its INTERVENTION_END
(the driver emits them when the command source switches, docs/interfaces.md "Take-over and
hand-back"); a window still open closes at the episode's end. A frame at grid time t is a
correction (LeRobot's `intervention` feature, True while the human is in control) when
start <= t < end for some window.
"""

from __future__ import annotations

import copy

import numpy as np

from ..events import INTERVENTION_END, INTERVENTION_START

#: Dataset feature of the flag, as LeRobot's DAgger rollouts write it (lerobot.rollout).
FEATURE = "intervention"
FEATURE_SPEC = {"dtype": "bool", "shape": (1,), "names": None}


def windows(events, episode_index: int | None = None) -> list[tuple[int, int | None]]:
    """[(start_ns, end_ns or None = to the end)] from the INTERVENTION_* events (stamp order) of
    `episode_index` (None: every event)."""
    out: list[tuple[int, int | None]] = []
    start: int | None = None
    for e in sorted(events, key=lambda e: e.stamp_ns):
        if episode_index is not None and e.episode_index != episode_index:
            continue
        if e.kind == INTERVENTION_START and start is None:
            start = e.stamp_ns
        elif e.kind == INTERVENTION_END and start is not None:
            out.append((start, e.stamp_ns))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def mask(grid: np.ndarray, spans: list[tuple[int, int | None]]) -> np.ndarray:
    """Per grid time (ns): True inside a window (start <= t < end)."""
    grid = np.asarray(grid, dtype=np.int64)
    out = np.zeros(len(grid), dtype=bool)
    for a, b in spans:
        out |= (grid >= a) & (grid < b if b is not None else True)
    return out


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[(first, last + 1)] of the runs of True in `flags`."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def correction_episodes(ep) -> list:
    """Corrections only: one episode per correction window of `ep` (conversion.episodes.BagEpisode
    with a grid), each holding that window's frames (all flagged); none when it has no correction."""
    out = []
    for w, (a, b) in enumerate(runs(ep.intervention)):
        sub = copy.copy(ep)
        sub.window = w
        sub.grid, sub.intervention = ep.grid[a:b], ep.intervention[a:b]
        sub.state, sub.action = ep.state[a:b], ep.action[a:b]
        sub.image_index = {c: idx[a:b] for c, idx in ep.image_index.items()}
        sub.problems = list(ep.problems)
        out.append(sub)
    return out
