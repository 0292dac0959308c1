"""`replay`: play the recorded actions of LeRobot dataset episodes on the running driver.

Like `lerobot-replay`, through ROS: for each chosen episode, `reset_episode` with the
episode's scene seed (from the dataset's per-episode metadata, written by bag_to_lerobot),
then the episode's `action` column on `joint_trajectory`, timed from the driver's STARTED
event at the dataset's fps. Reports per episode whether the driver's task reported SUCCESS,
the stages reached, and the RMS difference per joint between the replayed joint states and
the recorded `observation.state`.

    replay --repo-id local/soarm_sim_demo --root outputs/demo/dataset --episodes 0 1 2

Joints are matched by name (`shoulder_pan.pos`, ...); values are radians for datasets of this
project, LeRobot's SO-101 units (degrees, gripper 0..100) for others (--units). Writes
<output-dir>/replay_report.json and prints a table. Extra ROS arguments go after --ros-args
(e.g. a namespace: --ros-args -r __ns:=/arm1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from ..joints import JOINT_NAMES
from .core import UNITS_CHOICES, ReplayError, format_table, load_dataset, summarize

REPORT_JSON = "replay_report.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo-id", required=True, help="dataset repo id, e.g. local/soarm_sim_demo")
    p.add_argument("--root", type=Path, default=None,
                   help="dataset directory (holding meta/info.json) or a parent holding <repo-id>/ "
                        "(default: $HF_LEROBOT_HOME/<repo-id>, else the Hub)")
    p.add_argument("--episodes", type=int, nargs="*", default=None,
                   help="dataset episode indices to replay, e.g. --episodes 0 1 2 (default: all)")
    p.add_argument("--fps", type=float, default=None,
                   help="play at this many frames per second instead of the dataset's fps")
    p.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                   help="joint units of the dataset: radians (this project's datasets), lerobot_degrees "
                        "(LeRobot SO-101: degrees, gripper 0..100), lerobot_range100; auto: radians for "
                        "datasets written by bag_to_lerobot or with all |values| <= 3.5, else lerobot_degrees")
    p.add_argument("--joint-ranges", type=float, nargs=12, default=None, metavar="RAD",
                   help="calibrated [min max] rad per joint for lerobot_* units (default: URDF limits)")
    p.add_argument("--window", type=float, default=1.0,
                   help="s of recorded frames in each published JointTrajectory (default: 1.0)")
    p.add_argument("--publish-rate", type=float, default=10.0,
                   help="JointTrajectory windows published per second (default: 10)")
    p.add_argument("--hold-time", type=float, default=1.0,
                   help="s after the last frame to wait for the task's SUCCESS (default: 1)")
    p.add_argument("--lead-in-speed", type=float, default=0.5,
                   help="rad/s to move to the first frame when the arm is > 0.05 rad from it after the "
                        "reset (default: 0.5)")
    p.add_argument("--seed", type=int, default=-1,
                   help="reset seed for episodes whose metadata has none (default: -1, the driver picks)")
    p.add_argument("--no-randomize", dest="randomize", action="store_false",
                   help="reset to the nominal scene instead of the seed's random one")
    p.add_argument("--task", default="", help="task text for the resets (default: each episode's task)")
    p.add_argument("--use-sim-time", action=argparse.BooleanOptionalAction, default=None,
                   help="follow /clock (default: when the driver publishes /clock)")
    p.add_argument("--enable-driver", action=argparse.BooleanOptionalAction, default=True,
                   help="call driver/enable true before the first episode (default: on)")
    p.add_argument("--service-timeout", type=float, default=30.0, help="max wait for a service, s (default: 30)")
    p.add_argument("--reset-time", type=float, default=60.0, help="max time for each reset, s (default: 60)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="where replay_report.json goes (default: outputs/replay/<date>_<time>)")
    return p


def resolve_root(root: Path | None, repo_id: str) -> Path | None:
    """The dataset directory: `root` itself, or `root/<repo-id>` (as `train --dataset-root`)."""
    if root is None or (root / "meta" / "info.json").exists():
        return root
    if (root / repo_id / "meta" / "info.json").exists():
        return root / repo_id
    return root


def main(argv: list[str] | None = None) -> int:
    """Replay the episodes. Exit codes: 0 every episode ran, 1 a missing driver/clock or an episode error,
    2 bad arguments or a dataset it cannot replay, 130 Ctrl-C (the report so far is still written)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    args = build_parser().parse_args(argv)
    for name in ("window", "publish_rate", "lead_in_speed", "service_timeout", "reset_time"):
        if getattr(args, name) <= 0:
            print(f"replay: error: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    if args.fps is not None and args.fps <= 0 or args.hold_time < 0:
        print("replay: error: --fps must be > 0 and --hold-time >= 0", file=sys.stderr)
        return 2
    if args.window * args.publish_rate < 2:
        print("replay: error: --window must cover at least two publish periods (window x publish-rate >= 2) "
              "so the driver never runs off the end of what was published", file=sys.stderr)
        return 2
    ranges = None
    if args.joint_ranges:
        v = args.joint_ranges
        ranges = {j: (v[2 * i], v[2 * i + 1]) for i, j in enumerate(JOINT_NAMES)}
    root = resolve_root(args.root, args.repo_id)
    try:
        dataset = load_dataset(args.repo_id, root, args.episodes, args.units, ranges)
    except (ReplayError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"replay: error: {exc}", file=sys.stderr)
        return 2
    fps = args.fps or dataset.fps
    out = args.output_dir or Path("outputs/replay") / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    print(f"[replay] {args.repo_id} ({dataset.root}): {len(dataset.episodes)} of {dataset.total_episodes} "
          f"episodes at {fps:g} fps, units {dataset.units} ({dataset.units_reason})", flush=True)
    for w in dataset.warnings:
        print(f"[replay] warning: {w}", flush=True)

    from ..evaluation.client import EvaluationError
    from ..evaluation.report import write_json
    from .client import ReplayClient, ReplaySettings

    settings = ReplaySettings(
        fps=args.fps, window=args.window, publish_rate=args.publish_rate, hold_time=args.hold_time,
        lead_in_speed=args.lead_in_speed, seed=args.seed, randomize=args.randomize, task=args.task,
        use_sim_time={None: "auto", True: "on", False: "off"}[args.use_sim_time],
        enable_driver=args.enable_driver, service_timeout=args.service_timeout, reset_time=args.reset_time)
    client = ReplayClient(settings, args=["replay", *ros_args] if ros_args else None)
    results, sinces = [], []
    rc = 0
    t_start = time.monotonic()
    try:
        client.prepare()
        n = len(dataset.episodes)
        for i, ep in enumerate(dataset.episodes):
            client.log(f"episode {i + 1}/{n}: dataset episode {ep.index}, {ep.frames} frames, seed {ep.seed} ...")
            r, since = client.replay_episode(ep, fps)
            results.append(r)
            sinces.append(since)
            what = (f"error: {r.error}" if r.error else
                    f"SUCCESS at {r.time_to_success:.2f} s" if r.success else "no success")
            rms = f"; state RMS max {max(r.state_rms) * 1000:.1f} mrad" if r.state_rms else ""
            client.log(f"episode {i + 1}/{n} (dataset {ep.index}, seed {r.seed}): {what}{rms}; "
                       f"{sum(x.success for x in results)}/{len(results)} succeeded so far")
        time.sleep(0.2)  # the last ENDED/stage events in flight
    except EvaluationError as e:
        print(f"replay: error: {e}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print("replay: interrupted; writing the report of the finished episodes", file=sys.stderr)
        rc = 130
    finally:
        # ENDED events (published at the next reset) may carry stages the SUCCESS did not
        for r, since in zip(results, sinces):
            if r.driver_episode_index >= 0:
                bits = client.stages_of(r.driver_episode_index, since)
                if bits is not None:
                    r.stages = bits
        client.close()
    report = summarize(results, dataset, {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "fps": fps, "output_dir": str(out), "wall_time_s": round(time.monotonic() - t_start, 1)})
    path = write_json(report, out / REPORT_JSON)
    print(format_table(results), flush=True)
    rms = report["state_rms"]
    print(f"[replay] success: {report['successes']}/{report['num_episodes']}"
          + ("; state RMS (rad) " + ", ".join(f"{j} {v:.4f}" for j, v in rms.items()) if rms else "")
          + f"; report: {path}", flush=True)
    if rc == 0 and (not results or any(r.error for r in results)):
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
