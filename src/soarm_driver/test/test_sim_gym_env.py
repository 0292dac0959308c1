"""The sim task as a Gymnasium env (sim/gym_env.py): registration, spaces, seeds, actions (no ROS)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import pytest
from soarm_driver.robot import UPPER_LIMITS as URDF_UPPER
from soarm_driver.sim.backend import DEFAULT_HOME, scene_from_seed
from soarm_driver.sim.expert import ScriptedExpert
from soarm_driver.sim.gym_registration import ENV_ID, register_envs
from soarm_driver.sim.scene import SceneConfig
from soarm_driver.sim.stages import ALL_STAGES

STATE = "observation.state"


@pytest.fixture(scope="module")
def env():
    register_envs()
    e = gym.make(ENV_ID)
    yield e.unwrapped
    e.close()


def test_registered_through_the_gymnasium_entry_point():
    from importlib import metadata

    eps = {ep.name: ep for ep in metadata.entry_points(group="gymnasium.envs")}
    if "soarm" not in eps:
        pytest.skip("soarm_driver's entry points are not installed (colcon build)")
    assert eps["soarm"].value == "soarm_driver.sim.gym_registration:register_envs"
    eps["soarm"].load()()
    assert ENV_ID in gym.registry


def test_spaces_and_observation_keys(env):
    obs, info = env.reset(seed=3)
    assert set(obs) == {STATE, "observation.images.front", "observation.images.wrist"}
    assert obs[STATE].shape == (6,) and obs[STATE].dtype == np.float32
    assert obs["observation.images.front"].shape == (96, 128, 3) and obs["observation.images.wrist"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (6,)
    np.testing.assert_allclose(obs[STATE], DEFAULT_HOME, atol=0.05)  # at home, settled
    labels = {"cube_position", "cube_yaw", "zone_position", "jaw_point"}
    assert {k: v for k, v in info.items() if k not in labels} == {
        "stages": 0, "stage_names": [], "is_success": False, "seed": 3, "time": 0.0}
    assert obs["observation.images.front"].std() > 1.0  # a rendered scene


def test_labels_in_info_and_a_still_scene_at_a_given_arm_pose(env):
    cube, yaw, zone = scene_from_seed(5, True, SceneConfig())
    pose = np.array([0.4, 0.3, 0.2, 1.0, -0.3, 0.6])
    obs, info = env.reset(seed=5, options={"arm_pose": pose})
    np.testing.assert_allclose(obs[STATE], pose, atol=1e-9)  # exactly there: no settling
    np.testing.assert_allclose(info["cube_position"], cube, atol=1e-9)
    assert info["cube_yaw"] == pytest.approx(yaw, abs=1e-9)
    np.testing.assert_allclose(info["zone_position"], zone, atol=1e-9)
    home_obs, home_info = env.reset(seed=5)
    # the jaw point moves with the arm; the scene does not
    assert np.linalg.norm(np.asarray(info["jaw_point"]) - home_info["jaw_point"]) > 0.02
    np.testing.assert_allclose(home_info["cube_position"], cube, atol=1e-9)
    assert np.abs(obs["observation.images.front"].astype(int) - home_obs["observation.images.front"]).mean() > 0.5


def test_same_seed_same_scene_as_the_driver(env):
    cube, yaw, zone = scene_from_seed(11, True, SceneConfig())
    a, _ = env.reset(seed=11)
    poses = env.object_poses()
    np.testing.assert_allclose(poses["cube"][0], cube, atol=1e-9)
    np.testing.assert_allclose(poses["target"][0], zone, atol=1e-9)
    np.testing.assert_allclose(poses["cube"][1], [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)], atol=1e-9)
    for _ in range(5):
        env.step(env.action_space.sample())
    b, _ = env.reset(seed=11)
    np.testing.assert_array_equal(a[STATE], b[STATE])
    np.testing.assert_array_equal(a["observation.images.front"], b["observation.images.front"])
    env.reset(seed=12)
    assert np.linalg.norm(env.object_poses()["cube"][0] - cube) > 1e-3
    _, info = env.reset()  # no seed: a scene seed drawn from the env's generator
    assert info["seed"] >= 0


def test_fixed_actions_move_the_arm_as_commanded(env):
    obs, _ = env.reset(seed=4)
    home = obs[STATE].astype(float)
    target = home + np.array([0.3, 0.2, -0.2, -0.2, 0.3, 0.2])
    for _ in range(45):  # 1.5 s holding the same goal
        obs, *_ = env.step(target)
    err = np.abs(obs[STATE] - target)
    assert err[:5].max() < 0.05, err  # the position actuators reach a held goal
    assert env.time == pytest.approx(1.5)

    # a far goal is approached at max_joint_velocity (3 rad/s) at most, then clamped to the limits
    env.reset(seed=4)
    far = np.array(URDF_UPPER) + 1.0
    start = env.arm.goal.copy()
    env.step(far)
    assert np.all(np.abs(env.arm.goal - start) <= 3.0 / 30 + 1e-9)
    for _ in range(60):
        env.step(far)
    np.testing.assert_allclose(env.arm.goal, URDF_UPPER, atol=1e-9)
    with pytest.raises(ValueError):
        env.step([0.0] * 5)
    with pytest.raises(ValueError):
        env.step([np.nan] * 6)


def test_the_scripted_expert_succeeds_through_the_env(env):
    expert = ScriptedExpert()
    obs, info = env.reset(seed=21)
    poses = env.object_poses()
    expert.start(poses["cube"][0], poses["cube"][1], poses["target"][0], obs[STATE])
    for k in range(400):
        obs, reward, terminated, truncated, info = env.step(expert.command((k + 1) / env.fps))
        if terminated or truncated:
            break
    assert terminated and not truncated and reward == 1.0
    assert info["is_success"] and info["stages"] == ALL_STAGES
    assert 8.5 < info["time"] < 10.5  # the expert's success at ~9.4 s, as through the driver


def test_options_image_size_fps_and_time_limit():
    register_envs()
    e = gym.make(ENV_ID, image_size=(64, 48), cameras=("front",), fps=10, episode_time=0.5)
    try:
        obs, _ = e.reset(seed=1)
        assert set(obs) == {STATE, "observation.images.front"} and obs["observation.images.front"].shape == (48, 64, 3)
        ends = []
        for _ in range(5):
            obs, _, terminated, truncated, info = e.step(obs[STATE])
            ends.append((terminated, truncated))
        assert ends[-1] == (False, True) and not any(t for _, t in ends[:-1])
        assert info["time"] == pytest.approx(0.5)
    finally:
        e.close()
