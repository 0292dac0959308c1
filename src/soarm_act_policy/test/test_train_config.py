"""Unit tests of the train CLI's config building: presets, overrides, inputs, backbone weights.

ROS-free; builds real LeRobot TrainPipelineConfig/ACTConfig objects, no training.
"""

import json
import time

import pytest

from soarm_act_policy.training import backbone
from soarm_act_policy.training.config import (
    TrainConfigError,
    build_train_config,
    parse_args,
    resolve_dataset_root,
    resolve_settings,
)
from soarm_act_policy.training.presets import DEFAULTS, PRESETS


def settings_for(*extra, tmp_path=None):
    out = str((tmp_path or "/nonexistent") / "run") if tmp_path else "/nonexistent/run"
    return resolve_settings(parse_args(["--repo-id", "local/x", "--output-dir", out, *extra]))


def fake_dataset(root):
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text("{}")
    return root


def test_seed_defaults_without_preset():
    s = settings_for()
    assert (s["batch_size"], s["steps"], s["num_workers"], s["seed"]) == (8, 100_000, 4, 1000)
    assert (s["chunk_size"], s["n_action_steps"], s["lr"], s["kl_weight"], s["dropout"]) == (100, 100, 1e-5, 10.0, 0.1)
    assert (s["log_freq"], s["save_freq"], s["progress_bar"]) == (250, 5000, True)
    assert (s["wandb_enable"], s["wandb_project"]) == (False, "soarm-act-training")
    assert s["explicit"] == [] and s["config"] is None


def test_large_preset_values():
    s = settings_for("--config", "large")
    keys = ("dim_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "latent_dim")
    assert tuple(s[k] for k in keys) == (1024, 16, 6, 1, 64)
    assert (s["lr"], s["lr_backbone"], s["steps"]) == (5e-6, 1e-6, 200_000)


def test_baseline_preset_values():
    s = settings_for("--config", "baseline")
    keys = ("dim_model", "n_heads", "n_encoder_layers", "latent_dim", "lr", "lr_backbone")
    assert tuple(s[k] for k in keys) == (512, 8, 4, 32, 1e-5, 1e-5)


def test_explicit_flags_override_preset():
    s = settings_for("--config", "large", "--dim-model", "512", "--steps", "7", "--no-use-vae", "--no-progress-bar")
    assert (s["dim_model"], s["steps"], s["use_vae"], s["progress_bar"]) == (512, 7, False, False)
    assert s["n_heads"] == 16  # untouched preset value
    assert set(s["explicit"]) == {"dim_model", "steps", "use_vae", "progress_bar"}


def test_explicit_lr_sets_backbone_lr_unless_given():
    assert settings_for("--config", "large", "--lr", "3e-4")["lr_backbone"] == 3e-4
    s = settings_for("--config", "large", "--lr", "3e-4", "--lr-backbone", "1e-7")
    assert (s["lr"], s["lr_backbone"]) == (3e-4, 1e-7)


def test_n_action_steps_follows_smaller_chunk_but_not_beyond():
    assert settings_for("--chunk-size", "20")["n_action_steps"] == 20
    with pytest.raises(TrainConfigError, match="exceeds"):
        settings_for("--chunk-size", "20", "--n-action-steps", "30")


def test_bad_values_rejected_by_parser(capsys):
    for bad in (["--steps", "0"], ["--dropout", "1.5"], ["--config", "huge"], ["--batch-size", "-1"]):
        with pytest.raises(SystemExit):
            settings_for(*bad)


def test_heads_must_divide_dim():
    with pytest.raises(TrainConfigError, match="divisible"):
        settings_for("--dim-model", "100", "--n-heads", "8")


def test_build_config_carries_settings_into_lerobot(tmp_path):
    root = fake_dataset(tmp_path / "ds")
    s = settings_for("--config", "cpu", "--dataset-root", str(root), "--steps", "12", "--kl-weight", "3",
                     "--wandb-enable", "--wandb-entity", "me", tmp_path=tmp_path)
    job = build_train_config(s)
    cfg, pol = job.cfg, job.cfg.policy
    assert job.resume_from is None and cfg.resume is False
    assert cfg.steps == 12 and cfg.batch_size == PRESETS["cpu"]["batch_size"]
    assert cfg.dataset.repo_id == "local/x" and cfg.dataset.root == str(root.resolve())
    assert cfg.output_dir == (tmp_path / "run").resolve()
    assert (cfg.log_freq, cfg.save_freq, cfg.seed) == (PRESETS["cpu"]["log_freq"], PRESETS["cpu"]["save_freq"], 1000)
    assert (cfg.wandb.enable, cfg.wandb.project, cfg.wandb.entity) == (True, "soarm-act-training", "me")
    assert pol.type == "act" and pol.device == "cpu"
    assert (pol.dim_model, pol.chunk_size, pol.kl_weight, pol.optimizer_lr) == (
        PRESETS["cpu"]["dim_model"], PRESETS["cpu"]["chunk_size"], 3.0, PRESETS["cpu"]["lr"])
    # checkpoints never need a download to load
    assert pol.pretrained_backbone_weights is None
    assert pol.push_to_hub is False and cfg.save_checkpoint_to_hub is False


def test_push_targets_policy_repo(tmp_path):
    root = fake_dataset(tmp_path / "ds")
    job = build_train_config(settings_for("--dataset-root", str(root), "--push", tmp_path=tmp_path))
    assert job.cfg.policy.push_to_hub and job.cfg.policy.repo_id == "local/x_act" and job.cfg.save_checkpoint_to_hub


def test_existing_output_dir_needs_resume(tmp_path):
    root = fake_dataset(tmp_path / "ds")
    (tmp_path / "run").mkdir()
    with pytest.raises(TrainConfigError, match="already exists.*--resume"):
        build_train_config(settings_for("--dataset-root", str(root), tmp_path=tmp_path))


def test_resume_without_checkpoint_is_clear(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(TrainConfigError, match="no checkpoint to resume"):
        build_train_config(settings_for("--resume", tmp_path=tmp_path))


def test_resume_refuses_model_changes(tmp_path):
    last = tmp_path / "run" / "checkpoints" / "000010"
    (last / "pretrained_model").mkdir(parents=True)
    (last / "pretrained_model" / "train_config.json").write_text("{}")
    (last / "training_state").mkdir()
    (tmp_path / "run" / "checkpoints" / "last").symlink_to("000010")
    with pytest.raises(TrainConfigError, match="cannot change on resume: --dim-model, --lr"):
        build_train_config(settings_for("--resume", "--steps", "20", "--dim-model", "128", "--lr", "1e-3",
                                        tmp_path=tmp_path))


def test_dataset_root_accepts_dataset_dir_or_parent(tmp_path):
    ds = fake_dataset(tmp_path / "parent" / "local" / "x")
    assert resolve_dataset_root("local/x", ds) == ds.resolve()
    assert resolve_dataset_root("local/x", tmp_path / "parent") == ds.resolve()
    with pytest.raises(TrainConfigError, match="no LeRobot dataset there"):
        resolve_dataset_root("local/x", tmp_path / "empty")


def test_missing_dataset_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("lerobot.utils.constants.HF_LEROBOT_HOME", tmp_path)
    with pytest.raises(TrainConfigError, match="HF_HUB_OFFLINE"):
        resolve_dataset_root("nobody/nothing", None)


# --------------------------------------------------------------------------- backbone weights


def test_backbone_none():
    assert backbone.load_backbone_state("none") is None


def test_imagenet_offline_fails_fast_with_actionable_message(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    t0 = time.monotonic()
    with pytest.raises(backbone.BackboneWeightsError) as e:
        backbone.load_backbone_state("imagenet", "resnet18")
    assert time.monotonic() - t0 < 30  # no download attempt (generous bound; never a hang)
    msg = str(e.value)
    assert "--pretrained-backbone none" in msg and "resnet18-" in msg and str(tmp_path / "hub") in msg


def test_imagenet_unreachable_host_fails_fast(tmp_path, monkeypatch):
    import torch

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SOARM_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbone, "_host_reachable", lambda url, timeout: False)
    with pytest.raises(backbone.BackboneWeightsError, match="unreachable"):
        backbone.load_backbone_state("imagenet", "resnet18")


def test_imagenet_from_torch_cache(tmp_path, monkeypatch):
    import torch
    import torchvision

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cache = backbone.imagenet_cache_file("resnet18")
    cache.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cache)
    state = backbone.load_backbone_state("imagenet", "resnet18")
    assert "layer4.1.bn2.running_var" in state and not any(k.startswith("fc.") for k in state)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_backbone_file(tmp_path, suffix):
    import torch
    import torchvision

    sd = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / f"r18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save({"state_dict": sd}, path)
    state = backbone.load_backbone_state(str(path), "resnet18")
    assert torch.equal(state["conv1.weight"], sd["conv1.weight"])


def test_local_backbone_wrong_architecture(tmp_path):
    import torch
    import torchvision

    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(backbone.BackboneWeightsError, match="not a resnet18 state dict"):
        backbone.load_backbone_state(str(path), "resnet18")
    with pytest.raises(backbone.BackboneWeightsError, match="no such file"):
        backbone.load_backbone_state(str(tmp_path / "missing.pth"), "resnet18")


def test_defaults_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    for flag in ("--repo-id", "--output-dir", "--dataset-root", "--batch-size", "--steps", "--num-workers", "--seed",
                 "--chunk-size", "--n-action-steps", "--lr", "--kl-weight", "--dropout", "--log-freq", "--save-freq",
                 "--progress-bar", "--no-progress-bar", "--wandb-enable", "--wandb-project", "--wandb-entity",
                 "--wandb-notes", "--resume", "--push", "--config", "--pretrained-backbone"):
        assert flag in out, flag
    assert json.dumps(DEFAULTS["wandb_project"]).strip('"') in out


def test_cosine_schedule_is_lerobots_decay_over_the_steps(tmp_path):
    root = fake_dataset(tmp_path / "ds")
    constant = build_train_config(settings_for("--dataset-root", str(root), "--lr", "2e-4", tmp_path=tmp_path)).cfg
    constant.validate()
    assert constant.scheduler is None  # ACT's own preset: constant rate
    cosine = build_train_config(settings_for("--dataset-root", str(root), "--lr", "2e-4", "--steps", "4000",
                                             "--lr-schedule", "cosine", tmp_path=tmp_path)).cfg
    cosine.validate()
    sched = cosine.scheduler
    assert sched.type == "cosine_decay_with_warmup" and (sched.num_decay_steps, sched.num_warmup_steps) == (4000, 100)
    assert (sched.peak_lr, sched.decay_lr) == (2e-4, 2e-5) and cosine.optimizer.lr == 2e-4
