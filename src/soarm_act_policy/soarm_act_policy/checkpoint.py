"""Load a LeRobot ACT checkpoint (safetensors only) and check it against our topics.

A checkpoint is LeRobot's ``pretrained_model`` directory: ``config.json``,
``model.safetensors`` and the pre/post-processor pipelines (JSON + safetensors with
the normalization statistics). It can be given as that directory, a training output
directory or ``checkpoints/<step>`` directory containing one, or a Hugging Face hub id
already in the local cache (nothing is downloaded here). Nothing is ever unpickled:
configs are JSON, tensors are safetensors, and a checkpoint that only has pickled
weights is refused.

A checkpoint is data from somewhere else, checked before LeRobot reads it:

- processors (`check_processors`, plain JSON, before LeRobot touches the files):
  LeRobot's pipeline loader imports and calls whatever class a step of
  ``policy_preprocessor.json`` / ``policy_postprocessor.json`` names, so a crafted file
  runs any code. Only the steps of LeRobot's ACT pipelines (`ALLOWED_STEPS`, by registry
  name or class path) with state files inside the checkpoint are accepted; anything
  else is refused naming the step and the file, and nothing is imported;
- the config's policy type must be ``act`` before LeRobot parses it;
- weights (`check_weights`): LeRobot loads ``model.safetensors`` with ``strict=False``,
  so missing tensors would stay random and extra ones be ignored. The tensor names and
  shapes in the file must equal those of the model ``config.json`` describes (built on
  the meta device: no memory, no download); then it is loaded with ``strict=True``.
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

#: The only processor steps handed to LeRobot, per file: registry name -> the LeRobot class
#: it resolves to. These are the steps of LeRobot's ACT pipelines, what `train` (LeRobot's
#: make_pre_post_processors) and random_checkpoint write.
ALLOWED_STEPS = {
    PREPROCESSOR: {
        "rename_observations_processor": "lerobot.processor.rename_processor.RenameObservationsProcessorStep",
        "to_batch_processor": "lerobot.processor.batch_processor.AddBatchDimensionProcessorStep",
        "device_processor": "lerobot.processor.device_processor.DeviceProcessorStep",
        "normalizer_processor": "lerobot.processor.normalize_processor.NormalizerProcessorStep",
    },
    POSTPROCESSOR: {
        "unnormalizer_processor": "lerobot.processor.normalize_processor.UnnormalizerProcessorStep",
        "device_processor": "lerobot.processor.device_processor.DeviceProcessorStep",
    },
}
#: Keys a step entry may have (LeRobot's processor JSON).
STEP_KEYS = ("registry_name", "class", "config", "state_file")
#: Most tensor names listed in a weights error.
_NAMES_SHOWN = 8


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
    check_processors(path)
    return path


def _refuse_step(file: Path, index: int, name: str, problem: str) -> CheckpointError:
    allowed = ", ".join(ALLOWED_STEPS[file.name])
    return CheckpointError(
        f"{file}: step {index} {name} {problem}; refusing to load this checkpoint (LeRobot would import and "
        f"run what the step names). Allowed steps in {file.name}: {allowed}. Load checkpoints only from "
        f"sources you trust; if this one is yours, save its processors again with LeRobot's ACT "
        f"make_pre_post_processors"
    )


def check_processors(path: Path) -> None:
    """Refuse processor JSON that names anything but LeRobot's ACT steps (see ALLOWED_STEPS).

    Reads the two pipeline files as plain JSON; imports nothing. Each step must have a
    known ``registry_name`` and/or the ``class`` path that name stands for, a ``config``
    object, and its ``state_file`` (if any) must be a ``.safetensors`` file directly in the
    checkpoint directory. Raises CheckpointError naming the file and the step.
    """
    for filename, allowed in ALLOWED_STEPS.items():
        file = Path(path) / filename
        try:
            doc = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {file}: {type(e).__name__}: {e}") from None
        steps = doc.get("steps") if isinstance(doc, dict) else None
        if not isinstance(steps, list):
            raise CheckpointError(f"{file} is not a LeRobot processor pipeline: no list of \"steps\"")
        classes = {c: n for n, c in allowed.items()}
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                raise _refuse_step(file, i, repr(step)[:80], "is not a JSON object")
            registry, cls = step.get("registry_name"), step.get("class")
            label = repr(registry if registry is not None else cls)[:120]
            if not all(isinstance(v, str) for v in (registry, cls) if v is not None):
                raise _refuse_step(file, i, label, "has a registry_name or class that is not a string")
            if registry is None and cls is None:
                raise _refuse_step(file, i, label, "names no registry_name or class")
            if registry is not None and registry not in allowed:
                raise _refuse_step(file, i, label, "is not a known LeRobot ACT processor step")
            if cls is not None and (cls not in classes or (registry is not None and classes[cls] != registry)):
                raise _refuse_step(file, i, f"{label} (class {cls!r})", "names a class that is not a known LeRobot "
                                   "ACT processor step")
            extra = sorted(set(step) - set(STEP_KEYS))
            if extra:
                raise _refuse_step(file, i, label, f"has unknown keys {extra}")
            if not isinstance(step.get("config", {}), dict):
                raise _refuse_step(file, i, label, "has a config that is not a JSON object")
            state = step.get("state_file")
            if state is not None and (not isinstance(state, str) or Path(state).name != state
                                      or not state.endswith(".safetensors") or not (file.parent / state).is_file()):
                raise _refuse_step(file, i, label,
                                   f"has state_file {state!r}, not a .safetensors file in {file.parent}")


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
    """The checkpoint's PreTrainedConfig (config.json; no weights loaded); only ACT configs are parsed."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.act.configuration_act import ACTConfig  # noqa: F401 - registers "act"

    policy_type = read_spec(path).policy_type
    if policy_type != "act":
        raise CheckpointError(f"{Path(path) / CONFIG} holds a {policy_type!r} policy; only ACT checkpoints are loaded")
    try:
        return PreTrainedConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {Path(path) / CONFIG}: {type(e).__name__}: {e}") from None


def _names(names) -> str:
    names = sorted(names)
    more = f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
    return ", ".join(names[:_NAMES_SHOWN]) + more


def check_weights(path: Path, config) -> None:
    """Refuse a model.safetensors whose tensors differ from the model `config` describes.

    Compares names and shapes from the safetensors header (no tensor is read) with the
    state dict of the ACT model built from `config` on the meta device. Raises
    CheckpointError naming the missing, unexpected and mis-shaped tensors.
    """
    import copy

    import torch
    from lerobot.policies.act.modeling_act import ACTPolicy
    from safetensors import safe_open

    file = Path(path) / WEIGHTS
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # truncated or not a safetensors file
        raise CheckpointError(f"cannot read the tensors in {file}: {type(e).__name__}: {e}") from None
    skeleton = copy.deepcopy(config)
    skeleton.pretrained_backbone_weights = None  # names and shapes only: no download
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in ACTPolicy(skeleton).state_dict().items()}
    except Exception as e:
        raise CheckpointError(
            f"cannot build the model {Path(path) / CONFIG} describes: {type(e).__name__}: {e}") from None
    missing = set(expected) - set(stored)
    extra = set(stored) - set(expected)
    shapes = [f"{k} {stored[k]} (expected {expected[k]})" for k in sorted(set(stored) & set(expected))
              if stored[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing tensor(s) {_names(missing)}")
    if extra:
        problems.append(f"unexpected tensor(s) {_names(extra)}")
    if shapes:
        problems.append(f"wrong shape(s) {'; '.join(shapes[:_NAMES_SHOWN])}")
    if problems:
        raise CheckpointError(
            f"{file} does not match the model {CONFIG} describes: {'; '.join(problems)}. Nothing was loaded: the "
            f"weight file is damaged or belongs to another model; use the {CONFIG} and {WEIGHTS} saved together "
            f"by lerobot-train"
        )


def verify_checkpoint(path: Path, config=None):
    """Every check before loading (processors, policy type, weights); returns the config.

    For loaders that hand the directory to LeRobot themselves (train --resume).
    """
    check_processors(path)
    config = config if config is not None else load_config(path)
    check_weights(path, config)
    return config


class LoadedPolicy:
    """A LeRobot ACT policy with its processors: observation dict -> action chunk."""

    def __init__(self, path: Path, device: str = "auto", config=None):
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.policies.factory import make_pre_post_processors

        self.path = Path(path)
        self.device = pick_device(device)
        config = verify_checkpoint(self.path, config)  # before LeRobot reads the files
        self.spec = read_spec(self.path)
        config.device = self.device
        self.config = config
        self.policy = ACTPolicy.from_pretrained(str(self.path), config=config, local_files_only=True, strict=True)
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
