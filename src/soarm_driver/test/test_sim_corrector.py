"""CorrectingRunner: the scripted expert takes over a stalled policy and finishes the task.

In-process through soarm/PickPlace-v0 (real SimBackend, arm controller, stage tracker): the env's
stages, poses and joints are fed as the teleop node feeds the driver's topics; `select` stands in
for /driver/select_source and records the switches. The "policy" is a command stream applied while
the runner does not drive.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from soarm_driver.sim.corrector import CorrectingRunner
from soarm_driver.sim.expert import ScriptedExpert

FPS = 30.0


@pytest.fixture(scope="module")
def env(blind_env):
    return blind_env


class Switches:
    def __init__(self, answers=()):
        self.calls: list[tuple[bool, str]] = []
        self.answers = list(answers)

    def __call__(self, human: bool, reason: str) -> bool:
        self.calls.append((human, reason))
        return self.answers.pop(0) if self.answers else True


def run(env, runner: CorrectingRunner, policy, seconds: float, seed: int, index: int = 0):
    """One episode: STARTED at t=0, then per step the runner's goal (when it drives) or the policy's."""
    _, info = env.reset(seed=seed)
    runner.on_started(index, 0.0)
    log = []
    for k in range(1, int(seconds * FPS)):
        now = k / FPS
        runner.on_joints(env.sim.read_positions())
        for name, (pos, quat) in env.object_poses().items():
            runner.on_object(name, now, pos, quat)
        runner.on_stages(index, info["stages"], now)
        if info["is_success"]:
            runner.on_success(index, now)
        goal = runner.tick(now)
        driver = "human" if goal is not None else "policy"
        if goal is None:
            goal = policy(now, env)
        _, _, _, _, info = env.step(goal)
        log.append((now, driver, info["stages"]))
    return info, log


def still_policy(now, env):
    return env.home  # a policy that never moves: no progress at all


def test_takes_over_a_stalled_policy_and_finishes(env):
    switches = Switches()
    runner = CorrectingRunner(ScriptedExpert(), episode_timeout=30.0, post_success_time=0.5, take_over_after=2.0,
                              select=switches, log=lambda *a: None)
    info, log = run(env, runner, still_policy, 16.0, seed=21)
    assert info["is_success"]
    first_human = next(t for t, who, _ in log if who == "human")
    assert 2.0 <= first_human < 2.2  # taken over take_over_after after STARTED (nothing reached)
    assert switches.calls[0][0] is True and "no progress for 2.0 s" in switches.calls[0][1]
    assert switches.calls[-1][0] is False and len(switches.calls) == 2  # handed back once, after SUCCESS
    assert runner.result(0) == "success" and not runner.in_control
    assert runner.take_overs[0][1] == 0 and runner.take_overs[0][2] is False


def test_no_take_over_while_the_policy_progresses(env):
    """A 'policy' that is the expert itself (a new stage every few seconds) is never interrupted."""
    expert = ScriptedExpert()
    planned = {}

    def good_policy(now, env):
        if not planned:
            poses = env.object_poses()
            expert.start(poses["cube"][0], poses["cube"][1], poses["target"][0], env.sim.read_positions())
            planned["t0"] = now
        return expert.command(now - planned["t0"])

    switches = Switches()
    runner = CorrectingRunner(ScriptedExpert(), episode_timeout=30.0, post_success_time=0.5, take_over_after=4.0,
                              select=switches, log=lambda *a: None)
    info, log = run(env, runner, good_policy, 12.0, seed=22)
    assert info["is_success"]
    assert switches.calls == [] and all(who == "policy" for _, who, _ in log)
    assert runner.take_overs == {}


def test_a_refused_switch_is_retried_later_and_nothing_streams_meanwhile(env):
    switches = Switches(answers=[False])
    runner = CorrectingRunner(ScriptedExpert(), episode_timeout=30.0, post_success_time=0.5, take_over_after=1.0,
                              select=switches, log=lambda *a: None)
    info, log = run(env, runner, still_policy, 3.5, seed=23)
    humans = [t for t, who, _ in log if who == "human"]
    assert [c[0] for c in switches.calls] == [True, True]
    assert humans and 2.0 <= humans[0] < 2.2  # refused at 1 s, asked again 1 s later


def test_hand_back_when_the_episode_ends_under_the_expert(env):
    switches = Switches()
    runner = CorrectingRunner(ScriptedExpert(), episode_timeout=30.0, post_success_time=0.5, take_over_after=1.0,
                              select=switches, log=lambda *a: None)
    run(env, runner, still_policy, 3.0, seed=24)
    assert runner.in_control
    runner.on_end(0, "ended")  # e.g. the evaluator's time limit and reset
    assert runner.tick(3.1) is None
    assert [c[0] for c in switches.calls] == [True, False] and not runner.in_control
    assert runner.result(0) == "ended"


def test_take_over_after_must_be_positive():
    with pytest.raises(ValueError, match="take_over_after"):
        CorrectingRunner(ScriptedExpert(), 30.0, 1.0, 0.0, select=lambda h, r: True)


def test_stages_of_another_episode_are_not_progress():
    runner = CorrectingRunner(ScriptedExpert(), 30.0, 1.0, 1.0, select=lambda h, r: True, log=lambda *a: None)
    runner.on_started(5, 0.0)
    runner.on_stages(4, 3, 0.9)
    runner.on_joints(np.zeros(6))
    for name in ("cube", "target"):
        runner.on_object(name, 0.5, [0.2, 0.0, 0.0125], [1, 0, 0, 0])
    assert runner.tick(1.05) is not None  # stalled since STARTED: episode 4's stages did not count
