"""Load a LeRobot ACT checkpoint (safetensors only) and check it against our topics.

A checkpoint is LeRobot's ``pretrained_model`` directory: ``config.json``,
``model.safetensors`` and the pre/post-processor pipelines (JSON + safetensors with
the normalization statistics). It can be given as that directory, a training output
directory or ``checkpoints/<step>`` directory containing one, or a Hugging Face hub id
already in the local cache (nothing is downloaded here). Nothing is ever unpickled:
configs are JSON, tensors are safetensors, and a checkpoint that only has pickled
weights is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .observation import ACTION_KEY, STATE_KEY, ObservationMapping

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PREPROCESSOR = "policy_preprocessor.json"
POSTPROCESSOR = "policy_postprocessor.json"
PICKLED = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")


class CheckpointError(ValueError):
    """The checkpoint cannot be used; the message says why and what to do."""


def resolve_checkpoint(spec: str, cache_dir: str | Path | None = None) -> Path:
    """A local checkpoint directory, or a cached hub id, as the `pretrained_model` directory.

    cache_dir: the Hugging Face hub cache (default: HF_HUB_CACHE, ~/.cache/huggingface/hub).
    """
    if not spec:
        raise CheckpointError(
            "no checkpoint given: set the `checkpoint` parameter to a LeRobot pretrained_model "
            "directory (e.g. outputs/train/act/checkpoints/last/pretrained_model) or a cached hub id"
        )
    path = Path(spec).expanduser()
    if path.exists():
        for candidate in (path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"):
            if (candidate / CONFIG).is_file():
                return _check_layout(candidate)
        raise CheckpointError(
            f"{path} is not a LeRobot checkpoint: no {CONFIG} in it, in {path}/pretrained_model "
            f"or in {path}/checkpoints/last/pretrained_model"
        )
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise CheckpointError(f"checkpoint {spec!r}: no such directory, and not a hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=spec, local_files_only=True, cache_dir=cache_dir)
    except Exception as e:  # LocalEntryNotFoundError, invalid id, ...
        raise CheckpointError(
            f"checkpoint {spec!r} is not a local directory and not in the local Hugging Face cache "
            f"({type(e).__name__}); download it first, e.g. `hf download {spec}`"
        ) from None
    return _check_layout(Path(local))


def _check_layout(path: Path) -> Path:
    missing = [f for f in (CONFIG, PREPROCESSOR, POSTPROCESSOR) if not (path / f).is_file()]
    if not (path / WEIGHTS).is_file():
        pickled = [f for f in PICKLED if (path / f).exists()]
        hint = f" (found pickled {pickled}: convert it to safetensors; it is never unpickled here)" if pickled else ""
        missing.insert(0, WEIGHTS + hint)
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is incomplete, missing: {', '.join(missing)} "
            f"(expected LeRobot's pretrained_model layout, saved by lerobot-train)"
        )
    return path


@dataclass
class CheckpointSpec:
    """What a checkpoint expects, read from its config.json."""

    policy_type: str
    state_shape: tuple[int, ...] | None
    action_shape: tuple[int, ...] | None
    image_shapes: dict[str, tuple[int, ...]]  # feature key -> (3, H, W)
    has_env_state: bool
    chunk_size: int
    n_action_steps: int


def read_spec(path: Path) -> CheckpointSpec:
    """What the checkpoint expects, from its config.json alone (fast: no torch, no LeRobot)."""
    file = Path(path) / CONFIG
    try:
        cfg = json.loads(file.read_text())
        inputs = cfg.get("input_features") or {}
        outputs = cfg.get("output_features") or {}

        def shape(features, key):
            f = features.get(key)
            return tuple(int(v) for v in f["shape"]) if f else None

        return CheckpointSpec(
            policy_type=str(cfg.get("type")),
            state_shape=shape(inputs, STATE_KEY),
            action_shape=shape(outputs, ACTION_KEY),
            image_shapes={k: shape(inputs, k) for k, f in inputs.items() if f.get("type") == "VISUAL"},
            has_env_state=any(f.get("type") == "ENV" for f in inputs.values()),
            chunk_size=int(cfg.get("chunk_size", 1)),
            n_action_steps=int(cfg.get("n_action_steps", 1)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"cannot read the features in {file}: {type(e).__name__}: {e}") from None


def check_compatible(spec: CheckpointSpec, mapping: ObservationMapping, image_size: tuple[int, int] | None = None):
    """Raise CheckpointError naming every mismatch between the checkpoint and our configuration.

    image_size: (width, height) the cameras publish, if known; checked unless resizing.
    """
    problems = []
    n = len(mapping.joint_names)
    if spec.policy_type != "act":
        problems.append(f"policy type is {spec.policy_type!r}, this node runs 'act'")
    if spec.state_shape != (n,):
        problems.append(
            f"checkpoint state {STATE_KEY} has shape {spec.state_shape}, configured joints give ({n},) "
            f"({', '.join(mapping.joint_names)})"
        )
    if spec.action_shape != (n,):
        problems.append(f"checkpoint action has shape {spec.action_shape}, configured joints give ({n},)")
    if spec.has_env_state:
        problems.append("checkpoint needs observation.environment_state, which no topic provides")
    want = set(spec.image_shapes)
    have = mapping.image_keys
    if want != set(have):
        missing = sorted(want - set(have))
        extra = sorted(set(have) - want)
        msg = "camera mismatch:"
        if missing:
            msg += f" checkpoint needs {missing} but no configured camera feeds it"
        if extra:
            msg += (f"{';' if missing else ''} configured camera(s) {[have[k] for k in extra]} feed {extra}, "
                    "unknown to the checkpoint")
        msg += (
            f" (checkpoint cameras: {sorted(want)}; configured cameras: {list(mapping.cameras)}; "
            f"set `cameras`, or map names with `camera_keys` like 'front:top')"
        )
        problems.append(msg)
    for key, shape in spec.image_shapes.items():
        if len(shape) != 3 or shape[0] != 3:
            problems.append(f"{key} has shape {shape}, expected (3, H, W) RGB")
        elif image_size and not mapping.resize and (shape[2], shape[1]) != tuple(image_size):
            problems.append(
                f"{key} is {shape[2]}x{shape[1]} (width x height) but cameras publish "
                f"{image_size[0]}x{image_size[1]}: change the camera size or set resize_images"
            )
    if problems:
        raise CheckpointError("checkpoint does not match the configuration: " + "; ".join(problems))


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but CUDA is not available (use auto or cpu)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise CheckpointError("device 'mps' requested but MPS is not available (use auto or cpu)")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise CheckpointError(f"device must be auto, cpu, cuda[:N] or mps; got {device!r}")
    return device


def load_config(path: Path):
    """The checkpoint's PreTrainedConfig (config.json; no weights loaded)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.act.configuration_act import ACTConfig  # noqa: F401 - registers "act"

    try:
        return PreTrainedConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {Path(path) / CONFIG}: {type(e).__name__}: {e}") from None


class LoadedPolicy:
    """A LeRobot ACT policy with its processors: observation dict -> action chunk."""

    def __init__(self, path: Path, device: str = "auto", config=None):
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.policies.factory import make_pre_post_processors

        self.path = Path(path)
        self.device = pick_device(device)
        config = config if config is not None else load_config(self.path)
        self.spec = read_spec(self.path)
        if self.spec.policy_type != "act":
            raise CheckpointError(f"{self.path} holds a {self.spec.policy_type!r} policy; this node runs ACT")
        config.device = self.device
        self.config = config
        self.policy = ACTPolicy.from_pretrained(str(self.path), config=config, local_files_only=True)
        self.policy.eval()
        override = {"device_processor": {"device": self.device}}
        self.pre, self.post = make_pre_post_processors(
            config,
            pretrained_path=str(self.path),
            preprocessor_overrides=override,
            postprocessor_overrides={"device_processor": {"device": "cpu"}},
        )
        self.last_latency = float("nan")

    def predict_chunk(self, obs: dict) -> np.ndarray:
        """Unbatched observation tensors -> (chunk_size, action_dim) actions in checkpoint units."""
        import torch

        t0 = time.perf_counter()
        with torch.inference_mode():
            batch = self.pre(obs)
            chunk = self.policy.predict_action_chunk(batch)
            chunk = self.post(chunk)
        out = chunk[0].detach().cpu().numpy().astype(np.float64)
        self.last_latency = time.perf_counter() - t0
        return out

    def dummy_observation(self) -> dict:
        """Zeros of the right shapes (warm-up)."""
        import torch

        obs = {k: torch.zeros(s) for k, s in self.spec.image_shapes.items()}
        if self.spec.state_shape:
            obs[STATE_KEY] = torch.zeros(self.spec.state_shape)
        return obs

    def warmup(self, runs: int = 2) -> float:
        """Run inference on zeros (allocations, kernel selection); returns the last latency."""
        for _ in range(runs):
            self.predict_chunk(self.dummy_observation())
        return self.last_latency
