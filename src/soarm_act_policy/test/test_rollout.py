"""In-process rollouts (evaluation/rollout.py): the sim env through Gymnasium's registry, a tiny
random checkpoint through LeRobot's select_action and through our ControlLoop (no ROS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
from soarm_act_policy.evaluation import rollout as ro
from soarm_act_policy.random_checkpoint import cached_random_checkpoint

pytest.importorskip("gymnasium")
if not any(ep.name == "soarm" for ep in metadata.entry_points(group=ro.PLUGIN_GROUP)):
    pytest.skip("soarm_driver's gymnasium entry point is not installed (colcon build)", allow_module_level=True)

STATE = "observation.state"


@pytest.fixture(scope="session")
def varied_ckpt(tmp_path_factory):
    """Tiny random ACT whose actions vary with the input (action std 0.2 rad around a pose)."""
    return cached_random_checkpoint(tmp_path_factory.getbasetemp() / "policy_ckpts", "tiny_varied_radians",
                                    action_mean=[0.0, -0.6, 0.9, 1.0, 0.0, 0.4], action_std=[0.2] * 6,
                                    state_mean=[0.0, -1.2, 1.3, 1.0, 0.0, 0.3], state_std=[0.5] * 6, seed=3)


@pytest.fixture(scope="module")
def env():
    e = ro.make_env(episode_time=2.0)
    yield e
    e.close()


def test_env_is_reached_through_the_registry_without_importing_the_driver():
    code = (
        "import sys\n"
        "from soarm_act_policy.evaluation import rollout as ro\n"
        "assert not [m for m in sys.modules if m.startswith('soarm_driver')]\n"
        "assert 'soarm' in ro.load_gym_plugins()\n"
        "env = ro.make_env(image_size=(64, 48))\n"
        "obs, info = env.reset(seed=5)\n"
        "print(sorted(obs), obs['observation.images.front'].shape, info['seed'])\n"
        "env.close()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "['observation.images.front', 'observation.images.wrist', 'observation.state'] (48, 64, 3) 5" in p.stdout
    source = Path(ro.__file__).read_text()
    assert "import soarm_driver" not in source and "from soarm_driver" not in source


def test_parse_seeds_and_driver_params(tmp_path):
    assert ro.parse_seeds(["1000-1002", "7", "9,11"]) == [1000, 1001, 1002, 7, 9, 11]
    base, demo = tmp_path / "driver.yaml", tmp_path / "demo.yaml"
    base.write_text("/**:\n  ros__parameters:\n    control_rate_hz: 60.0\n"
                    "    home_pose: [0.0, -1.2, 1.3, 1.0, 0.0, 0.3]\n"
                    "    joint_upper_limits: [1, 1, 1, 1, 1, 1]\n    camera_names: [front, wrist]\n"
                    "    cameras:\n      front: {width: 640, height: 480, fps: 30.0}\n"
                    "      wrist: {width: 640, height: 480}\n")
    demo.write_text("/**:\n  ros__parameters:\n    home_pose: [0.0, 0.0, 0.0, 0.0, 0.0, 0.3]\n"
                    "    cameras:\n      front: {width: 80, height: 60}\n"
                    "    sim: {scene_spread: 0.3, seed: 4, randomize: false}\n")
    kw = ro.env_kwargs_from_driver_params([base, demo])
    assert kw == {"home_pose": [0.0, 0.0, 0.0, 0.0, 0.0, 0.3], "joint_upper_limits": [1, 1, 1, 1, 1, 1],
                  "control_rate_hz": 60.0, "image_size": (80, 60), "randomize": False, "sim": {"scene_spread": 0.3}}
    root = Path(__file__).resolve().parents[3]  # the real files parse too
    kw = ro.env_kwargs_from_driver_params([root / "config" / "driver.yaml", root / "config" / "demo" / "driver.yaml"])
    assert len(kw["home_pose"]) == 6 and len(kw["image_size"]) == 2


def test_both_paths_roll_out_with_keys_shapes_and_seeded_scenes(varied_ckpt, tmp_path):
    report = ro.evaluate_checkpoint(varied_ckpt, [5, 5, 6], ["lerobot", "loop-chunk"],
                                    env_kwargs={"episode_time": 0.3}, progress=False)
    assert set(report["paths"]) == {"lerobot", "loop-chunk"} and report["seeds"] == [5, 5, 6]
    assert report["env"]["image_size"] == [128, 96]
    cubes = {}
    for name, s in report["paths"].items():
        assert s["num_episodes"] == 3 and s["errors"] == 0 and 0.0 <= s["success_rate"] <= 1.0
        assert set(s["stage_rates"]) == {"reached", "grasped", "placed", "released"}
        for ep in s["episodes"]:
            assert ep["steps"] == 9 and ep["duration"] == pytest.approx(0.3) and isinstance(ep["stages"], int)
            assert len(ep["final_state"]) == 6 and "actions" not in ep
        a, b, c = s["episodes"]
        assert a["cube_start"] == b["cube_start"] != c["cube_start"]  # same seed, same scene
        np.testing.assert_array_equal(a["final_state"], b["final_state"])  # and the same episode
        cubes[name] = a["cube_start"]
    assert cubes["lerobot"] == cubes["loop-chunk"]
    ro.write_json(report, tmp_path / ro.REPORT_JSON)
    assert json.loads((tmp_path / ro.REPORT_JSON).read_text())["paths"]["lerobot"]["num_episodes"] == 3


def _actions(env, runner, seed=7, steps=25):
    ep = ro.rollout_episode(env, runner, seed, max_steps=steps, record=True)
    assert ep.error is None and ep.steps == steps
    return np.array(ep.actions)


def test_control_loop_plays_what_lerobot_plays(env, varied_ckpt):
    """In-process, our ControlLoop and LeRobot's select_action send the same actions: chunk mode =
    LeRobot's n_action_steps queue, ensemble mode = LeRobot's temporal ensembling."""
    runners = {r.name: r for r in ro.make_runners(varied_ckpt, ["lerobot", "loop-chunk", "lerobot-ensemble",
                                                                 "loop-ensemble"], n_action_steps=10)}
    try:
        chunk = _actions(env, runners["loop-chunk"])
        queue = _actions(env, runners["lerobot"])
        assert np.ptp(chunk, axis=0).max() > 0.01  # the actions do vary
        np.testing.assert_allclose(chunk, queue, atol=1e-5)
        ens = _actions(env, runners["loop-ensemble"], steps=12)
        lerobot_ens = _actions(env, runners["lerobot-ensemble"], steps=12)
        np.testing.assert_allclose(ens, lerobot_ens, atol=1e-4)
        assert runners["loop-chunk"].holds == 0 and runners["loop-ensemble"].holds == 0
    finally:
        for r in runners.values():
            r.close()


def test_learning_curve_helper_and_cli(varied_ckpt, tmp_path):
    rows = ro.evaluate_checkpoints([varied_ckpt, varied_ckpt], [3], ["loop-chunk"],
                                   env_kwargs={"episode_time": 0.2, "image_size": (64, 48)}, progress=False)
    assert [r["paths"]["loop-chunk"]["num_episodes"] for r in rows] == [1, 1]
    assert rows[0]["paths"]["loop-chunk"]["episodes"][0]["final_state"] == \
        rows[1]["paths"]["loop-chunk"]["episodes"][0]["final_state"]
    rc = ro.main([str(varied_ckpt), "--seeds", "4", "--paths", "lerobot", "--episode-time", "0.2",
                  "--output-dir", str(tmp_path), "--no-progress", "--torch-threads", "1"])
    assert rc == 0
    rep = json.loads((tmp_path / ro.REPORT_JSON).read_text())
    assert rep["paths"]["lerobot"]["episodes"][0]["seed"] == 4 and rep["settings"]["paths"] == ["lerobot"]
    with pytest.raises(ValueError, match="unknown path"):
        ro.make_runners(varied_ckpt, ["nope"])
