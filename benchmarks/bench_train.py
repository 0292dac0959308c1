#!/usr/bin/env python3
"""Training speed: seconds per step of `train` per preset on this machine, and the ratio
against LeRobot's own `lerobot-train` with the same dataset and configuration.

Uses a synthetic dataset shaped like the demo's (two 96x128 cameras, 6 joints; written with
LeRobot's API) unless --dataset-root points at a real one. Per-step time is LeRobot's own
`updt_s + data_s` from the log, median over the steps after --warmup.

    python benchmarks/bench_train.py                       # cpu preset, train vs lerobot-train
    python benchmarks/bench_train.py --presets cpu baseline --steps 8
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "install" / "soarm_act_policy" / "lib" / "soarm_act_policy" / "train"
LINE = re.compile(r"step:(\S+) .*?updt_s:([\d.]+) data_s:([\d.]+)")


def step_times(log: str, warmup: int) -> list[float]:
    times = [float(m.group(2)) + float(m.group(3)) for m in LINE.finditer(log)]
    return times[warmup:]


def lerobot_args(settings: dict, repo_id: str, root: Path, out: Path, steps: int) -> list[str]:
    """The same run expressed as lerobot-train flags."""
    s = settings
    return [
        f"--dataset.repo_id={repo_id}", f"--dataset.root={root}", "--policy.type=act",
        f"--policy.device={s['device'] if s['device'] != 'auto' else 'cpu'}", "--policy.push_to_hub=false",
        "--policy.pretrained_backbone_weights=null",
        f"--policy.chunk_size={s['chunk_size']}", f"--policy.n_action_steps={s['n_action_steps']}",
        f"--policy.dim_model={s['dim_model']}", f"--policy.n_heads={s['n_heads']}",
        f"--policy.dim_feedforward={s['dim_feedforward']}", f"--policy.n_encoder_layers={s['n_encoder_layers']}",
        f"--policy.n_decoder_layers={s['n_decoder_layers']}", f"--policy.use_vae={str(s['use_vae']).lower()}",
        f"--policy.latent_dim={s['latent_dim']}", f"--policy.n_vae_encoder_layers={s['n_vae_encoder_layers']}",
        f"--policy.kl_weight={s['kl_weight']}", f"--policy.dropout={s['dropout']}",
        f"--policy.optimizer_lr={s['lr']}", f"--policy.optimizer_lr_backbone={s['lr_backbone']}",
        f"--output_dir={out}", f"--steps={steps}", f"--batch_size={s['batch_size']}",
        f"--num_workers={s['num_workers']}", f"--seed={s['seed']}", "--log_freq=1", f"--save_freq={steps}",
    ]


def run(cmd: list[str], env: dict) -> tuple[str, float]:
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:3])} ...\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p.stdout + p.stderr, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["cpu"], choices=["cpu", "baseline", "large"])
    ap.add_argument("--steps", type=int, default=12, help="steps per run (default 12)")
    ap.add_argument("--warmup", type=int, default=2, help="first steps not counted (default 2)")
    ap.add_argument("--no-lerobot", dest="lerobot", action="store_false", help="skip the lerobot-train comparison")
    ap.add_argument("--dataset-root", type=Path, default=None, help="a LeRobot dataset (default: synthetic)")
    ap.add_argument("--repo-id", default="local/soarm_synthetic")
    args = ap.parse_args()
    if not TRAIN.exists():
        sys.exit(f"{TRAIN} not installed: bash scripts/setup.sh")

    sys.path.insert(0, str(ROOT / "src" / "soarm_act_policy"))
    from soarm_act_policy.training.config import parse_args, resolve_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    root = args.dataset_root
    if root is None:
        from soarm_act_policy.training.synthetic import make_synthetic_dataset

        root = tmp / "ds"
        make_synthetic_dataset(root, repo_id=args.repo_id, episodes=4, frames=120)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    lerobot_train = Path(sys.executable).parent / "lerobot-train"
    print(f"{'preset':10} {'train s/step':>13} {'lerobot-train s/step':>21} {'ratio':>7}  "
          f"(median of {args.steps - args.warmup} steps, {os.cpu_count()} CPUs)")
    for preset in args.presets:
        s = resolve_settings(parse_args(["--repo-id", args.repo_id, "--output-dir", "x", "--config", preset]))
        out = tmp / f"train_{preset}"
        log, _ = run([str(TRAIN), "--repo-id", args.repo_id, "--dataset-root", str(root), "--output-dir", str(out),
                      "--config", preset, "--steps", str(args.steps), "--log-freq", "1", "--save-freq", str(args.steps),
                      "--pretrained-backbone", "none", "--no-progress-bar", "--device", "cpu"], env)
        ours = statistics.median(step_times(log, args.warmup))
        theirs = None
        if args.lerobot:
            lenv = dict(env)
            if s.get("torch_threads"):
                lenv["OMP_NUM_THREADS"] = str(s["torch_threads"])  # same thread count as our preset
            s["device"] = "cpu"
            log2, _ = run([str(lerobot_train), *lerobot_args(s, args.repo_id, root, tmp / f"lerobot_{preset}",
                                                             args.steps)], lenv)
            theirs = statistics.median(step_times(log2, args.warmup))
        ratio = f"{theirs / ours:7.2f}" if theirs else "      -"
        print(f"{preset:10} {ours:13.3f} {theirs if theirs else float('nan'):21.3f} {ratio}  "
              f"(steps/s train {1 / ours:.2f})", flush=True)
    print(f"(ratio = lerobot-train s/step / train s/step; >1 means train is faster). Runs kept in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
