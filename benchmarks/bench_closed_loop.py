#!/usr/bin/env python3
"""Closed-loop benchmark: one checkpoint, the same seeds, every way of running it.

    source activate.sh
    python benchmarks/bench_closed_loop.py CHECKPOINT --seed 1000 --episodes 10
    python benchmarks/bench_closed_loop.py CHECKPOINT --ros-modes chunk ensemble async   # + through ROS
    python benchmarks/bench_closed_loop.py --random cpu --episodes 2 --episode-time 5      # smoke run

Rows (success rate, stage rates reached / grasped / placed / released, wall time):

  in-process (`soarm_act_policy.evaluation.rollout`, the sim as the Gymnasium env
  soarm/PickPlace-v0, no DDS, as fast as the CPU allows):
    lerobot           LeRobot's select_action, its n_action_steps queue
    lerobot-ensemble  LeRobot's select_action with its temporal ensembling
    loop-chunk        our ControlLoop, chunk mode     (the policy node's tick, in-process)
    loop-ensemble     our ControlLoop, ensemble mode
    loop-async        our ControlLoop, async mode     (paced to real time: inference runs beside it)
  through ROS (--ros-modes; real processes over DDS on sim time, real time factor 1):
    ros-<mode>        sim driver + policy node (mode:=<mode>) + `evaluate`, started with
                      scripts/demo.py's own machinery (its Demo.start / run_to_end), with
                      `evaluate --seed <seed> --num-episodes <episodes>`: the same scenes.

All rows use the demo's driver parameters (config/driver.yaml + config/demo/driver.yaml: home
pose, limits, control rate, scene spread; --driver-params to change) with the cameras at the
checkpoint's image size. In-process, inference
takes no sim time (the sim waits for the model), so those rows are the model's ceiling; the
ROS rows pay real inference and transport time. Prints a table; writes the full JSON (every
episode) to --output-dir. Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
IN_PROCESS = ("lerobot", "lerobot-ensemble", "loop-chunk", "loop-ensemble", "loop-async")
ROS_MODES = ("chunk", "ensemble", "async", "auto")


def random_checkpoint(preset: str, out: Path, size: tuple[int, int]) -> Path:
    from soarm_act_policy.random_checkpoint import cached_random_checkpoint

    w, h = size
    return cached_random_checkpoint(out / "random_ckpts", f"{preset}_{w}x{h}", preset=preset, image_hw=(h, w))


def checkpoint_image_size(ckpt: Path) -> tuple[int, int] | None:
    from soarm_act_policy.checkpoint import read_spec

    shapes = list(read_spec(ckpt).image_shapes.values())
    return (int(shapes[0][2]), int(shapes[0][1])) if shapes else None


def in_process_rows(ckpt: Path, seeds: list[int], paths: list[str], args, env_kwargs: dict) -> dict:
    from soarm_act_policy.evaluation.rollout import evaluate_checkpoint

    report = evaluate_checkpoint(ckpt, seeds, paths, env_kwargs=env_kwargs, device=args.device,
                                 n_action_steps=args.n_action_steps, ensemble_coeff=args.ensemble_coeff,
                                 progress=True)
    return report["paths"]


def _demo_module():
    spec = importlib.util.spec_from_file_location("soarm_demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ros_row(ckpt: Path, mode: str, seeds: list[int], args, out: Path) -> dict:
    """One mode through ROS: sim driver + policy node + evaluate, on consecutive seeds."""
    demo = _demo_module()
    run_dir = out / f"ros_{mode}"
    d = demo.Demo(demo.build_parser().parse_args([
        "--output-dir", str(run_dir), "--eval-episodes", str(len(seeds)), "--episode-time", str(args.episode_time),
        "--eval-seed", str(seeds[0]), "--domain-id", str(args.domain_id),
        *(["--image-size", "{}x{}".format(*args.image_size)] if args.image_size else [])]))
    d.out.mkdir(parents=True, exist_ok=True)
    d.logs.mkdir(exist_ok=True)
    t0 = time.monotonic()
    try:
        driver = d.driver(1.0)  # real time, as the demo evaluates
        params = {"checkpoint": str(ckpt), "use_sim_time": True, "mode": mode, "device": args.device}
        if args.n_action_steps:
            params["n_action_steps"] = args.n_action_steps
        policy = d.start("policy", "soarm_act_policy", "policy",
                         params_files=[CONFIG / "policy.yaml", CONFIG / "demo" / "policy.yaml"], params=params,
                         echo=r"(?i)error|warm-up|mode")
        ev = d.start("evaluate", "soarm_act_policy", "evaluate", ros=False,
                     args=["--num-episodes", str(len(seeds)), "--episode-time", str(args.episode_time),
                           "--seed", str(seeds[0]), "--service-timeout", "180", "--output-dir", str(run_dir / "eval"),
                           "--no-plot"],
                     echo=r"\[evaluate\]|error")
        d.run_to_end(ev, timeout=300 + len(seeds) * (3 * args.episode_time + 60), what=f"evaluation ({mode})")
        d.stop(policy, driver)
    except demo.DemoError as e:
        return {"path": f"ros-{mode}", "error": str(e).splitlines()[0], "wall_s": round(time.monotonic() - t0, 1)}
    finally:
        d.stop_all()
    rep = json.loads((run_dir / "eval" / "eval_report.json").read_text())
    return {
        "path": f"ros-{mode}", "num_episodes": rep["num_episodes"], "successes": rep["successes"],
        "success_rate": rep["success_rate"], "stage_rates": rep.get("stage_rates"),
        "mean_time_to_success": rep["mean_time_to_success"], "wall_s": round(time.monotonic() - t0, 1),
        "episodes": rep["episodes"], "report": str(run_dir / "eval" / "eval_report.json"),
    }


def table(rows: list[dict]) -> str:
    head = (f"{'path':18s} {'success':>9s} {'reached':>8s} {'grasped':>8s} {'placed':>8s} {'released':>9s} "
            f"{'wall s':>8s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("error") or "success_rate" not in r:
            lines.append(f"{r['path']:18s} {r.get('error') or r.get('note', '')}")
            continue
        st = r.get("stage_rates") or {}

        def pct(k, st=st):
            return f"{100 * st[k]:.0f} %" if k in st else "n/a"

        ok = f"{r['successes']}/{r['num_episodes']}"
        lines.append(f"{r['path']:18s} {ok:>9s} {pct('reached'):>8s} {pct('grasped'):>8s} {pct('placed'):>8s} "
                     f"{pct('released'):>9s} {r['wall_s']:8.1f}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", help="LeRobot pretrained_model dir (or a training output dir)")
    p.add_argument("--random", choices=("tiny", "cpu", "baseline"), default=None,
                   help="benchmark a random checkpoint of this preset instead (smoke run: success 0)")
    p.add_argument("--seed", type=int, default=1000, help="first scene seed (default: 1000, as evaluate)")
    p.add_argument("--episodes", type=int, default=10, help="episodes (seeds seed..seed+episodes-1) per row")
    p.add_argument("--episode-time", type=float, default=30.0, help="s of sim time per episode (default: 30)")
    p.add_argument("--paths", nargs="*", default=list(IN_PROCESS), choices=IN_PROCESS, help="in-process rows")
    p.add_argument("--ros-modes", nargs="*", default=[], choices=ROS_MODES,
                   help="through-ROS rows (policy node modes; each starts driver + policy + evaluate)")
    p.add_argument("--driver-params", nargs="*",
                   default=[str(CONFIG / "driver.yaml"), str(CONFIG / "demo" / "driver.yaml")],
                   help="driver parameter files for the in-process env (default: the demo's)")
    p.add_argument("--n-action-steps", type=int, default=0, help="chunk paths: actions per chunk (0: checkpoint's)")
    p.add_argument("--ensemble-coeff", type=float, default=0.01)
    p.add_argument("--device", default="cpu")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch threads in-process (default 1, as the demo's policy)")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0") or 0) or 77,
                   help="ROS_DOMAIN_ID of the ROS rows")
    p.add_argument("--output-dir", type=Path, default=Path("/tmp/bench_closed_loop"))
    args = p.parse_args()
    if not args.checkpoint and not args.random:
        p.error("give a CHECKPOINT or --random PRESET")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch
    from soarm_act_policy.checkpoint import resolve_checkpoint
    from soarm_act_policy.evaluation.rollout import env_kwargs_from_driver_params

    torch.set_num_threads(max(args.torch_threads, 1))
    env_kwargs = {**env_kwargs_from_driver_params(args.driver_params), "episode_time": args.episode_time}
    if args.random:
        ckpt = random_checkpoint(args.random, args.output_dir, env_kwargs.get("image_size", (128, 96)))
    else:
        ckpt = resolve_checkpoint(args.checkpoint)
    # every row sees the checkpoint's image size (the driver of the ROS rows publishes it too)
    args.image_size = checkpoint_image_size(ckpt)
    if args.image_size:
        env_kwargs["image_size"] = args.image_size
    seeds = list(range(args.seed, args.seed + args.episodes))
    print(f"checkpoint {ckpt}\nseeds {seeds[0]}..{seeds[-1]}, {args.episode_time:g} s episodes, env {env_kwargs}",
          flush=True)

    rows = []
    if args.paths:
        t0 = time.monotonic()
        rows.extend(in_process_rows(ckpt, seeds, args.paths, args, env_kwargs).values())
        print(f"in-process rows done in {time.monotonic() - t0:.0f} s", flush=True)
    for mode in args.ros_modes:
        print(f"through ROS, mode {mode} ...", flush=True)
        rows.append(ros_row(ckpt, mode, seeds, args, args.output_dir))
    if not args.ros_modes:
        rows.append({"path": "ros-<mode>", "note": "not run: add --ros-modes chunk ensemble async (driver + policy "
                     "node + evaluate per mode, ~1 min + episodes x (episode time + ~5 s) each)"})
    print()
    print(table(rows))
    out = args.output_dir / "bench_closed_loop.json"
    out.write_text(json.dumps({"checkpoint": str(ckpt), "seeds": seeds, "episode_time": args.episode_time,
                               "env": {k: (list(v) if isinstance(v, tuple) else v) for k, v in env_kwargs.items()},
                               "rows": rows}, indent=2) + "\n")
    print(f"\nfull report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
