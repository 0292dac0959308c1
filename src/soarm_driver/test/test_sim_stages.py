"""Task stages of the sim task (sim/stages.py) on the real MuJoCo sim, in-process (no ROS)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
from soarm_driver.backends.mock import MockBackend
from soarm_driver.sim import stages as st
from soarm_driver.sim.backend import SimBackend
from soarm_driver.sim.expert import ScriptedExpert
from soarm_driver.sim.scene import CUBE, TARGET


def test_stage_bits_equal_the_episode_event_constants():
    msg = pytest.importorskip("soarm_msgs.msg", reason="soarm_msgs not built (colcon build)")
    E = msg.EpisodeEvent
    assert (st.STAGE_REACHED, st.STAGE_GRASPED, st.STAGE_PLACED, st.STAGE_RELEASED) == (
        E.STAGE_REACHED, E.STAGE_GRASPED, E.STAGE_PLACED, E.STAGE_RELEASED,
    )
    assert [bit for _, bit in st.STAGES] == [1, 2, 4, 8] and st.ALL_STAGES == 15


def test_stage_names():
    assert st.stage_names(0) == []
    assert st.stage_names(st.STAGE_PLACED | st.STAGE_REACHED) == ["reached", "placed"]
    assert st.stage_names(st.ALL_STAGES) == ["reached", "grasped", "placed", "released"]


def test_supports_only_the_sim_task():
    assert st.StageTracker.supports(SimBackend({}))
    assert not st.StageTracker.supports(MockBackend({}))


def _first_times(seed: int, drive: bool, duration: float = 10.5) -> tuple[dict[int, float], int]:
    """Time (s) each stage bit first appears in one episode, and the final bits."""
    sim = SimBackend({"seed": seed})
    sim.connect()
    try:
        tracker = st.StageTracker(sim)
        expert = ScriptedExpert()
        sim.advance(0.3)
        poses = sim.object_poses()
        expert.start(poses[CUBE][0], poses[CUBE][1], poses[TARGET][0], sim.read_positions())
        tracker.reset()
        first, t, dt = {}, 0.0, 1 / 60
        while t < duration:
            if drive:
                sim.write_goal_positions(expert.command(t))
            sim.advance(dt)
            t += dt
            bits = tracker.update()
            for _, bit in st.STAGES:
                if bits & bit and bit not in first:
                    first[bit] = t
        return first, tracker.stages
    finally:
        sim.disconnect()


@pytest.mark.parametrize("seed", [0, 7])
def test_expert_episode_reaches_every_stage_in_order(seed):
    first, bits = _first_times(seed, drive=True)
    assert bits == st.ALL_STAGES, st.stage_names(bits)
    times = [first[bit] for _, bit in st.STAGES]
    print(f"seed {seed}: first times (s) reached/grasped/placed/released: {np.round(times, 2)}")
    assert times == sorted(times) and len(set(times)) == 4, times
    assert 2.0 < times[0] < 3.6  # during the descent (2.0 .. 3.2 s)
    assert 4.2 < times[1] < 5.4  # during the lift (4.2 .. 5.2 s)
    assert 7.2 < times[2] < 8.4  # end of the lowering (7.2 .. 8.2 s)


def test_an_arm_that_never_moves_reaches_no_stage():
    first, bits = _first_times(3, drive=False, duration=3.0)
    assert bits == 0 and first == {}


def test_bits_stay_set_until_reset():
    sim = SimBackend({"seed": 1})
    sim.connect()
    try:
        tracker = st.StageTracker(sim)
        # put the cube in the zone, resting: PLACED and RELEASED hold
        target = sim.object_poses()[TARGET][0]
        adr = sim._cube_qadr
        sim.data.qpos[adr : adr + 3] = [target[0], target[1], sim.config.cube_size / 2]
        sim.advance(0.2)
        assert tracker.update() == st.STAGE_PLACED | st.STAGE_RELEASED
        sim.reset_scene(1, True)  # cube out of the zone again: the bits stay
        sim.advance(0.05)
        assert st.current_stages(sim) == 0
        assert tracker.update() == st.STAGE_PLACED | st.STAGE_RELEASED
        tracker.reset()
        assert tracker.update() == 0
    finally:
        sim.disconnect()
