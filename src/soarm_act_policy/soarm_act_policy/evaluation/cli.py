"""`evaluate`: run N closed-loop episodes of the running policy node against the running driver.

Each episode is one goal of the run_policy action (soarm_msgs/action/RunPolicy), served by a
server evaluate hosts itself (or a running run_policy_server: --action run_policy).
Start the driver (sim backend by default) and the policy node (with a checkpoint) first:

    evaluate --num-episodes 10 --episode-time 30 --output-dir outputs/eval_run1

Writes <output-dir>/eval_report.json and eval_report.png and prints the success rate and
the rate of each task stage (reached / grasped / placed / released; sim driver only).
To save the episodes as a LeRobot dataset, as the seeds' inference command does:

    evaluate --num-episodes 5 --repo-id me/eval_so101 [--root DIR] [--push-to-hub] [--display-data]

(evaluate runs the recorder, one bag per episode, and converts them after the last one;
evaluation/to_dataset.py). Or run the recorder yourself and convert with bag_to_lerobot.
Extra ROS arguments go after --ros-args (e.g. a namespace: --ros-args -r __ns:=/arm1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from .report import REPORT_JSON, REPORT_PNG, format_stage_rates, stage_names, summarize, write_json, write_plot


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-episodes", type=int, default=10, help="episodes to run (default: 10)")
    p.add_argument("--episode-time", type=float, default=60.0,
                   help="max policy time per episode, s of node clock (sim time with use_sim_time) (default: 60)")
    p.add_argument("--reset-time", type=float, default=60.0,
                   help="max time for the driver's reset (home + new scene) between episodes, s (default: 60)")
    p.add_argument("--hold-time", type=float, default=1.0,
                   help="pause after each episode with the arm holding, s (default: 1)")
    p.add_argument("--task-description", default="",
                   help="task text for the episodes (default: the driver's task)")
    p.add_argument("--fps", type=float, default=30.0,
                   help="rate at which evaluate checks for success/timeout, Hz (default: 30)")
    p.add_argument("--seed", type=int, default=1000,
                   help="scene seed of episode 0; episode i uses seed+i (default: 1000, apart from demo seeds)")
    p.add_argument("--no-randomize", dest="randomize", action="store_false",
                   help="nominal scene instead of a random one")
    p.add_argument("--use-sim-time", action=argparse.BooleanOptionalAction, default=True,
                   help="follow /clock (sim); --no-use-sim-time on real hardware (default: on)")
    p.add_argument("--enable-driver", action=argparse.BooleanOptionalAction, default=True,
                   help="call driver/enable true before the first episode (default: on)")
    p.add_argument("--service-timeout", type=float, default=30.0, help="max wait for a service, s (default: 30)")
    p.add_argument("--action", default="",
                   help="run the episodes through this running run_policy action server (e.g. run_policy, from "
                        "`ros2 run soarm_act_policy run_policy_server`); default: evaluate hosts one itself "
                        "(action evaluate/run_policy)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="where the report goes (default: outputs/eval/<date>_<time>)")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG plot")
    d = p.add_argument_group("rollouts as a LeRobot dataset (as the seeds' inference command)")
    d.add_argument("--repo-id", default=None,
                   help="save the episodes as this LeRobot dataset: evaluate runs the recorder (one bag per episode "
                        "in <output-dir>/bags) and converts them after the last episode, each episode's outcome and "
                        "interventions in its metadata (soarm/outcome, soarm/interventions, soarm/human_time_s)")
    d.add_argument("--root", type=Path, default=None,
                   help="dataset directory; episodes are appended when it exists (default: <output-dir>/dataset)")
    d.add_argument("--push-to-hub", action="store_true", help="upload the dataset to the Hugging Face Hub after")
    d.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                   help="cameras as videos in the dataset (the converter writes videos only; default: on)")
    d.add_argument("--display-data", action=argparse.BooleanOptionalAction, default=False,
                   help="show the camera feeds in a rerun viewer while running (needs rerun-sdk)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation. Exit codes: 0 episodes ran, 1 a missing node/service or clock (or no episode ran
    without error), 2 bad arguments, 130 Ctrl-C (the report of the finished episodes is still written)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    args = build_parser().parse_args(argv)
    for name in ("num_episodes", "episode_time", "reset_time", "fps"):
        if getattr(args, name) <= 0:
            print(f"evaluate: error: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    out = args.output_dir or Path("outputs/eval") / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    from .to_dataset import DisplayUnavailable, RolloutRecorder, require_rerun, save_rollouts, show_cameras

    if (args.root or args.push_to_hub) and not args.repo_id:
        print("evaluate: error: --root and --push-to-hub save a dataset: give --repo-id too", file=sys.stderr)
        return 2
    if not args.video:
        print("evaluate: error: --no-video: the converter writes the cameras as videos only", file=sys.stderr)
        return 2
    try:
        rerun = require_rerun() if args.display_data else None
    except DisplayUnavailable as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        return 2

    from ..joints import JOINT_NAMES
    from .client import EvalClient, EvalSettings, EvaluationError

    settings = EvalSettings(
        num_episodes=args.num_episodes, episode_time=args.episode_time, reset_time=args.reset_time,
        hold_time=args.hold_time, task_description=args.task_description, fps=args.fps, seed=args.seed,
        randomize=args.randomize, use_sim_time=args.use_sim_time, enable_driver=args.enable_driver,
        service_timeout=args.service_timeout, action=args.action,
    )
    client = EvalClient(settings, args=["evaluate", *ros_args] if ros_args else None, run_policy=True)
    episodes = []
    rc = 0
    t_start = time.monotonic()
    recorder = None
    try:
        client.prepare()
        if rerun is not None:
            show_cameras(client.node, rerun)
        if args.repo_id:
            recorder = RolloutRecorder(out / "bags", args.use_sim_time, ros_args)
            recorder.wait_ready(client.node, args.service_timeout)
            client.log(f"recording the episodes into {out / 'bags'} (recorder log {recorder.log_path})")
        for i in range(args.num_episodes):
            client.log(f"episode {i + 1}/{args.num_episodes} (seed {args.seed + i}) ...")
            r = client.run_episode(i)
            episodes.append(r)
            ok = sum(e.success for e in episodes)
            what = (f"SUCCESS after {r.time_to_success:.1f} s" if r.success else
                    f"error: {r.error}" if r.error else f"FAILURE (timeout {args.episode_time:.0f} s)")
            lat = r.latency.get("median")
            reached = "" if r.stages is None else f"; stages: {', '.join(stage_names(r.stages)) or 'none'}"
            latency = "" if lat is None else f"; inference median {lat * 1000:.0f} ms"
            client.log(f"episode {i + 1}/{args.num_episodes}: {what}{reached}{latency}")
            client.log(f"running success rate {ok}/{len(episodes)}")
    except (EvaluationError, RuntimeError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print("evaluate: interrupted; writing the report of the finished episodes", file=sys.stderr)
        rc = 130
    finally:
        all_lat = list(client.all_latencies)
        client.close()
        if recorder is not None:
            recorder.stop()
    saved = {"root": str(args.root) if args.root else None}
    if recorder is not None and episodes:
        root = args.root or out / "dataset"
        try:
            saved = save_rollouts(out / "bags", args.repo_id, root, episodes, push_to_hub=args.push_to_hub,
                                  log=lambda s: print(f"[evaluate] {s}", flush=True))
        except Exception as e:  # conversion or Hub errors: the report is still written, exit 1
            print(f"evaluate: error: saving the dataset failed: {e}", file=sys.stderr)
            rc = rc or 1
        else:
            print(f"[evaluate] dataset {args.repo_id}: {saved['episodes']} episodes ({saved['frames']} frames) "
                  f"added at {saved['root']}", flush=True)
    report = summarize(episodes, all_lat, {**vars(args), "output_dir": str(out), "root": saved.get("root"),
                                           "wall_time_s": round(time.monotonic() - t_start, 1)})
    json_path = write_json(report, out / REPORT_JSON)
    if args.plot and episodes:
        write_plot(episodes, all_lat, JOINT_NAMES, out / REPORT_PNG,
                   title=f"success rate {report['successes']}/{report['num_episodes']}")
    print(f"[evaluate] success rate: {report['successes']}/{report['num_episodes']} "
          f"({100 * report['success_rate']:.0f} %); report: {json_path}", flush=True)
    print(f"[evaluate] stage rates: {format_stage_rates(report['stage_rates'])}", flush=True)
    if report["interventions"]:
        print(f"[evaluate] interventions: {report['interventions']} in {report['episodes_with_interventions']} "
              f"episodes, {report['human_time']:.1f} s under human control", flush=True)
    if rc == 0 and (not episodes or all(e.error for e in episodes)):
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
