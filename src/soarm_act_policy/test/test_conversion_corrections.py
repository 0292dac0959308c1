"""Correction windows of a recording (conversion.corrections), without bags: windows from the
INTERVENTION_* events, the per-frame flag on the grid, one episode per window with --frames corrections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soarm_act_policy.conversion import corrections
from soarm_act_policy.conversion.extract import Event
from soarm_act_policy.conversion.options import ConversionError, Options
from soarm_act_policy.conversion.episodes import BagEpisode, Segment
from soarm_act_policy.events import INTERVENTION_END, INTERVENTION_START, STARTED

S = 1_000_000_000


def ev(t, kind, episode=0):
    return Event(int(t * S), kind, episode, "task", "")


def test_windows_pair_start_and_end_of_the_episode_and_an_open_one_runs_to_the_end():
    events = [ev(0, STARTED), ev(1.0, INTERVENTION_START), ev(2.0, INTERVENTION_END),
              ev(2.5, INTERVENTION_START, episode=1), ev(3.0, INTERVENTION_START)]
    assert corrections.windows(events, 0) == [(1 * S, 2 * S), (3 * S, None)]
    assert corrections.windows(events) == [(1 * S, 2 * S), (int(2.5 * S), None)]


def test_mask_is_true_from_start_to_before_end():
    grid = (np.arange(0, 40) * S // 10).astype(np.int64)  # 0.0, 0.1, ... 3.9 s
    m = corrections.mask(grid, [(1 * S, 2 * S), (3 * S, None)])
    assert np.flatnonzero(m).tolist() == list(range(10, 20)) + list(range(30, 40))
    assert corrections.runs(m) == [(10, 20), (30, 40)]


def test_corrections_only_gives_one_episode_per_window():
    grid = (np.arange(0, 40) * S // 10).astype(np.int64)
    ep = BagEpisode(bag=Path("b"), segment_index=0, segment=Segment(0, None, "t", 0, "x"),
                     task="t", grid=grid, state=np.arange(40.0)[:, None], action=np.arange(40.0)[:, None],
                     image_index={"front": np.arange(40)})
    ep.intervention = corrections.mask(grid, [(1 * S, 2 * S), (3 * S, None)])
    subs = corrections.correction_episodes(ep)
    assert [(s.window, s.frames) for s in subs] == [(0, 10), (1, 10)]
    assert subs[1].state[0, 0] == 30.0 and subs[1].image_index["front"][0] == 30 and subs[1].intervention.all()
    assert subs[0].name == "b#0.0" and ep.window is None


def test_corrections_only_may_go_without_the_feature():
    """Correction windows appended to a demonstration dataset without the feature (demo --dagger-rounds)."""
    assert Options(frames="corrections", intervention_feature="never").validate().intervention_feature == "never"
    with pytest.raises(ConversionError, match="frames"):
        Options(frames="windows").validate()
