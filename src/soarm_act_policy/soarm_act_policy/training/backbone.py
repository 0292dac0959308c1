"""Initial weights for ACT's ResNet backbone: ImageNet, none, or a local file.

Checkpoints we write always say ``pretrained_backbone_weights: null`` (the trained backbone
is in ``model.safetensors``), so loading them never touches the network; the initial
weights chosen here are loaded into the freshly built policy once, before training.

``imagenet`` uses torchvision's cache (``torch.hub.get_dir()/checkpoints``) and downloads
only when the network is reachable; offline (``HF_HUB_OFFLINE=1``, ``SOARM_OFFLINE=1``) or
with download.pytorch.org unreachable it fails at once with an actionable message instead
of hanging in a download.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

CHOICES_HELP = "imagenet | none | calibrated | <path to a .pth/.pt/.safetensors ResNet state dict>"

#: --pretrained-backbone value for a from-scratch backbone whose frozen BatchNorm statistics
#: are set from training images (see calibrate_frozen_batchnorm).
CALIBRATED = "calibrated"


class BackboneWeightsError(RuntimeError):
    """The requested backbone weights cannot be obtained."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def is_offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("SOARM_OFFLINE"))


def imagenet_weights(vision_backbone: str):
    """torchvision's ImageNet weights enum member for a ResNet name (e.g. resnet18)."""
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(vision_backbone).IMAGENET1K_V1
    except (ValueError, AttributeError) as e:
        raise BackboneWeightsError(f"no ImageNet weights known for backbone {vision_backbone!r}") from e


def imagenet_cache_file(vision_backbone: str) -> Path:
    import torch

    weights = imagenet_weights(vision_backbone)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _host_reachable(url: str, timeout: float) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(vision_backbone: str, reason: str) -> str:
    cache = imagenet_cache_file(vision_backbone)
    url = imagenet_weights(vision_backbone).url
    return (
        f"--pretrained-backbone imagenet: the ImageNet weights of {vision_backbone} are not cached "
        f"({cache}) and {reason}.\n"
        "Either train without them:          --pretrained-backbone none\n"
        "or from a local copy of the file:   --pretrained-backbone /path/to/"
        f"{cache.name}\n"
        f"or download once on a connected machine ({url}) into {cache.parent}/."
    )


def _load_file(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    # Accept common wrappers: {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def _check_matches(state: dict, vision_backbone: str, source: str) -> dict:
    """Keep the ResNet trunk (no fc head) and verify it matches the architecture exactly."""
    import torchvision.models as tvm

    trunk = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model = getattr(tvm, vision_backbone)(weights=None)
    expected = {k: v for k,
                v in model.state_dict().items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(trunk))
    unexpected = sorted(k for k in set(trunk) - set(expected) if not k.endswith("num_batches_tracked"))
    shape_errors = [k for k in expected if k in trunk and tuple(trunk[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shape_errors:
        raise BackboneWeightsError(
            f"{source} is not a {vision_backbone} state dict: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), {len(shape_errors)} shape mismatches "
            f"(e.g. {shape_errors[:3]})"
        )
    return {k: v for k, v in trunk.items() if k in expected}


def load_backbone_state(spec: str, vision_backbone: str = "resnet18", probe_timeout: float = 3.0) -> dict | None:
    """Resolve --pretrained-backbone to a ResNet trunk state dict (None for ``none``).

    Raises BackboneWeightsError with an actionable message when the weights cannot be had.
    """
    spec = (spec or "none").strip()
    if spec.lower() in ("none", CALIBRATED):  # calibrated: random weights, statistics set after the policy is built
        return None
    if spec.lower() == "imagenet":
        import torch

        cache = imagenet_cache_file(vision_backbone)
        if not cache.exists():
            weights = imagenet_weights(vision_backbone)
            if is_offline():
                raise BackboneWeightsError(_offline_message(vision_backbone,
                                                            "offline mode is set (HF_HUB_OFFLINE/SOARM_OFFLINE)"))
            if not _host_reachable(weights.url, probe_timeout):
                host = urlparse(weights.url).hostname
                raise BackboneWeightsError(_offline_message(vision_backbone, f"{host} is unreachable"))
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(30.0)  # a stalled download errors instead of hanging
            try:
                state = weights.get_state_dict(progress=True)
            except OSError as e:
                raise BackboneWeightsError(_offline_message(vision_backbone, f"the download failed ({e})")) from e
            finally:
                socket.setdefaulttimeout(old)
        else:
            state = torch.load(str(cache), map_location="cpu", weights_only=True)
        return _check_matches(state, vision_backbone, str(cache))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise BackboneWeightsError(f"--pretrained-backbone {spec!r}: expected {CHOICES_HELP}; no such file")
    return _check_matches(_load_file(path), vision_backbone, str(path))


def calibrate_frozen_batchnorm(backbone, images) -> int:
    """Set every FrozenBatchNorm2d of `backbone` so that, on `images`, its output is zero-mean and
    unit-variance per channel; returns the number of layers set.

    LeRobot's ACT builds its ResNet with torchvision's FrozenBatchNorm2d: statistics and affine
    parameters are buffers that training never updates. With ImageNet weights they hold
    ImageNet's statistics; from scratch they stay at mean 0, variance 1, i.e. the network has
    no normalization at all and its activations grow through the residual blocks. This is a
    data-dependent initialization: one forward pass over a batch of training images (normalized
    as the policy normalizes them), where each layer, just before it runs, takes the per-channel
    mean and variance of its input as its running_mean / running_var (weight 1, bias 0). Layers
    run in order, so each one sees the already-normalized output of the layers before it. The
    convolution weights are not touched; afterwards the statistics stay frozen as LeRobot intends.
    """
    import torch
    from torchvision.ops.misc import FrozenBatchNorm2d

    layers = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    if not layers:
        raise BackboneWeightsError("the backbone has no FrozenBatchNorm2d layer to calibrate")

    def set_stats(module, inputs):
        x = inputs[0]
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False).clamp_min(1e-6))
        module.weight.fill_(1.0)
        module.bias.fill_(0.0)

    hooks = [m.register_forward_pre_hook(set_stats) for m in layers]
    try:
        with torch.no_grad():
            backbone(images)
    finally:
        for h in hooks:
            h.remove()
    return len(layers)


def calibration_images(dataset, image_keys, stats, count: int = 64, seed: int = 0):
    """`count` frames per camera drawn from a LeRobotDataset, normalized with the dataset's
    per-channel mean/std (as ACT's MEAN_STD preprocessor does), stacked as (N, 3, H, W)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    batches = []
    for key in image_keys:
        frames = torch.stack([dataset[int(i)][key] for i in idx]).float()
        mean = torch.as_tensor(np.asarray(stats[key]["mean"]), dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(np.asarray(stats[key]["std"]), dtype=torch.float32).reshape(1, -1, 1, 1)
        batches.append((frames - mean) / (std + 1e-8))
    return torch.cat(batches)
