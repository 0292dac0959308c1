"""Registers the sim task with Gymnasium (cheap: imports neither MuJoCo nor the env).

soarm_driver's setup.py names `register_envs` in the `gymnasium.envs` entry-point group,
so a program that loads that group (older Gymnasium did it at import; 1.x does not, see
`soarm_act_policy.evaluation.rollout.load_gym_plugins`) can then call
``gymnasium.make("soarm/PickPlace-v0", ...)`` without importing soarm_driver by name.
"""

from __future__ import annotations

ENV_ID = "soarm/PickPlace-v0"
ENTRY_POINT = "soarm_driver.sim.gym_env:PickPlaceEnv"


def register_envs() -> None:
    """Register ``soarm/PickPlace-v0`` (idempotent)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        # No max_episode_steps: the env ends episodes itself after `episode_time` s of sim time.
        gymnasium.register(id=ENV_ID, entry_point=ENTRY_POINT, disable_env_checker=True)
