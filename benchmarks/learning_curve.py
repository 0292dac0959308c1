#!/usr/bin/env python3
"""Learning curve: success and stage rates of a training run's saved checkpoints, in-process.

Rolls every `checkpoints/<step>/pretrained_model` of a `train` output directory out in the
Gymnasium environment (no ROS, faster than real time) on the same unseen seeds, through one
execution path, and writes learning_curve.json + learning_curve.png (rates vs training step).

    python benchmarks/learning_curve.py outputs/demo/train --seeds 1000-1009 --path loop-chunk \\
        --driver-params config/driver.yaml config/demo/driver.yaml --episode-time 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STAGES = ("reached", "grasped", "placed", "released")


def main() -> int:
    from soarm_act_policy.evaluation.rollout import env_kwargs_from_driver_params, evaluate_checkpoints, parse_seeds

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train_dir", type=Path, help="a train --output-dir (holds checkpoints/<step>/)")
    ap.add_argument("--seeds", nargs="+", default=["1000-1009"])
    ap.add_argument("--path", default="loop-chunk", help="execution path (see rollout --help)")
    ap.add_argument("--driver-params", nargs="*", default=["config/driver.yaml", "config/demo/driver.yaml"])
    ap.add_argument("--episode-time", type=float, default=20.0)
    ap.add_argument("--every", type=int, default=1, help="use every N-th checkpoint")
    ap.add_argument("--output-dir", type=Path, default=None, help="default: the train dir")
    args = ap.parse_args()

    steps = sorted(d for d in (args.train_dir / "checkpoints").iterdir() if d.name.isdigit())[:: args.every]
    if not steps:
        print(f"no checkpoints/<step> directories in {args.train_dir}", file=sys.stderr)
        return 2
    env_kwargs = {**env_kwargs_from_driver_params(args.driver_params), "episode_time": args.episode_time}
    results = evaluate_checkpoints([d / "pretrained_model" for d in steps], parse_seeds(args.seeds), [args.path],
                                   env_kwargs=env_kwargs)
    rows = []
    for d, r in zip(steps, results):
        summary = r["paths"][args.path]
        rows.append({"step": int(d.name), "success_rate": summary["success_rate"],
                     "stage_rates": summary.get("stage_rates") or {}})
        rates = " ".join(f"{k} {100 * (summary.get('stage_rates') or {}).get(k, 0):.0f}%" for k in STAGES)
        print(f"step {int(d.name):6d}: success {100 * summary['success_rate']:.0f}%  ({rates})", flush=True)
    out = args.output_dir or args.train_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_curve.json").write_text(json.dumps({"path": args.path, "seeds": results[0]["seeds"],
                                                         "env": results[0]["env"], "rows": rows}, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = [r["step"] for r in rows]
    for k in STAGES:
        ax.plot(x, [100 * r["stage_rates"].get(k, 0) for r in rows], marker="o", label=k)
    ax.set_xlabel("training step")
    ax.set_ylabel("% of episodes")
    ax.set_ylim(-5, 105)
    ax.set_title(f"{args.path}, {len(results[0]['seeds'])} unseen seeds, {args.episode_time:g} s episodes")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=100)
    print(f"wrote {out / 'learning_curve.json'} and {out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
