"""IK and the scripted expert, driving the real SimBackend in-process (no ROS)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from soarm_driver.sim.backend import SimBackend
from soarm_driver.sim.expert import ExpertConfig, ScriptedExpert, min_jerk, yaw_of
from soarm_driver.sim.ik import ArmIK, rotation_error
from soarm_driver.sim.scene import CUBE, TARGET

DOWN = np.column_stack([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


@pytest.fixture(scope="module")
def expert():
    return ScriptedExpert()


@pytest.mark.parametrize("target", [(0.17, -0.08, 0.02), (0.22, 0.0, 0.05), (0.27, 0.1, 0.01), (0.2, 0.05, 0.08)])
def test_ik_reaches_top_down_targets(target):
    ik = ArmIK()
    q, err = ik.solve(target, DOWN, np.array([0.0, -0.6, 0.9, 1.2, 0.0, 0.4]), iters=200)
    pos, rot = ik.forward(q)
    assert err < 1e-3 and np.linalg.norm(pos - target) < 1e-3
    assert np.linalg.norm(rotation_error(DOWN, rot)) < 0.05
    assert np.all(q[:5] >= ik.lower[:5] - 1e-9) and np.all(q[:5] <= ik.upper[:5] + 1e-9)
    assert q[5] == 0.4  # the gripper is not an IK joint


def test_ik_position_first_when_orientation_is_unreachable():
    ik = ArmIK()
    target = (0.2, 0.0, 0.16)  # too high to point straight down (wrist_flex limit)
    q, err = ik.solve(target, DOWN, np.array([0.0, -0.6, 0.9, 1.2, 0.0, 0.0]), iters=200)
    _, rot = ik.forward(q)
    assert err < 1e-3
    assert np.linalg.norm(rotation_error(DOWN, rot)) > 0.05


def test_ik_reports_unreachable_targets():
    _, err = ArmIK().solve((0.8, 0.0, 0.1), None, None, iters=100)
    assert err > 0.2


def test_min_jerk_and_yaw():
    assert min_jerk(0) == 0 and min_jerk(1) == 1 and min_jerk(0.5) == pytest.approx(0.5)
    assert min_jerk(-1) == 0 and min_jerk(2) == 1
    assert yaw_of([np.cos(0.3), 0, 0, np.sin(0.3)]) == pytest.approx(0.6)


def test_grasp_rotation_points_down_and_straddles_a_face(expert):
    yaw = 0.5
    quat = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
    rot = expert.grasp_rotation(np.array([0.22, 0.05, 0.0125]), quat)
    np.testing.assert_allclose(rot[:, 0], [0, 0, -1], atol=1e-12)
    jaw_angle = np.arctan2(rot[1, 2], rot[0, 2])
    # The jaw axis is a face normal of the cube: yaw + k*90 degrees.
    assert np.isclose(np.cos(4 * (jaw_angle - yaw)), 1.0)


def run_episode(expert: ScriptedExpert, seed: int, home=None) -> tuple[float | None, list[np.ndarray]]:
    sim = SimBackend({"seed": seed, **({"home_pose": home} if home is not None else {})})
    sim.connect()
    try:
        sim.advance(0.3)
        poses = sim.object_poses()
        expert.start(poses[CUBE][0], poses[CUBE][1], poses[TARGET][0], sim.read_positions())
        assert expert.reach_error < 1e-3
        goals, t, success_at = [], 0.0, None
        while t < expert.duration + 0.3:
            goal = expert.command(t)
            goals.append(goal)
            sim.write_goal_positions(goal)
            sim.advance(1 / 30)
            t += 1 / 30
            if success_at is None and sim.task_outcome() == "success":
                success_at = t
        return success_at, goals
    finally:
        sim.disconnect()


@pytest.mark.parametrize("seed,home", [(0, None), (2, [0.0] * 6), (3, [0.0, 0.0, 0.0, 0.0, 0.0, 0.3])])
def test_expert_succeeds(expert, seed, home):
    success_at, goals = run_episode(expert, seed, home)
    assert success_at is not None, f"seed {seed}: the cube did not end up in the zone"
    assert success_at <= expert.duration + 0.1
    steps = np.abs(np.diff(np.array(goals), axis=0))
    # Smooth: no goal jumps between consecutive 30 Hz commands (< 3 rad/s).
    assert steps.max() < 0.1, steps.max(axis=0)


def test_expert_is_repeatable(expert):
    _, a = run_episode(expert, 5)
    _, b = run_episode(expert, 5)
    np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-9)


def test_expert_phases(expert):
    c = ExpertConfig()
    expert.start(np.array([0.22, -0.07, 0.0125]), [1, 0, 0, 0], np.array([0.22, 0.07, 0.0]), np.zeros(6))
    assert expert.phase(0.0) == "approach"
    assert expert.phase(c.t_approach + 0.01) == "descend"
    assert expert.phase(expert.duration - 0.01) == "retreat"
    assert expert.phase(expert.duration + 1) == "hold"
    np.testing.assert_allclose(expert.command(expert.duration + 1), expert.command(expert.duration + 2))
    with pytest.raises(RuntimeError):
        ScriptedExpert().command(0.0)
