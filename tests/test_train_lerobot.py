"""The installed `train` executable runs LeRobot's real training on a real (tiny) dataset.

The dataset is written with LeRobot's own API (2 episodes x 40 frames, two 96x128 video
cameras, the project's features). Checks: LeRobot's checkpoint layout, the metrics
(L1, KL, loss, grad norm, lr), loading with ACTPolicy.from_pretrained + processors,
initial backbone weights from a local file, the --max-minutes time budget. (Resuming is covered
by tests/test_demo_smoke.py on a dataset converted from bags.)
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "install" / "soarm_act_policy" / "lib" / "soarm_act_policy" / "train"
REPO_ID = "local/soarm_synthetic"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from soarm_act_policy.training.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "ds"
    make_synthetic_dataset(root, repo_id=REPO_ID, episodes=2, frames=20, width=64, height=48)
    return root


def run_train(*args, env=None, timeout=600):
    assert TRAIN.exists(), f"{TRAIN} not installed: run scripts/setup.sh"
    proc = subprocess.run(
        [str(TRAIN), "--repo-id", REPO_ID, "--no-progress-bar", *args],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    return proc


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_checkpoint_and_load(dataset, tmp_path):
    import torch
    import torchvision

    weights = tmp_path / "r18.pth"
    init = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(init, weights)
    out = tmp_path / "run"
    common = ["--dataset-root", str(dataset), "--output-dir", str(out), "--num-workers", "0", "--log-freq", "1"]
    # the cpu preset with a tiny transformer given explicitly (explicit flags beat the preset)
    tiny = ["--dim-model", "32", "--n-heads", "2", "--dim-feedforward", "64", "--n-encoder-layers", "1", "--use-vae",
            "--n-vae-encoder-layers", "1", "--latent-dim", "8", "--chunk-size", "10", "--batch-size", "2"]
    # --max-minutes (here ~0): LeRobot saves the step just finished and stops (no checkpoint
    # would be due before step 500)
    p = run_train(*common, "--config", "cpu", *tiny, "--steps", "1000", "--save-freq", "500", "--max-minutes", "1e-6",
                  "--lr-backbone", "1e-12", "--pretrained-backbone", str(weights))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert '"step": 1' in p.stdout

    # LeRobot's layout
    ckpt = out / "checkpoints" / "000001"
    model_dir = ckpt / "pretrained_model"
    for name in ("config.json", "model.safetensors", "train_config.json", "policy_preprocessor.json",
                 "policy_postprocessor.json"):
        assert (model_dir / name).is_file(), name
    assert json.loads((ckpt / "training_state" / "training_step.json").read_text())["step"] == 1
    assert (out / "checkpoints" / "last").resolve() == ckpt.resolve()
    assert [d.name for d in (out / "checkpoints").iterdir() if not d.is_symlink()] == ["000001"]

    rows = metrics(out)
    assert [r["step"] for r in rows] == [1]
    for key in ("loss", "l1_loss", "kld_loss", "grad_norm", "lr"):
        assert all(r[key] == r[key] for r in rows), key  # present and not NaN
    assert rows[0]["lr"] > 0

    # loadable the LeRobot way; the initial backbone came from our file (backbone lr ~0)
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    policy = ACTPolicy.from_pretrained(out / "checkpoints" / "last" / "pretrained_model")
    assert policy.config.pretrained_backbone_weights is None
    from soarm_act_policy.training.presets import PRESETS

    assert (policy.config.chunk_size, policy.config.n_action_steps, policy.config.dim_model) == (10, 10, 32)
    assert policy.config.optimizer_lr == PRESETS["cpu"]["lr"]  # from the preset
    assert torch.allclose(policy.model.backbone.conv1.weight, init["conv1.weight"], atol=1e-6)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(model_dir))
    policy.eval()
    obs = {
        "observation.state": torch.zeros(6),
        "observation.images.front": torch.rand(3, 48, 64),
        "observation.images.wrist": torch.rand(3, 48, 64),
        "task": "Put the cube in the target zone",
    }
    batch = {k: (v.unsqueeze(0) if hasattr(v, "unsqueeze") else v) for k, v in obs.items()}
    with torch.no_grad():
        action = post(policy.select_action(pre(batch)))
    assert tuple(action.shape) == (1, 6) and torch.isfinite(action).all()


def test_imagenet_without_network_fails_fast(dataset, tmp_path, monkeypatch, capsys):
    """The CLI stops with an actionable message before LeRobot builds anything (no hang)."""
    import torch

    from soarm_act_policy.training.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    out = tmp_path / "run"
    rc = main(["--repo-id", REPO_ID, "--dataset-root", str(dataset), "--output-dir", str(out), "--config", "cpu",
               "--pretrained-backbone", "imagenet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--pretrained-backbone none" in err and "not cached" in err
    assert not out.exists()


def test_zero_backbone_learning_rate_freezes_the_pretrained_backbone(dataset, tmp_path):
    """--lr-backbone 0: the backbone's gradients are not computed (LeRobot's optimizer gets an empty
    backbone group), its weights stay exactly the initial ones, and the rest of ACT trains."""
    import torch
    import torchvision
    from lerobot.policies.act.modeling_act import ACTPolicy

    weights = tmp_path / "r18.pth"
    init = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(init, weights)
    out = tmp_path / "run"
    p = run_train("--dataset-root", str(dataset), "--output-dir", str(out), "--num-workers", "0", "--config", "cpu",
                  "--dim-model", "32", "--n-heads", "2", "--dim-feedforward", "64", "--n-encoder-layers", "1",
                  "--n-vae-encoder-layers", "1", "--latent-dim", "8", "--chunk-size", "10", "--batch-size", "2",
                  "--steps", "2", "--save-freq", "2", "--log-freq", "1", "--lr", "1e-2", "--lr-backbone", "0",
                  "--pretrained-backbone", str(weights))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "backbone frozen" in p.stdout + p.stderr
    state = out / "checkpoints" / "last" / "training_state"
    groups = json.loads((state / "optimizer_param_groups.json").read_text())
    assert [len(g["params"]) > 0 for g in groups] == [True, False]  # transformer group, empty backbone group
    policy = ACTPolicy.from_pretrained(out / "checkpoints" / "last" / "pretrained_model")
    assert policy.config.optimizer_lr_backbone == 0.0
    for name, tensor in policy.model.backbone.state_dict().items():
        if name in init:
            assert torch.equal(tensor, init[name]), name
    assert all(r["grad_norm"] > 0 for r in metrics(out))  # the transformer did get gradients
