"""`evaluate` runs its episodes through the run_policy action: the server it hosts itself, or a
running `run_policy_server` (--action). Driver (mock backend: success a fixed time after each
reset) + policy (tiny random ACT checkpoint) as processes, no sim time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from soarm_act_policy.random_checkpoint import cached_random_checkpoint

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
EVALUATE = ROOT / "install" / "soarm_act_policy" / "lib" / "soarm_act_policy" / "evaluate"
H, W = 96, 128


def evaluate(out: Path, *flags) -> tuple[dict, str]:
    p = subprocess.run([str(EVALUATE), "--no-use-sim-time", "--hold-time", "0", "--output-dir", str(out), *flags],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads((out / "eval_report.json").read_text()), p.stdout


def test_evaluate_runs_episodes_as_run_policy_goals(start_node, ros_node, tmp_path):
    from soarm_msgs.msg import PolicyStatus

    ckpt = cached_random_checkpoint(tmp_path / "ckpts", "tiny", action_mean=[0.1, -0.2, 0.3, -0.4, 0.5, 0.6],
                                    action_std=[1e-4] * 6, state_std=[0.5] * 6)
    start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml", params={
        "backend": "mock", "mock.success_after": 5.0, "cameras.front.width": W, "cameras.front.height": H,
        "cameras.wrist.width": W, "cameras.wrist.height": H})
    start_node("soarm_act_policy", "policy", params_file=ROOT / "config" / "policy.yaml",
               params={"checkpoint": str(ckpt), "torch_threads": 1, "mode": "chunk", "image_size": [W, H]})
    seen = []
    ros_node.node.create_subscription(PolicyStatus, "policy_status", seen.append, 10)
    ros_node.wait_for(lambda: seen and seen[-1].state == PolicyStatus.HOLDING, 120, what="policy ready")

    # 1. the server hosted by evaluate: both episodes succeed (the mock's success after 5 s)
    report, stdout = evaluate(tmp_path / "hosted", "--num-episodes", "2", "--episode-time", "20", "--seed", "40")
    assert report["num_episodes"] == 2 and report["successes"] == 2 and report["errors"] == 0, stdout
    for i, ep in enumerate(report["episodes"]):
        assert ep["seed"] == 40 + i and ep["success"] and ep["error"] is None
        assert 0 < ep["time_to_success"] <= ep["duration"] < 20
        assert ep["control_steps"] > 0 and set(ep["skipped"]) == {"stale", "missing", "no_action"}
        assert ep["latency"]["count"] >= 1 and ep["stages"] is None  # the mock cannot tell stages
    assert report["episodes"][1]["episode_index"] == report["episodes"][0]["episode_index"] + 1
    assert report["stage_rates"] is None and (tmp_path / "hosted" / "eval_report.png").stat().st_size > 10_000

    # 2. a running run_policy_server (--action), an episode shorter than the mock's success: timeout
    start_node("soarm_act_policy", "run_policy_server")
    report, stdout = evaluate(tmp_path / "external", "--num-episodes", "1", "--episode-time", "2", "--action",
                              "run_policy", "--no-plot")
    ep = report["episodes"][0]
    assert report["successes"] == 0 and ep["error"] is None and ep["control_steps"] > 0, stdout
    assert 2.0 <= ep["duration"] < 5.0 and "FAILURE (timeout 2 s)" in stdout

    # 3. Ctrl-C during an episode: the goal is canceled, the policy disabled (it holds), exit 130.
    # evaluate starts with SIGINT ignored, as a background job of a shell script (or anything under
    # `nohup ... &`, this test run included) inherits it: Python then keeps it ignored unless
    # evaluate installs its handler itself (before it did, it ran the episode to the end, exit 0).
    running = len(seen)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through fork and exec
    try:
        p = subprocess.Popen([str(EVALUATE), "--no-use-sim-time", "--num-episodes", "1", "--episode-time", "60",
                              "--output-dir", str(tmp_path / "interrupted"), "--no-plot"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        ros_node.wait_for(lambda: any(s.state == PolicyStatus.RUNNING for s in seen[running:]), 120,
                          what="the policy running under evaluate")
        p.send_signal(signal.SIGINT)  # at once: the mock task succeeds ~4 s after the start
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, out[-3000:]
    assert "canceling the episode" in out and "CANCELED: canceled by the client" in out, out[-3000:]
    ros_node.wait_for(lambda: seen[-1].state == PolicyStatus.HOLDING, 10,
                      what="the policy holding after the interrupted evaluate")
    time.sleep(1.0)
    assert seen[-1].state == PolicyStatus.HOLDING, seen[-1].hold_reason
    assert json.loads((tmp_path / "interrupted" / "eval_report.json").read_text())["num_episodes"] == 0
