"""Randomly initialised ACT checkpoints in LeRobot's exact layout (tests, benchmarks).

Saved through LeRobot itself (`policy.save_pretrained` and the processors'
`save_pretrained`), so they load exactly like a checkpoint written by lerobot-train.
Normalization statistics are given (or computed from a few fake frames); an action
std close to zero makes the un-normalized output sit at the action mean whatever the
random weights do, which lets tests check units and joint order end to end.

    python -m soarm_act_policy.random_checkpoint OUT_DIR --preset tiny
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PRESETS = {
    # Tests: fast on one CPU core.
    "tiny": dict(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
                 n_vae_encoder_layers=1, latent_dim=8, chunk_size=20, n_action_steps=20),
    # A CPU-sized model worth training on 128x96 images.
    "cpu": dict(dim_model=256, n_heads=8, dim_feedforward=1024, n_encoder_layers=2, n_decoder_layers=1,
                n_vae_encoder_layers=2, latent_dim=32, chunk_size=50, n_action_steps=50),
    # The seeds' baseline (LeRobot defaults without ImageNet download): a GPU configuration.
    "baseline": dict(dim_model=512, n_heads=8, dim_feedforward=3200, n_encoder_layers=4, n_decoder_layers=1,
                     n_vae_encoder_layers=4, latent_dim=32, chunk_size=100, n_action_steps=100),
}


def make_random_checkpoint(
    out_dir: str | Path,
    *,
    preset: str = "tiny",
    cameras: Sequence[str] = ("front", "wrist"),
    image_hw: tuple[int, int] = (96, 128),
    state_dim: int = 6,
    action_dim: int = 6,
    state_mean: Sequence[float] | None = None,
    state_std: Sequence[float] | None = None,
    action_mean: Sequence[float] | None = None,
    action_std: Sequence[float] | None = None,
    seed: int = 0,
    **overrides,
) -> Path:
    """Write a random ACT checkpoint to out_dir (the pretrained_model directory) and return it."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    h, w = image_hw
    image_keys = [f"observation.images.{c}" for c in cameras]
    input_features = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))}
    for k in image_keys:
        input_features[k] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w))
    output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}
    params = {**PRESETS[preset], **overrides}
    config = ACTConfig(
        input_features=input_features,
        output_features=output_features,
        pretrained_backbone_weights=None,
        device="cpu",
        push_to_hub=False,
        **params,
    )

    def vec(v, n, default):
        return torch.tensor(np.asarray(v if v is not None else default(n), dtype=np.float32))

    # Image statistics from a few fake frames, as LeRobot computes them (per channel).
    frames = rng.integers(0, 256, size=(4, 3, h, w)).astype(np.float32) / 255.0
    img_stats = {
        "mean": torch.tensor(frames.mean(axis=(0, 2, 3)).reshape(3, 1, 1)),
        "std": torch.tensor(frames.std(axis=(0, 2, 3)).reshape(3, 1, 1)),
        "min": torch.zeros(3, 1, 1),
        "max": torch.ones(3, 1, 1),
    }
    s_mean = vec(state_mean, state_dim, np.zeros)
    s_std = vec(state_std, state_dim, np.ones)
    a_mean = vec(action_mean, action_dim, np.zeros)
    a_std = vec(action_std, action_dim, np.ones)
    stats = {k: dict(img_stats) for k in image_keys}
    stats["observation.state"] = {"mean": s_mean, "std": s_std, "min": s_mean - 3 * s_std, "max": s_mean + 3 * s_std}
    stats["action"] = {"mean": a_mean, "std": a_std, "min": a_mean - 3 * a_std, "max": a_mean + 3 * a_std}

    policy = ACTPolicy(config)
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out


def cached_random_checkpoint(root: str | Path, name: str, **kwargs) -> Path:
    """make_random_checkpoint into root/name once; later calls reuse it (written atomically)."""
    import shutil
    import tempfile

    final = Path(root) / name
    if (final / "model.safetensors").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    make_random_checkpoint(tmp, **kwargs)
    try:
        tmp.rename(final)
    except OSError:  # made concurrently by someone else
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--cameras", nargs="+", default=["front", "wrist"])
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=128)
    args = ap.parse_args(argv)
    path = make_random_checkpoint(args.out_dir, preset=args.preset, cameras=args.cameras,
                                  image_hw=(args.height, args.width))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
