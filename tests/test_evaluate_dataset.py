"""`evaluate --repo-id`: the rollouts saved straight into a LeRobot dataset (issue 13, item 5).

Driver (mock backend with two small cameras: success 2.5 s after each reset) + policy (tiny random
ACT) as processes over DDS; evaluate runs the recorder itself and converts the bags after the last
episode. Run 1: two successful episodes -> a new dataset, outcome `success`, no interventions. Run 2
appends one episode that a human takes over (/driver/select_source human, nobody drives, so it times
out): outcome `timeout`, one intervention with its time, frames labelled `intervention`. Bad flag
combinations exit 2 with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from soarm_act_policy.conversion.episode_meta import read_episode_columns
from soarm_act_policy.random_checkpoint import cached_random_checkpoint

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
EVALUATE = ROOT / "install" / "soarm_act_policy" / "lib" / "soarm_act_policy" / "evaluate"
H, W = 96, 128  # the tiny checkpoint's image size
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}


def evaluate_cmd(out: Path, *flags) -> list[str]:
    return [str(EVALUATE), "--no-use-sim-time", "--hold-time", "0", "--no-plot", "--output-dir", str(out), *flags]


def test_evaluate_saves_its_rollouts_as_a_dataset(start_node, ros_node, tmp_path):
    from soarm_msgs.msg import EpisodeEvent, PolicyStatus
    from soarm_msgs.srv import SelectSource

    ckpt = cached_random_checkpoint(tmp_path / "ckpts", "tiny", action_mean=[0.1, -0.2, 0.3, -0.4, 0.5, 0.6],
                                    action_std=[1e-4] * 6, state_std=[0.5] * 6)
    start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml", params={
        "backend": "mock", "mock.success_after": 2.5, "cameras.front.width": W, "cameras.front.height": H,
        "cameras.wrist.width": W, "cameras.wrist.height": H})
    start_node("soarm_act_policy", "policy", params_file=ROOT / "config" / "policy.yaml",
               params={"checkpoint": str(ckpt), "torch_threads": 1, "mode": "chunk", "image_size": [W, H]})
    status = []
    ros_node.node.create_subscription(PolicyStatus, "policy_status", status.append, 10)
    ros_node.wait_for(lambda: status and status[-1].state == PolicyStatus.HOLDING, 120, what="policy ready")
    root = tmp_path / "eval_dataset"

    # run 1: two successes -> a new dataset
    p = subprocess.run(evaluate_cmd(tmp_path / "run1", "--num-episodes", "2", "--episode-time", "8", "--seed", "70",
                                    "--repo-id", "local/eval_test", "--root", str(root)),
                       capture_output=True, text=True, timeout=300, env=ENV)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "dataset local/eval_test: 2 episodes" in p.stdout
    assert len([b for b in (tmp_path / "run1" / "bags").iterdir() if b.is_dir()]) == 2
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and "observation.images.front" in info["features"]
    assert "intervention" in info["features"]  # always in a rollout dataset (False here: nobody took over)
    cols = read_episode_columns(root)
    assert [cols[i]["soarm/seed"] for i in (0, 1)] == [-1, -1]  # the mock has no scene seeds
    assert [cols[i]["soarm/outcome"] for i in (0, 1)] == ["success", "success"]
    assert [cols[i]["soarm/interventions"] for i in (0, 1)] == [0, 0]

    # run 2: a human takes over the episode (nobody drives): timeout, one intervention, appended
    events = []
    ros_node.node.create_subscription(EpisodeEvent, "episode_events", events.append, 10)
    proc = subprocess.Popen(evaluate_cmd(tmp_path / "run2", "--num-episodes", "1", "--episode-time", "0.5",
                                         "--seed", "90", "--repo-id", "local/eval_test", "--root", str(root)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        ros_node.wait_for(lambda: any(e.kind == EpisodeEvent.STARTED for e in events), 120,
                          what="run 2's episode STARTED")
        answer = ros_node.call(SelectSource, "/driver/select_source",
                               SelectSource.Request(source="human", reason="test takes over"))
        assert answer.success, answer.message
        stdout, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        ros_node.call(SelectSource, "/driver/select_source", SelectSource.Request(source="policy", reason="test"))
    assert proc.returncode == 0, stdout[-3000:]
    report = json.loads((tmp_path / "run2" / "eval_report.json").read_text())
    assert report["episodes"][0]["outcome"] == "timeout" and report["interventions"] == 1
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3
    cols = read_episode_columns(root)
    assert cols[2]["soarm/outcome"] == "timeout"
    assert cols[2]["soarm/interventions"] == 1 and 0.2 < cols[2]["soarm/human_time_s"] < 10
    import pyarrow.parquet as pq

    frames = pq.read_table(sorted((root / "data").glob("*/*.parquet"))[-1]).to_pydict()
    flags = [(bool(f[0]) if isinstance(f, list) else bool(f), e) for f, e in zip(frames["intervention"],
                                                                                 frames["episode_index"])]
    assert any(f for f, e in flags if e == 2) and not any(f for f, e in flags if e < 2)
    assert cols[0]["soarm/outcome"] == "success"  # earlier episodes keep their labels


@pytest.mark.parametrize("flags,message", [
    (["--root", "x"], "give --repo-id too"),
    (["--repo-id", "a/b", "--no-video"], "videos only"),
])
def test_evaluate_dataset_flags_refused(tmp_path, flags, message):
    p = subprocess.run(evaluate_cmd(tmp_path, *flags), capture_output=True, text=True, timeout=120, env=ENV)
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_display_data_without_rerun_is_a_clear_error(tmp_path):
    pytest.importorskip("rclpy")
    try:
        import rerun  # noqa: F401
        pytest.skip("rerun is installed: the viewer would start")
    except ImportError:
        pass
    p = subprocess.run(evaluate_cmd(tmp_path, "--display-data"), capture_output=True, text=True, timeout=120,
                       env=ENV)
    assert p.returncode == 2 and "pip install rerun-sdk" in p.stderr, p.stderr
