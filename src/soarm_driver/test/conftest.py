"""Fixtures shared by the driver package's sim tests."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium
import pytest

from soarm_driver.sim.gym_registration import ENV_ID, register_envs


@pytest.fixture(scope="module")
def blind_env():
    """soarm/PickPlace-v0 without cameras (physics and stages only), 60 s episodes, not ended on success."""
    register_envs()
    e = gymnasium.make(ENV_ID, cameras=(), episode_time=60.0, terminate_on_success=False)
    yield e.unwrapped
    e.close()
