"""Pretrain ACT's ResNet backbone on labelled sim images (no ImageNet needed).

ImageNet weights cannot be had offline, and a from-scratch backbone learns to see the cube
only after far more ACT updates than a CPU affords. The simulator knows what the cameras
show, so it labels images for free:

1. **Frames.** For each sample: the arm at rest at a pose drawn from the dataset's
   ``observation.state`` frames plus Gaussian noise (``pose_noise`` rad), in a scene that is,
   with probability ``own_scene``, that frame's own episode's scene (its ``soarm/seed`` in the
   dataset's episode metadata, when recorded: the wrist camera then sees the cube as it did in
   the demonstration), else a new scene whose seed is drawn from ``[SCENE_SEED_MIN, 2**31)``
   (disjoint from the demo's recording and evaluation seeds, which are < 10**6: the front
   camera sees many cube and zone placements). Every camera is rendered through the Gymnasium
   env ``soarm/PickPlace-v0`` (``reset(options={"arm_pose": q})``: a still scene, no physics)
   at the dataset's image size.
2. **Labels** (world frame, from the env's ``info``): cube x, y and yaw, zone x, y, and the
   cube's offset from the point between the jaws (x, y, z). Standardised per label.
3. **Model.** torchvision's ResNet18 trunk (the layers ACT uses, up to ``layer4``) with
   ordinary BatchNorm, shared by all cameras as in ACT; one small head per camera reads that
   camera's flattened ``layer4`` map and the normalised joint state and regresses all labels.
   Images are normalised with the dataset's per-camera mean/std, as ACT's preprocessor does.
4. **Loss.** Mean squared error of the standardised labels, summed over cameras; AdamW.
   10 % of the samples are held out and the error per label is reported in its own unit.
5. **Export.** The trunk's state dict in torchvision's names without ``fc`` (BatchNorm
   running statistics become ACT's frozen BatchNorm buffers): ``train --pretrained-backbone
   FILE`` loads it; ``--lr-backbone 0`` then keeps it frozen, which also halves the cost of
   an ACT update on a CPU. Only images reach the backbone at run time; the labels are used
   here only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..observation import IMAGE_PREFIX, STATE_KEY

#: Scene seeds of pretraining frames start here (demo recording and evaluation seeds are below).
SCENE_SEED_MIN = 1_000_000
#: Label names, in the order of the regression targets.
LABELS = ("cube_x", "cube_y", "cube_yaw", "zone_x", "zone_y", "cube_from_jaw_x", "cube_from_jaw_y",
          "cube_from_jaw_z")


class PretrainError(RuntimeError):
    """Bad input for pretraining (dataset, image size, env)."""


@dataclass
class PretrainSettings:
    samples: int = 4000
    minutes: float = 4.0
    max_epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    pose_noise: float = 0.05
    own_scene: float = 0.0
    holdout: float = 0.1
    seed: int = 0
    threads: int = 0
    env_kwargs: dict = field(default_factory=dict)


def learning_rate_factor(step: int, progress: float, warmup_steps: int = 10, decay_from: float = 0.6) -> float:
    """Multiplier of the peak learning rate: linear warm-up over `warmup_steps`, constant, then a
    linear decay to 5 % over the last (1 - decay_from) of the run. `progress` in [0, 1] is the
    fraction of the run done (by time or epochs), so a time budget ends with a decayed rate
    whatever the machine's speed."""
    warm = min(1.0, (step + 1) / warmup_steps)
    if progress <= decay_from:
        return warm
    return warm * max(0.05, (1.0 - progress) / (1.0 - decay_from))


def label_vector(info: dict) -> np.ndarray:
    """The regression targets of one frame from the env's info (see LABELS)."""
    cube = np.asarray(info["cube_position"], float)
    zone = np.asarray(info["zone_position"], float)
    rel = cube - np.asarray(info["jaw_point"], float)
    return np.array([cube[0], cube[1], float(info["cube_yaw"]), zone[0], zone[1], rel[0], rel[1], rel[2]])


def dataset_image_info(dataset_root: Path) -> tuple[list[str], tuple[int, int], dict]:
    """Camera names, image size (width, height) and stats.json of a LeRobot dataset."""
    root = Path(dataset_root)
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
        stats = json.loads((root / "meta" / "stats.json").read_text())
    except (OSError, ValueError) as e:
        raise PretrainError(f"{root}: not a readable LeRobot dataset (meta/info.json, meta/stats.json): {e}") from e
    cameras = [k[len(IMAGE_PREFIX):] for k, v in info["features"].items()
               if k.startswith(IMAGE_PREFIX) and v.get("dtype") in ("video", "image")]
    if not cameras:
        raise PretrainError(f"{root}: the dataset has no camera features ({IMAGE_PREFIX}*)")
    shapes = {tuple(info["features"][IMAGE_PREFIX + c]["shape"]) for c in cameras}
    if len(shapes) != 1:
        raise PretrainError(f"{root}: cameras of different sizes {sorted(shapes)}; the pretraining renders one size")
    h, w, _ = shapes.pop()
    return cameras, (int(w), int(h)), stats


def dataset_states(dataset_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's observation.state (N, 6) and its episode's scene seed (N,; -1 when unknown)."""
    import pandas as pd

    root = Path(dataset_root)
    files = sorted(root.glob("data/*/*.parquet"))
    if not files:
        raise PretrainError(f"{dataset_root}: no data/*/*.parquet files")
    frames = pd.concat([pd.read_parquet(f, columns=[STATE_KEY, "episode_index"]) for f in files])
    seeds = {}
    for f in sorted(root.glob("meta/episodes/*/*.parquet")):
        meta = pd.read_parquet(f)
        if "soarm/seed" in meta.columns:
            seeds.update(zip(meta["episode_index"].astype(int), meta["soarm/seed"].astype(int)))
    frame_seeds = np.array([seeds.get(int(e), -1) for e in frames["episode_index"]], dtype=np.int64)
    return np.stack(frames[STATE_KEY].to_numpy()).astype(np.float64), frame_seeds


def render_frames(env, cameras: list[str], states: np.ndarray, count: int, pose_noise: float, rng,
                  frame_seeds: np.ndarray | None = None, own_scene: float = 0.0):
    """`count` labelled still frames: images {camera: (N, H, W, 3) uint8}, arm poses (N, 6), labels (N, L)."""
    from tqdm import tqdm

    images = {c: [] for c in cameras}
    poses, labels = [], []
    for _ in tqdm(range(count), desc="render labelled frames", unit="frame", mininterval=2.0):
        i = rng.integers(len(states))
        q = states[i] + rng.normal(0.0, pose_noise, size=states.shape[1])
        seed = int(rng.integers(SCENE_SEED_MIN, 2**31 - 1))
        if frame_seeds is not None and frame_seeds[i] >= 0 and rng.random() < own_scene:
            seed = int(frame_seeds[i])
        obs, info = env.reset(seed=seed, options={"arm_pose": q})
        for c in cameras:
            images[c].append(obs[IMAGE_PREFIX + c])
        poses.append(obs[STATE_KEY])
        labels.append(label_vector(info))
    return ({c: np.stack(v) for c, v in images.items()}, np.asarray(poses, np.float32),
            np.asarray(labels, np.float32))


def build_net(num_cameras: int, feature_hw: tuple[int, int], state_dim: int, num_labels: int):
    """ResNet18 trunk (torchvision names, BatchNorm) + one regression head per camera."""
    import torch
    import torchvision

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.resnet = torchvision.models.resnet18(weights=None)
            flat = 512 * feature_hw[0] * feature_hw[1]
            self.heads = torch.nn.ModuleList(
                torch.nn.Sequential(torch.nn.Linear(flat + state_dim, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, num_labels))
                for _ in range(num_cameras))

        def trunk(self, x):
            r = self.resnet
            x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
            return r.layer4(r.layer3(r.layer2(r.layer1(x))))

        def forward(self, images: list, state):
            return [head(torch.cat([self.trunk(x).flatten(1), state], dim=1)) for head, x in zip(self.heads, images)]

    return Net()


def trunk_state_dict(net) -> dict:
    """The ResNet trunk's weights in torchvision's names, without the classifier (fc)."""
    return {k: v.detach().clone().contiguous() for k, v in net.resnet.state_dict().items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}


def pretrain(dataset_root: Path, output: Path, settings: PretrainSettings, env=None) -> dict:
    """Render, train, export to `output` (.safetensors) and return the report (also written as
    `<output>.json`). `env`: a ready env (tests); by default made from settings.env_kwargs."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    t_start = time.monotonic()
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    cameras, size, stats = dataset_image_info(dataset_root)
    states, frame_seeds = dataset_states(dataset_root)
    own_env = env is None
    if own_env:
        from ..evaluation.rollout import make_env

        env = make_env(**{**settings.env_kwargs, "image_size": size, "cameras": tuple(cameras)})
    try:
        t0 = time.monotonic()
        images, poses, labels = render_frames(env, cameras, states, settings.samples, settings.pose_noise, rng,
                                              frame_seeds, settings.own_scene)
        render_s = time.monotonic() - t0
    finally:
        if own_env:
            env.close()
    got = images[cameras[0]].shape[1:3][::-1]
    if tuple(got) != tuple(size):
        raise PretrainError(f"the env renders {got[0]}x{got[1]} but the dataset's images are {size[0]}x{size[1]}")

    # Normalisation: images as ACT's preprocessor (dataset mean/std per camera), state and labels standardised.
    def image_norm(c):
        s = stats[IMAGE_PREFIX + c]
        return (torch.tensor(s["mean"], dtype=torch.float32).reshape(1, 3, 1, 1),
                torch.tensor(s["std"], dtype=torch.float32).reshape(1, 3, 1, 1))

    norms = [image_norm(c) for c in cameras]
    s_mean = np.asarray(stats[STATE_KEY]["mean"], np.float32)
    s_std = np.maximum(np.asarray(stats[STATE_KEY]["std"], np.float32), 1e-3)
    l_mean, l_std = labels.mean(0), np.maximum(labels.std(0), 1e-6)
    state_t = torch.from_numpy((poses - s_mean) / s_std)
    label_t = torch.from_numpy((labels - l_mean) / l_std)
    image_t = [torch.from_numpy(images[c]).permute(0, 3, 1, 2).contiguous() for c in cameras]  # uint8

    def batch_images(idx):
        return [((x[idx].float() / 255.0) - m) / s for x, (m, s) in zip(image_t, norms)]

    n = settings.samples
    perm = torch.from_numpy(rng.permutation(n))
    n_val = max(1, int(round(settings.holdout * n)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]

    h, w = size[1], size[0]
    with torch.no_grad():
        probe = build_net(1, (1, 1), 0, 1).trunk(torch.zeros(1, 3, h, w))
    net = build_net(len(cameras), tuple(probe.shape[2:]), state_t.shape[1], len(LABELS))
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    budget_s = 60.0 * settings.minutes
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    total = steps_per_epoch * settings.max_epochs
    step, epoch, losses = 0, 0, []
    bar = tqdm(total=total, desc="pretrain backbone", unit="step", mininterval=2.0)
    t0 = time.monotonic()

    def progress() -> float:  # fraction of the run done: by time or by epochs, whichever is further
        return max((time.monotonic() - t0) / budget_s, step / total)

    while epoch < settings.max_epochs and progress() < 1.0:
        net.train()
        order = train_idx[torch.randperm(len(train_idx))]
        for i in range(0, len(order), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            if len(idx) < 2:
                continue
            for group in opt.param_groups:
                group["lr"] = settings.lr * learning_rate_factor(step, progress())
            outs = net(batch_images(idx), state_t[idx])
            loss = sum(torch.nn.functional.mse_loss(o, label_t[idx]) for o in outs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", epoch=epoch)
            if progress() >= 1.0:
                break
        epoch += 1
    bar.close()
    train_s = time.monotonic() - t0

    net.eval()
    with torch.no_grad():
        preds = [[] for _ in cameras]
        for i in range(0, n_val, 256):
            idx = val_idx[i:i + 256]
            for k, o in enumerate(net(batch_images(idx), state_t[idx])):
                preds[k].append(o.numpy())
    truth = labels[val_idx.numpy()]
    errors = {}
    baseline = {name: float(np.mean(np.abs(truth[:, j] - l_mean[j]))) for j, name in enumerate(LABELS)}
    for c, p in zip(cameras, preds):
        pred = np.concatenate(p) * l_std + l_mean
        errors[c] = {name: float(np.mean(np.abs(pred[:, j] - truth[:, j]))) for j, name in enumerate(LABELS)}

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    save_file(trunk_state_dict(net), str(tmp))
    tmp.replace(output)
    report = {
        "output": str(output),
        "cameras": cameras,
        "image_size": list(size),
        "samples": n,
        "episodes_with_scene_seed": int(len(set(frame_seeds[frame_seeds >= 0].tolist()))),
        "held_out": n_val,
        "steps": step,
        "epochs": epoch,
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "render_s": round(render_s, 1),
        "train_s": round(train_s, 1),
        "total_s": round(time.monotonic() - t_start, 1),
        "labels": list(LABELS),
        "held_out_mean_abs_error": errors,
        "predict_the_mean_error": baseline,
        "settings": {k: v for k, v in asdict(settings).items() if k != "env_kwargs"},
        "env_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.env_kwargs.items()},
    }
    output.with_name(output.name + ".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """`pretrain_backbone`: exit 0 with the weights written, 2 on bad input."""
    import argparse
    import sys

    d = PretrainSettings()
    p = argparse.ArgumentParser(
        prog="pretrain_backbone",
        description="Pretrain ACT's ResNet18 backbone on labelled sim images (cube, zone and jaw positions), "
        "for `train --pretrained-backbone FILE [--lr-backbone 0]`. Module docstring: the method.")
    p.add_argument("--dataset-root", type=Path, required=True,
                   help="the LeRobot dataset to be trained on (image size, cameras, normalisation, arm poses)")
    p.add_argument("--output", type=Path, required=True,
                   help="weights file to write (.safetensors; report: <file>.json)")
    p.add_argument("--driver-params", nargs="+", default=[], metavar="YAML",
                   help="driver parameter files of the sim the dataset was recorded on (scene_spread, cameras), "
                   "e.g. config/driver.yaml config/demo/driver.yaml")
    p.add_argument("--own-scene", type=float, default=d.own_scene,
                   help="share of frames rendered in their own demonstration's scene (the rest: new scenes) "
                   f"(default: {d.own_scene})")
    p.add_argument("--samples", type=int, default=d.samples, help=f"rendered frames (default: {d.samples})")
    p.add_argument("--minutes", type=float, default=d.minutes, help=f"training time budget (default: {d.minutes})")
    p.add_argument("--max-epochs", type=int, default=d.max_epochs, help=f"(default: {d.max_epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate, one-cycle (default: {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"(default: {d.seed})")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads, 0 = torch's default")
    a = p.parse_args(argv)
    if a.samples < 20 or a.minutes <= 0 or a.batch_size < 2:
        p.error("--samples >= 20, --minutes > 0 and --batch-size >= 2 are required")
    from ..evaluation.rollout import env_kwargs_from_driver_params

    try:
        env_kwargs = env_kwargs_from_driver_params(a.driver_params) if a.driver_params else {}
        env_kwargs.pop("image_size", None)  # the dataset's size decides
        settings = PretrainSettings(samples=a.samples, minutes=a.minutes, max_epochs=a.max_epochs,
                                    batch_size=a.batch_size, lr=a.lr, seed=a.seed, threads=a.threads,
                                    own_scene=a.own_scene,
                                    env_kwargs=env_kwargs)
        report = pretrain(a.dataset_root, a.output, settings)
    except (PretrainError, OSError) as e:
        print(f"pretrain_backbone: error: {e}", file=sys.stderr)
        return 2
    errors = report["held_out_mean_abs_error"]
    for camera, err in errors.items():
        print(f"[pretrain_backbone] {camera}: held-out mean |error| " + ", ".join(
            f"{k} {1000 * v:.1f} mm" if k != "cube_yaw" else f"{k} {v:.3f} rad" for k, v in err.items()))
    print("[pretrain_backbone] done: " + json.dumps({k: report[k] for k in ("output", "samples", "steps", "epochs",
                                                                            "final_loss", "render_s", "train_s")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
