"""bag_to_lerobot: convert rosbag2 recordings (sqlite3 or MCAP) into a LeRobot dataset.

    bag_to_lerobot recordings/ --repo-id me/so101_cube --root data/so101_cube
    bag_to_lerobot rec/episode_000007_* --repo-id me/so101_cube --root data/so101_cube --append
    bag_to_lerobot recordings/ --repo-id x/y --root /tmp/y --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..bags import BagError
from .convert import REPORT_NAME, convert
from .options import (
    FRAMES, INTERVENTION_FEATURE, JOINT_NAMES, ON_PROBLEM, RULES, SPLIT, VCODECS, ConversionError, Options,
)


def build_parser() -> argparse.ArgumentParser:
    d = Options()
    p = argparse.ArgumentParser(
        prog="bag_to_lerobot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="+", help="rosbag2 directories, or directories holding them "
                   "(e.g. the recorder's output_dir; bags taken in name order)")
    p.add_argument("--repo-id", required=True, help="dataset repo id, e.g. me/so101_cube")
    p.add_argument("--root", required=True, help="dataset directory (must not exist unless --append)")
    p.add_argument("--fps", type=int, default=d.fps, help="dataset frame rate, Hz (default %(default)s)")
    p.add_argument("--append", action="store_true", help="add episodes to the dataset at --root")
    p.add_argument("--dry-run", action="store_true", help="print the plan and quality report; write nothing")
    p.add_argument("--task", default=None, help="task text for recordings that carry none")
    p.add_argument("--on-problem", choices=ON_PROBLEM, default=d.on_problem,
                   help="episode with a quality problem: fail (write nothing), skip it, or warn and "
                   "keep it (default %(default)s)")
    p.add_argument("--split", choices=SPLIT, default=d.split,
                   help="episodes from episode_events (events), one per bag (bag), or events when "
                   "present (auto, default)")
    p.add_argument("--frames", choices=FRAMES, default=d.frames,
                   help="all frames of each episode (default), or only the human corrections: every "
                   "INTERVENTION_START..END window becomes an episode of its own")
    p.add_argument("--intervention-feature", choices=INTERVENTION_FEATURE, default=d.intervention_feature,
                   help="write the per-frame bool `intervention` (True while a human was in control, "
                   "LeRobot's DAgger name): when a recording holds a take-over (auto, default), always, never")
    p.add_argument("--cameras", default=None,
                   help="comma-separated camera names (default: every cameras/<name>/image_raw)")
    p.add_argument("--joints", default=",".join(JOINT_NAMES),
                   help="comma-separated joint names in dataset order (default %(default)s)")
    p.add_argument("--namespace", default=d.namespace, help="topic prefix, e.g. /so101")
    p.add_argument("--state-rule", choices=RULES, default=d.state_rule,
                   help="observation.state at a grid time: linear interpolation or hold the newest "
                   "sample (default %(default)s)")
    p.add_argument("--action-rule", choices=RULES, default=d.action_rule,
                   help="action at a grid time (default %(default)s: the newest command)")
    p.add_argument("--max-gap", type=float, default=d.max_gap_s,
                   help="stream gap that counts as a problem, s (default %(default)s)")
    p.add_argument("--frozen", type=float, default=d.frozen_s,
                   help="identical camera frames for longer than this are a problem, s (default %(default)s)")
    p.add_argument("--min-frames", type=int, default=d.min_frames,
                   help="shorter episodes are a problem (default %(default)s)")
    p.add_argument("--vcodec", choices=VCODECS, default=d.vcodec,
                   help="video codec (default %(default)s; LeRobot's own default is libsvtav1; speed, "
                   "size and training data-loading time of each: README 'Data pipeline speed')")
    p.add_argument("--preset", default=d.preset,
                   help="encoder speed preset: libsvtav1 0..13 (LeRobot's default 12), h264 "
                   "ultrafast..veryslow (default: the codec's own, medium)")
    p.add_argument("--workers", type=int, default=1,
                   help="bags encoded at once: 1 in a thread beside the writer, more each in its own "
                   "process (pays off with several bags and more than 2 cores); the dataset is the "
                   "same for any N (default %(default)s)")
    p.add_argument("--no-streaming-encoding", action="store_true",
                   help="write frames as PNG files and encode each episode afterwards (LeRobot's "
                   "recording path; much slower) instead of encoding the decoded frames directly")
    p.add_argument("--image-writer-threads", type=int, default=2,
                   help="with --no-streaming-encoding: threads writing the PNG frames (default %(default)s)")
    p.add_argument("--report", default=None, help="also write the quality report JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    """Convert. Exit codes: 0 done, 1 a conversion error (message names bag and topic), 2 bad arguments."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner per video: errors only
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local conversion never needs the Hub
    opts = Options(
        fps=args.fps, joints=tuple(s for s in args.joints.split(",") if s),
        cameras=tuple(s for s in args.cameras.split(",") if s) if args.cameras else None,
        namespace=args.namespace, state_rule=args.state_rule, action_rule=args.action_rule,
        split=args.split, task=args.task, on_problem=args.on_problem, max_gap_s=args.max_gap,
        frozen_s=args.frozen, min_frames=args.min_frames, vcodec=args.vcodec,
        preset=int(args.preset) if args.preset and args.preset.isdigit() else args.preset,
        streaming_encoding=not args.no_streaming_encoding, frames=args.frames,
        intervention_feature=args.intervention_feature)
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    try:
        result = convert(args.bags, args.repo_id, args.root, opts, append=args.append,
                         dry_run=args.dry_run, progress=not args.quiet, log=log,
                         image_writer_threads=args.image_writer_threads, workers=args.workers)
    except (ConversionError, BagError) as exc:
        print(f"bag_to_lerobot: error: {exc}", file=sys.stderr)
        return 1
    report = result.report()
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
    if args.dry_run:
        print("plan (dry run, nothing written):")
        for e in result.episodes:
            print(f"  {e.name}: {e.status:18s} {e.frames:5d} frames  task={e.task!r}  "
                  f"problems={[str(q) for q in e.problems]}")
        for f in result.failed_bags:
            print(f"  {f['bag']}: unreadable ({f['error']})")
        print(json.dumps(report, indent=2))
    else:
        print(f"quality report: {result.root / REPORT_NAME}")
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
