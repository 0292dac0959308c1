"""Command line -> settings -> LeRobot ``TrainPipelineConfig`` (ROS-free, unit-testable).

``parse_args`` records only the flags the user typed; ``resolve_settings`` layers them over
the preset and the defaults (presets.py); ``build_train_config`` turns the settings into
LeRobot's own ``TrainPipelineConfig`` with an ``ACTConfig`` policy.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .backbone import CHOICES_HELP
from .presets import DEFAULTS, PRESETS

CHECKPOINTS_DIR = "checkpoints"
LAST_LINK = "last"
PRETRAINED_DIR = "pretrained_model"
TRAIN_CONFIG_FILE = "train_config.json"
#: <output-dir>/<this>: the run's settings that LeRobot's train_config.json does not keep; --resume
#: takes them from there unless typed again.
RUN_SETTINGS_FILE = "soarm_train_settings.json"
RUN_SETTINGS = ("torch_threads", "cache_frozen_backbone", "cache_decoded_frames")

# Settings that may change when resuming (the rest is fixed by the checkpoint's config).
RESUME_OVERRIDABLE = {
    "steps", "num_workers", "log_freq", "save_freq", "progress_bar", "wandb_enable",
    "wandb_project", "wandb_entity", "wandb_notes", "device", "torch_threads", "max_minutes",
    "cache_frozen_backbone", "cache_decoded_frames",
}


class TrainConfigError(ValueError):
    """Invalid combination of training flags or missing inputs."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train",
        description="Train LeRobot's ACT policy on a LeRobot dataset (LeRobot's own training loop, "
        "checkpoints in LeRobot's layout). Precedence: defaults < --config preset < explicit flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Presets:\n"
        + "\n".join(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()) for name,
                    values in PRESETS.items()),
    )
    S = argparse.SUPPRESS

    def d(key):  # help suffix showing the default
        return f" (default: {DEFAULTS[key]})"

    g = p.add_argument_group("data and output")
    g.add_argument("--repo-id", required=True, help="dataset repo id, e.g. local/soarm_sim_demos")
    g.add_argument("--output-dir", required=True, type=Path, help="run directory: checkpoints/<step>/, logs")
    g.add_argument("--dataset-root", type=Path, default=S,
                   help="local dataset directory (the one holding meta/info.json), or a directory holding "
                   "<repo-id>/ (default: $HF_LEROBOT_HOME/<repo-id>, else the Hugging Face Hub)")
    g.add_argument("--episodes", type=int, nargs="+", default=S, help="train on these episode indices only")
    g.add_argument("--config", choices=sorted(PRESETS), default=S,
                   help="preset: baseline/large (GPU, ACT training guide) or cpu (small, the simulated demo)")

    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=_positive_int, default=S, help="batch size" + d("batch_size"))
    g.add_argument("--steps", type=_positive_int, default=S, help="total training steps" + d("steps"))
    g.add_argument("--num-workers", type=_non_negative_int, default=S, help="dataloader workers" + d("num_workers"))
    g.add_argument("--seed", type=int, default=S, help="random seed" + d("seed"))
    g.add_argument("--device", default=S, help="auto | cpu | cuda | cuda:N | mps" + d("device"))
    g.add_argument("--torch-threads", type=_non_negative_int, default=S,
                   help="torch intra-op CPU threads, 0 = torch default" + d("torch_threads"))
    g.add_argument("--cache-frozen-backbone", action=argparse.BooleanOptionalAction, default=S,
                   help="with --lr-backbone 0: run each distinct frame through the frozen backbone once and reuse "
                   "its feature map (same losses; a CPU update costs about half; memory up to 1 GiB)"
                   + d("cache_frozen_backbone"))
    g.add_argument("--cache-decoded-frames", action=argparse.BooleanOptionalAction, default=S,
                   help="without image augmentation: keep each sample's decoded frames (uint8, up to 2 GiB per "
                   "dataloader worker) instead of decoding them again every epoch" + d("cache_decoded_frames"))

    g = p.add_argument_group("ACT")
    g.add_argument("--chunk-size", type=_positive_int, default=S, help="action chunk size" + d("chunk_size"))
    g.add_argument("--n-action-steps", type=_positive_int, default=S,
                   help="actions executed per query" + d("n_action_steps")
                   + "; capped at --chunk-size when only the chunk size is given")
    g.add_argument("--lr", type=_positive_float, default=S, help="learning rate" + d("lr"))
    g.add_argument("--lr-backbone", type=_non_negative_float, default=S,
                   help="backbone learning rate (default: --lr); 0 freezes the backbone (e.g. one from "
                   "pretrain_backbone): its gradients are not computed, about half the cost of a CPU step")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"), default=S,
                   help="constant (ACT's preset) or cosine: LeRobot's cosine decay from --lr to --lr/10 over --steps "
                   "(short warm-up; a run stopped by --max-minutes stops mid-decay)" + d("lr_schedule"))
    g.add_argument("--weight-decay", type=float, default=S, help="AdamW weight decay" + d("weight_decay"))
    g.add_argument("--kl-weight", type=float, default=S, help="KL divergence weight (VAE)" + d("kl_weight"))
    g.add_argument("--dropout", type=_fraction, default=S, help="transformer dropout" + d("dropout"))
    g.add_argument("--vision-backbone", default=S, help="torchvision ResNet" + d("vision_backbone"))
    g.add_argument("--pretrained-backbone", default=S, metavar="WEIGHTS",
                   help=f"initial backbone weights: {CHOICES_HELP}" + d("pretrained_backbone"))
    g.add_argument("--dim-model", type=_positive_int, default=S, help="transformer width" + d("dim_model"))
    g.add_argument("--n-heads", type=_positive_int, default=S, help="attention heads" + d("n_heads"))
    g.add_argument("--dim-feedforward", type=_positive_int, default=S, help="feed-forward width" + d("dim_feedforward"))
    g.add_argument("--n-encoder-layers", type=_positive_int, default=S, help="encoder layers" + d("n_encoder_layers"))
    g.add_argument("--n-decoder-layers", type=_positive_int, default=S, help="decoder layers" + d("n_decoder_layers"))
    g.add_argument("--use-vae", action=argparse.BooleanOptionalAction, default=S, help="VAE objective" + d("use_vae"))
    g.add_argument("--latent-dim", type=_positive_int, default=S, help="VAE latent size" + d("latent_dim"))
    g.add_argument("--n-vae-encoder-layers", type=_positive_int, default=S,
                   help="VAE encoder layers" + d("n_vae_encoder_layers"))

    g = p.add_argument_group("logging and checkpointing")
    g.add_argument("--log-freq", type=_positive_int, default=S, help="log metrics every N steps" + d("log_freq"))
    g.add_argument("--save-freq", type=_positive_int, default=S, help="checkpoint every N steps" + d("save_freq"))
    g.add_argument("--max-minutes", type=_positive_float, default=S,
                   help="time budget: after this many minutes save a checkpoint of the current step and stop "
                   "(resume later with --resume) (default: none)")
    g.add_argument("--progress-bar", action=argparse.BooleanOptionalAction, default=S,
                   help="tqdm progress bar" + d("progress_bar"))
    g.add_argument("--wandb-enable", action="store_true", default=S, help="log to Weights & Biases")
    g.add_argument("--wandb-project", default=S, help="wandb project" + d("wandb_project"))
    g.add_argument("--wandb-entity", default=S, help="wandb entity/team")
    g.add_argument("--wandb-notes", default=S, help="wandb run notes")

    g = p.add_argument_group("advanced")
    g.add_argument("--resume", action="store_true", default=False,
                   help="resume from <output-dir>/checkpoints/last (its config is kept; --steps etc. may change)")
    g.add_argument("--push", action="store_true", default=False,
                   help="push checkpoints and the final policy to the Hub")
    g.add_argument("--policy-repo-id", default=S, help="Hub repo for --push (default: <repo-id>_act)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def explicit_settings(args: argparse.Namespace) -> dict:
    """The settings the user typed (argparse SUPPRESS keeps untyped flags out)."""
    skip = {"repo_id", "output_dir", "config", "resume", "push", "dataset_root", "episodes", "policy_repo_id"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def resolve_settings(args: argparse.Namespace) -> dict:
    """DEFAULTS < preset < explicit flags, plus derived values."""
    explicit = explicit_settings(args)
    preset = PRESETS[args.config] if getattr(args, "config", None) else {}
    settings = {**DEFAULTS, **preset, **explicit}
    if "lr_backbone" not in explicit and "lr" in explicit:
        settings["lr_backbone"] = settings["lr"]
    if "n_action_steps" not in explicit and settings["n_action_steps"] > settings["chunk_size"]:
        settings["n_action_steps"] = settings["chunk_size"]
    if settings["n_action_steps"] > settings["chunk_size"]:
        raise TrainConfigError(
            f"--n-action-steps {settings['n_action_steps']} exceeds --chunk-size {settings['chunk_size']}"
        )
    if settings["dim_model"] % settings["n_heads"]:
        raise TrainConfigError(
            f"--dim-model {settings['dim_model']} is not divisible by --n-heads {settings['n_heads']}")
    settings.update(
        repo_id=args.repo_id,
        output_dir=Path(args.output_dir),
        config=getattr(args, "config", None),
        resume=bool(args.resume),
        push=bool(args.push),
        dataset_root=getattr(args, "dataset_root", None),
        episodes=getattr(args, "episodes", None),
        policy_repo_id=getattr(args, "policy_repo_id", None) or f"{args.repo_id}_act",
        explicit=sorted(explicit),
    )
    return settings


def resolve_dataset_root(repo_id: str, dataset_root: Path | None) -> Path | None:
    """The concrete dataset directory (holding meta/info.json), or None to use the Hub.

    Accepts the dataset directory itself or a parent holding <repo_id>/. Without
    --dataset-root, $HF_LEROBOT_HOME/<repo_id> is used when it exists.
    """
    if dataset_root is not None:
        root = Path(dataset_root).expanduser()
        for candidate in (root, root / repo_id):
            if (candidate / "meta" / "info.json").is_file():
                return candidate.resolve()
        raise TrainConfigError(
            f"--dataset-root {root}: no LeRobot dataset there (expected {root}/meta/info.json or "
            f"{root / repo_id}/meta/info.json). Convert bags first: bag_to_lerobot ..."
        )
    from lerobot.utils.constants import HF_LEROBOT_HOME

    local = Path(HF_LEROBOT_HOME) / repo_id
    if (local / "meta" / "info.json").is_file():
        return local
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise TrainConfigError(
            f"dataset {repo_id!r} is not on this machine ({local}) and HF_HUB_OFFLINE is set: "
            "pass --dataset-root <dir> or unset HF_HUB_OFFLINE to download it from the Hub"
        )
    return None


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def last_checkpoint(output_dir: Path) -> Path:
    """<output_dir>/checkpoints/last (resolved), checked to be a complete checkpoint."""
    last = Path(output_dir) / CHECKPOINTS_DIR / LAST_LINK
    cfg = last / PRETRAINED_DIR / TRAIN_CONFIG_FILE
    if not cfg.is_file() or not (last / "training_state").is_dir():
        raise TrainConfigError(
            f"--resume: no checkpoint to resume in {output_dir} (expected {cfg} and "
            f"{last / 'training_state'}/); run without --resume first"
        )
    return last.resolve()


def _verify_resume_checkpoint(pretrained: Path) -> None:
    """The checkpoint LeRobot will resume from passes the loading checks (processor steps, strict weights)."""
    from ..checkpoint import CheckpointError, resolve_checkpoint, verify_checkpoint

    try:
        verify_checkpoint(resolve_checkpoint(str(pretrained)))
    except CheckpointError as e:
        raise TrainConfigError(f"--resume: {e}") from None


def _check_resume_config(cfg, pretrained: Path) -> None:
    """LeRobot resumes with the policy of train_config.json (not config.json): it must be ACT without PEFT,
    set nothing `train` never writes (an env, a reward model, PEFT, sample weighting, a remote job: each
    makes LeRobot load or run more), and model.safetensors must match that policy."""
    from ..checkpoint import CheckpointError, check_weights

    file = pretrained / TRAIN_CONFIG_FILE
    policy_type = getattr(cfg.policy, "type", None)
    unexpected = [] if policy_type == "act" else [f"policy type {policy_type!r}"]
    if getattr(cfg.policy, "use_peft", False):
        unexpected.append("policy.use_peft")
    unexpected += [name for name in ("env", "reward_model", "peft", "sample_weighting")
                   if getattr(cfg, name, None) is not None]
    if getattr(getattr(cfg, "job", None), "target", None):
        unexpected.append("job.target")
    if unexpected:
        raise TrainConfigError(
            f"--resume: {file} sets {', '.join(unexpected)}, which `train` never writes; refusing to resume "
            "from it (resume only checkpoints written by `train`)"
        )
    try:
        check_weights(pretrained, cfg.policy)
    except CheckpointError as e:
        raise TrainConfigError(f"--resume: {e} (the policy of {file})") from None


@dataclass
class TrainJob:
    """A ready-to-run LeRobot training: its config and what the runner must do around it."""

    cfg: object  # lerobot TrainPipelineConfig
    settings: dict
    resume_from: Path | None = None  # checkpoint dir (…/checkpoints/<step>) when resuming


def build_train_config(settings: dict) -> TrainJob:
    """Settings -> LeRobot TrainPipelineConfig (fresh run) or the checkpoint's config (resume)."""
    from lerobot.configs.default import DatasetConfig, WandBConfig
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.policies.act.configuration_act import ACTConfig

    output_dir = Path(settings["output_dir"]).expanduser().resolve()
    device = resolve_device(settings["device"])
    if settings["resume"]:
        ckpt = last_checkpoint(output_dir)
        fixed = [k for k in settings["explicit"] if k not in RESUME_OVERRIDABLE]
        if fixed:
            raise TrainConfigError(
                "--resume keeps the checkpoint's model and optimizer settings; these flags cannot change "
                f"on resume: {', '.join('--' + k.replace('_', '-') for k in fixed)}"
            )
        _verify_resume_checkpoint(ckpt / PRETRAINED_DIR)
        cfg = TrainPipelineConfig.from_pretrained(ckpt / PRETRAINED_DIR / TRAIN_CONFIG_FILE)
        _check_resume_config(cfg, ckpt / PRETRAINED_DIR)
        cfg.resume = True
        cfg.output_dir = output_dir
        saved = output_dir / RUN_SETTINGS_FILE
        if saved.is_file():
            run = json.loads(saved.read_text())
            settings.update({k: run[k] for k in RUN_SETTINGS if k in run and k not in settings["explicit"]})
        for key in settings["explicit"]:
            if key == "steps":
                cfg.steps = settings["steps"]
            elif key in ("num_workers", "log_freq", "save_freq"):
                setattr(cfg, key, settings[key])
            elif key == "device":
                cfg.policy.device = device
            elif key.startswith("wandb_"):
                setattr(cfg.wandb, "enable" if key == "wandb_enable" else key[len("wandb_"):], settings[key])
        return TrainJob(cfg=cfg, settings=settings, resume_from=ckpt)

    if output_dir.exists():
        raise TrainConfigError(
            f"--output-dir {output_dir} already exists: pass --resume to continue "
            "that run, or choose a new directory"
        )
    root = resolve_dataset_root(settings["repo_id"], settings["dataset_root"])
    policy = ACTConfig(
        device=device,
        chunk_size=settings["chunk_size"],
        n_action_steps=settings["n_action_steps"],
        vision_backbone=settings["vision_backbone"],
        # Initial weights are loaded by the runner; the checkpoint never needs a download.
        pretrained_backbone_weights=None,
        dim_model=settings["dim_model"],
        n_heads=settings["n_heads"],
        dim_feedforward=settings["dim_feedforward"],
        n_encoder_layers=settings["n_encoder_layers"],
        n_decoder_layers=settings["n_decoder_layers"],
        use_vae=settings["use_vae"],
        latent_dim=settings["latent_dim"],
        n_vae_encoder_layers=settings["n_vae_encoder_layers"],
        dropout=settings["dropout"],
        kl_weight=settings["kl_weight"],
        optimizer_lr=settings["lr"],
        optimizer_lr_backbone=settings["lr_backbone"],
        optimizer_weight_decay=settings["weight_decay"],
        push_to_hub=settings["push"],
        repo_id=settings["policy_repo_id"] if settings["push"] else None,
    )
    cfg = TrainPipelineConfig(
        dataset=DatasetConfig(
            repo_id=settings["repo_id"],
            root=str(root) if root else None,
            episodes=settings["episodes"],
        ),
        policy=policy,
        output_dir=output_dir,
        job_name=f"act_{output_dir.name}",
        seed=settings["seed"],
        num_workers=settings["num_workers"],
        batch_size=settings["batch_size"],
        steps=settings["steps"],
        log_freq=settings["log_freq"],
        save_freq=settings["save_freq"],
        save_checkpoint_to_hub=settings["push"],
        wandb=WandBConfig(
            enable=settings["wandb_enable"],
            project=settings["wandb_project"],
            entity=settings["wandb_entity"],
            notes=settings["wandb_notes"],
        ),
    )
    # LeRobot's ACT training preset builds AdamW (lr, backbone lr, weight decay, grad clip 10)
    # from the policy config in TrainPipelineConfig.validate(); ACT's preset has no schedule.
    if settings["lr_schedule"] == "cosine":
        from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig

        cfg.use_policy_training_preset = False
        cfg.optimizer = policy.get_optimizer_preset()
        cfg.scheduler = CosineDecayWithWarmupSchedulerConfig(
            num_warmup_steps=max(1, min(100, settings["steps"] // 20)), num_decay_steps=settings["steps"],
            peak_lr=settings["lr"], decay_lr=settings["lr"] / 10)
    return TrainJob(cfg=cfg, settings=settings)
