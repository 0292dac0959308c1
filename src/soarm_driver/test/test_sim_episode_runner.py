"""EpisodeRunner (the scripted teleop's episode logic) against the real SimBackend, no ROS."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from soarm_driver.sim.backend import SimBackend
from soarm_driver.sim.episode_runner import EpisodeRunner
from soarm_driver.sim.expert import ScriptedExpert

DT = 1 / 30


@pytest.fixture(scope="module")
def expert():
    return ScriptedExpert()


@pytest.fixture
def sim():
    backend = SimBackend({"seed": 0, "home_pose": [0.0, 0.0, 0.0, 0.0, 0.0, 0.3]})
    backend.connect()
    yield backend
    backend.disconnect()


def publish_world(sim, runner):
    """What the driver publishes each tick: joints and object poses stamped now."""
    runner.on_joints(sim.read_positions())
    for name, (pos, quat) in sim.object_poses().items():
        runner.on_object(name, sim.time, pos, quat)


def run(sim, runner, seconds, on_tick=None):
    goals = []
    for _ in range(int(round(seconds / DT))):
        publish_world(sim, runner)
        goal = runner.tick(sim.time)
        if goal is not None:
            goals.append(goal)
            sim.write_goal_positions(goal)
        if on_tick:
            on_tick()
        sim.advance(DT)
    return goals


def test_idle_until_started_then_success_then_stops(sim, expert):
    runner = EpisodeRunner(expert, episode_timeout=20.0, post_success_time=1.0, log=lambda *a: None)
    assert run(sim, runner, 0.5) == []  # no episode: nothing sent
    sim.reset_scene(21, True)
    runner.on_started(0, sim.time)

    def report_success():
        if sim.task_outcome() == "success":
            runner.on_success(0, sim.time)

    goals = run(sim, runner, 13.0, report_success)
    assert runner.result(0) == "success"
    assert not runner.active
    # ~9.4 s to success + 1 s post-success at 30 Hz, then silence.
    assert 9.5 * 30 <= len(goals) <= 11.5 * 30


def test_waits_for_poses_of_the_new_scene(sim, expert):
    runner = EpisodeRunner(expert, episode_timeout=20.0, post_success_time=1.0, log=lambda *a: None)
    publish_world(sim, runner)  # poses of the old scene, stamped before STARTED
    sim.advance(DT)
    runner.on_started(3, sim.time)
    assert runner.tick(sim.time) is None  # the old poses must not be used
    assert runner.tick(sim.time + 1.0) is None
    sim.advance(DT)
    publish_world(sim, runner)
    assert runner.tick(sim.time) is not None


def test_times_out_without_success(sim, expert):
    logs = []
    runner = EpisodeRunner(expert, episode_timeout=2.0, post_success_time=1.0, log=lambda lvl, txt: logs.append((lvl,
                                                                                                                 txt)))
    runner.on_started(5, sim.time)
    goals = run(sim, runner, 3.0)
    assert runner.result(5) == "timeout"
    assert 1.8 * 30 <= len(goals) <= 2.1 * 30
    assert any(lvl == "warning" and "no SUCCESS after 2 s" in txt for lvl, txt in logs)


def test_other_episodes_events_are_ignored_and_end_stops(sim, expert):
    runner = EpisodeRunner(expert, episode_timeout=20.0, post_success_time=1.0, log=lambda *a: None)
    runner.on_started(7, sim.time)
    runner.on_end(6)  # an older episode's ENDED
    runner.on_success(6, sim.time)
    sim.advance(DT)
    assert len(run(sim, runner, 0.5)) > 10
    runner.on_end(7, "ended")
    assert runner.result(7) == "ended" and run(sim, runner, 0.3) == []


def test_motion_starts_from_the_measured_arm_pose(sim, expert):
    sim.write_goal_positions(np.array([0.4, -0.3, 0.5, 0.2, 0.1, 0.6]))
    sim.advance(1.0)
    runner = EpisodeRunner(expert, episode_timeout=20.0, post_success_time=1.0, log=lambda *a: None)
    runner.on_started(0, sim.time)
    sim.advance(DT)
    publish_world(sim, runner)
    np.testing.assert_allclose(runner.tick(sim.time), sim.read_positions())  # no jump at the start


def test_a_stall_of_the_ticks_delays_the_plan_instead_of_jumping(sim, expert):
    from soarm_driver.sim.episode_runner import MAX_PLAN_STEP

    runner = EpisodeRunner(expert, episode_timeout=20.0, post_success_time=1.0, log=lambda *a: None)
    runner.on_started(0, sim.time)
    sim.advance(DT)
    goals = run(sim, runner, 0.5)  # into the approach: a joint-space move, the same goal for the same time
    plan_time = (len(goals) - 1) * DT  # to within the sim clock's timestep rounding
    now = sim.time + 1.0  # the next tick comes 1 s late (a starved process)
    after = runner.tick(now)
    np.testing.assert_allclose(after, expert.command(plan_time + MAX_PLAN_STEP), atol=0.01)
    assert np.abs(after - expert.command(plan_time + 1.0)).max() > 0.1  # where a jump would have put it
    np.testing.assert_allclose(runner.tick(now + DT), expert.command(plan_time + MAX_PLAN_STEP + DT),
                               atol=0.01)  # on time again
