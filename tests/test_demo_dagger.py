"""One tiny DAgger round of the simulated demo, end to end (issue 13, item 4).

scripts/demo.py --dagger-rounds 1 with 2 scripted demos and a tiny ACT (2 steps: it cannot do the
task, so it stalls): sim driver + policy + evaluate roll it out with the scripted expert as the
human (teleop take_over_after) and the recorder keeping the episode -> the expert's correction
window appended to the dataset (bag_to_lerobot --frames corrections) -> train --resume 2 more steps
-> the evaluation rerun on the same seed. Asserts each link: the take-over happened and was
recorded, the dataset grew by the correction, the step count continued, the evaluation reran and
the summary reports before/after rates and the interventions.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scripts" / "demo.py"

pytestmark = [pytest.mark.slow, pytest.mark.dds]
TINY_MODEL = [f"--train-arg={a}" for a in ("--dim-model=32", "--n-heads=2", "--dim-feedforward=64",
                                           "--n-encoder-layers=1", "--n-vae-encoder-layers=1", "--latent-dim=8",
                                           "--batch-size=2", "--num-workers=0")]


def test_one_tiny_dagger_round(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, str(DEMO), "--output-dir", str(out), "--domain-id", os.environ["ROS_DOMAIN_ID"],
                        "--demos", "2", "--train-steps", "2", "--train-minutes", "0", "--pretrain-minutes", "0",
                        "--eval-episodes", "1", "--episode-time", "3", "--validation-seeds", "2000", *TINY_MODEL,
                        "--dagger-rounds", "1", "--dagger-episodes", "1", "--dagger-take-over-after", "1.5",
                        "--dagger-episode-time", "18", "--dagger-steps", "2", "--dagger-train-minutes", "0"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"demo failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    assert "DAgger round 1/1" in p.stdout and "before DAgger:" in p.stdout and "after round 1:" in p.stdout
    rd = out / "dagger" / "round_1"

    # rollout: the expert took over the stalled policy (over DDS, through the driver) ...
    assert "taking over" in (out / "logs" / "teleop.log").read_text()
    rollout = json.loads((rd / "rollout" / "eval_report.json").read_text())
    assert rollout["num_episodes"] == 1 and rollout["episodes"][0]["seed"] == 3000
    assert rollout["interventions"] == 1 and rollout["human_time"] > 1.0
    # ... and the recorder kept the episode
    assert len([b for b in (rd / "bags").iterdir() if b.is_dir()]) == 1

    # convert: the correction window became an episode of the demo dataset (same features, no label)
    info = json.loads((out / "dataset" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3
    assert "intervention" not in info["features"]
    summary = json.loads((out / "demo_summary.json").read_text())
    r1 = summary["dagger"]["rounds"][0]
    assert r1["corrections"]["episodes"] == 1 and r1["corrections"]["frames"] > 30
    assert r1["corrections"]["dataset_frames"] == info["total_frames"]

    # train: resumed from step 2 on demonstrations + corrections
    assert r1["trained_steps"] == 4
    step = json.loads((out / "train" / "checkpoints" / "last" / "training_state" / "training_step.json").read_text())
    assert step["step"] == 4

    # evaluate: rerun on the same unseen seed with the new checkpoint; before/after in the summary
    after = json.loads((rd / "eval" / "eval_report.json").read_text())
    before = json.loads((out / "eval" / "eval_report.json").read_text())
    assert after["num_episodes"] == 1 and after["episodes"][0]["seed"] == before["episodes"][0]["seed"] == 1000
    assert summary["dagger"]["before"]["episodes"] == 1
    assert r1["eval"]["report"] == str(rd / "eval" / "eval_report.json")
    assert set(r1["eval"]["stage_rates"]) == {"reached", "grasped", "placed", "released"}
    assert r1["rollout"]["interventions"] == 1
