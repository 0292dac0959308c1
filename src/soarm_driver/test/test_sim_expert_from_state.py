"""The scripted expert finishing the task from an arbitrary state (issue 13, DAgger corrections).

In-process through the Gymnasium env soarm/PickPlace-v0 (the real SimBackend, the driver's arm
controller and stage tracker; no cameras): the state is produced by really driving the arm there
(a wrong plan, an interrupted plan, an odd start pose), then ScriptedExpert.start_from() plans from
the measured joints and the cube and zone poses of that moment and must finish the task.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from soarm_driver.sim.expert import ScriptedExpert
from soarm_driver.sim.scene import CUBE, TARGET
from soarm_driver.sim.stages import STAGE_GRASPED, STAGE_RELEASED

FPS = 30.0


@pytest.fixture(scope="module")
def env(blind_env):
    return blind_env


def poses(env):
    p = env.object_poses()
    return p[CUBE][0], p[CUBE][1], p[TARGET][0]


def drive(env, expert: ScriptedExpert, seconds: float, t0: float = 0.0) -> tuple[dict, list[np.ndarray]]:
    """Step the env with the expert's goals for `seconds` of sim time; the last info and the goals."""
    goals, info = [], {}
    for k in range(int(round(seconds * FPS))):
        goal = expert.command(t0 + k / FPS)
        goals.append(goal)
        _, _, _, _, info = env.step(goal)
    return info, goals


def finish_from_here(env) -> tuple[ScriptedExpert, dict, list[np.ndarray]]:
    """A fresh expert planned from the env's current state, run to the end of its plan (+0.5 s)."""
    expert = ScriptedExpert()
    cube, quat, zone = poses(env)
    expert.start_from(cube, quat, zone, env.sim.read_positions())
    assert expert.reach_error < 0.003
    info, goals = drive(env, expert, expert.duration + 0.5)
    return expert, info, goals


def assert_smooth(goals, first_from=None):
    g = np.array(([first_from] if first_from is not None else []) + goals)
    # max_joint_velocity 3 rad/s at 30 Hz = 0.1 rad per command
    assert np.abs(np.diff(g, axis=0)).max() < 0.1


@pytest.mark.parametrize("pose", [[0.6, -0.3, 0.5, 0.6, 0.8, 0.0], [-0.5, 0.1, 0.5, 0.9, -0.6, 0.0]])
def test_from_an_odd_arm_pose(env, pose):
    """Arm far from home (turned aside, wrist rolled, jaws closed; high or low): the whole task."""
    env.reset(seed=11, options={"arm_pose": pose})
    q0 = env.sim.read_positions()
    expert, info, goals = finish_from_here(env)
    assert not expert.held
    assert info["is_success"], info["stage_names"]
    assert_smooth(goals, q0)


def test_from_an_interrupted_descent(env):
    """The jaws stopped next to the cube mid-descent (as a policy that stalls there): raise first."""
    env.reset(seed=12)
    first = ScriptedExpert()
    cube, quat, zone = poses(env)
    first.start(cube, quat, zone, env.sim.read_positions())
    c = first.config
    drive(env, first, c.t_approach + 0.8 * c.t_descend)
    q0 = env.sim.read_positions()
    expert, info, goals = finish_from_here(env)
    assert not expert.held and expert.phase(0.0) == "raise"
    assert info["is_success"], info["stage_names"]
    assert_smooth(goals, q0)


def test_from_a_cube_in_the_jaws(env):
    """Stopped mid-carry with the cube lifted: it keeps the grip and carries it on (no new grasp)."""
    env.reset(seed=13)
    first = ScriptedExpert()
    cube, quat, zone = poses(env)
    first.start(cube, quat, zone, env.sim.read_positions())
    c = first.config
    info, _ = drive(env, first, c.t_approach + c.t_descend + c.t_close + c.t_lift + 0.4 * c.t_carry)
    assert info["stages"] & STAGE_GRASPED and not info["is_success"]
    expert, info, _ = finish_from_here(env)
    assert expert.held and expert.phase(0.0) == "lift"
    assert info["is_success"], info["stage_names"]


def test_from_a_displaced_cube(env):
    """The cube put down and released 9 cm off the zone (a policy's wrong placement): grasped again
    where it lies now and placed in the zone."""
    env.reset(seed=14)
    cube, quat, zone = poses(env)
    wrong = ScriptedExpert()
    offset = np.array([0.0, 0.09, 0.0]) * (-1 if zone[1] > 0 else 1)
    wrong.start(cube, quat, zone + offset, env.sim.read_positions())
    info, _ = drive(env, wrong, wrong.duration + 0.3)
    assert not info["stages"] & STAGE_RELEASED
    moved = poses(env)[0]
    assert np.linalg.norm(moved[:2] - cube[:2]) > 0.02  # it really moved
    expert, info, _ = finish_from_here(env)
    assert not expert.held
    assert info["is_success"], info["stage_names"]


def test_holds_cube_needs_closed_jaws_at_the_cube():
    expert = ScriptedExpert()
    q = np.array([0.0, -0.6, 0.9, 1.2, 0.0, 0.0])
    tool, _ = expert.ik.forward(q)
    assert expert.holds_cube(q, tool)
    assert not expert.holds_cube(q, tool + [0.0, 0.0, 0.05])  # cube elsewhere
    assert not expert.holds_cube(np.r_[q[:5], 0.8], tool)  # jaws open
