#!/usr/bin/env python3
"""Learning curve: success and stage rates of a training run's saved checkpoints, in-process.

Rolls every `checkpoints/<step>/pretrained_model` of a `train` output directory out in the
Gymnasium environment (no ROS, faster than real time) on the same unseen seeds, through one
execution path, and writes learning_curve.json + learning_curve.png (rates vs training step).
When the train dir holds a `checkpoint_selection.json` (select_checkpoint), the plot also shows
the validation success it chose by and marks the chosen step.

    python benchmarks/learning_curve.py outputs/demo/train --seeds 1000-1009 --path loop-chunk \\
        --driver-params config/driver.yaml config/demo/driver.yaml --episode-time 20
    python benchmarks/learning_curve.py outputs/demo/train --replot   # the plot again, from the JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STAGES = ("reached", "grasped", "placed", "released")
CURVE_JSON = "learning_curve.json"
CURVE_PNG = "learning_curve.png"


def plot(curve: dict, selection: dict | None, path: Path) -> None:
    """Stage rates vs step (+ the validation success select_checkpoint chose by) -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = curve["rows"]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = [r["step"] for r in rows]
    for k in STAGES:
        ax.plot(x, [100 * r["stage_rates"].get(k, 0) for r in rows], marker="o", label=k)
    if selection is not None:
        ax.plot([r["step"] for r in selection["rows"]], [100 * r["success_rate"] for r in selection["rows"]], "k--",
                marker="x", label=f"success, validation seeds {selection['seeds'][0]}–{selection['seeds'][-1]}")
        ax.axvline(selection["chosen_step"], color="grey", alpha=0.4, lw=6,
                   label=f"chosen: step {selection['chosen_step']}")
    ax.set_xlabel("training step")
    ax.set_ylabel("% of episodes")
    ax.set_ylim(-5, 105)
    seeds = curve["seeds"]
    ax.set_title(f"{curve['path']}, {len(seeds)} unseen seeds {seeds[0]}–{seeds[-1]}, "
                 f"{curve['env'].get('episode_time', '?')} s episodes")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train_dir", type=Path, help="a train --output-dir (holds checkpoints/<step>/)")
    ap.add_argument("--seeds", nargs="+", default=["1000-1009"])
    ap.add_argument("--path", default="loop-chunk", help="execution path (see rollout --help)")
    ap.add_argument("--driver-params", nargs="*", default=["config/driver.yaml", "config/demo/driver.yaml"])
    ap.add_argument("--episode-time", type=float, default=20.0)
    ap.add_argument("--every", type=int, default=1, help="use every N-th checkpoint")
    ap.add_argument("--output-dir", type=Path, default=None, help="default: the train dir")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from the output dir's JSON")
    args = ap.parse_args()
    out = args.output_dir or args.train_dir
    selection_file = args.train_dir / "checkpoint_selection.json"
    selection = json.loads(selection_file.read_text()) if selection_file.is_file() else None
    if args.replot:
        plot(json.loads((out / CURVE_JSON).read_text()), selection, out / CURVE_PNG)
        print(f"wrote {out / CURVE_PNG}")
        return 0

    from soarm_act_policy.evaluation.rollout import env_kwargs_from_driver_params, evaluate_checkpoints, parse_seeds

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
    out.mkdir(parents=True, exist_ok=True)
    curve = {"path": args.path, "seeds": results[0]["seeds"], "env": results[0]["env"], "rows": rows}
    (out / CURVE_JSON).write_text(json.dumps(curve, indent=2) + "\n")
    plot(curve, selection, out / CURVE_PNG)
    print(f"wrote {out / CURVE_JSON} and {out / CURVE_PNG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
