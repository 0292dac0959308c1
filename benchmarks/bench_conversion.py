#!/usr/bin/env python3
"""Conversion benchmark: rosbag2 -> LeRobot dataset throughput.

    source activate.sh
    python benchmarks/bench_conversion.py                    # 2 cameras 640x480 @ 30 fps, 10 s
    python benchmarks/bench_conversion.py --seconds 20 --vcodec h264 --storage sqlite3

Writes a synthetic demonstration bag (bags.synthetic: joint_states 30 Hz, joint_commands
50 Hz, two rgb8 cameras at 30 fps) into a temporary directory, then times
`conversion.convert` (first pass, alignment, frame decoding, LeRobot add_frame /
save_episode with video encoding, finalize). LeRobot is imported before timing.
Prints frames/s (dataset frames, each with both camera images) and x real time
(recorded seconds converted per wall second). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="recorded duration (s)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    ap.add_argument("--vcodec", default=None, help="video codec (default LeRobot's: libsvtav1)")
    ap.add_argument("--image-writer-threads", type=int, default=2)
    args = ap.parse_args()

    import datasets
    import lerobot.datasets.lerobot_dataset  # noqa: F401 - import cost is not conversion cost

    from soarm_act_policy.bags.synthetic import DemoSpec, write_demo_bag
    from soarm_act_policy.conversion import Options, convert
    from soarm_act_policy.conversion.convert import plan

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        spec = DemoSpec(duration=args.seconds, camera_rate=args.fps, height=args.height, width=args.width)
        t = time.perf_counter()
        bag = write_demo_bag(Path(tmp) / "bag", spec, storage=args.storage)
        t_write = time.perf_counter() - t
        size = sum(f.stat().st_size for f in bag.iterdir()) / 1e6
        opts = Options(fps=args.fps, task="bench", vcodec=args.vcodec)

        t = time.perf_counter()
        plans, _, _ = plan([bag], opts, log=lambda s: None)
        t_plan = time.perf_counter() - t
        t = time.perf_counter()
        result = convert([bag], "bench/conversion", Path(tmp) / "ds", opts, log=lambda s: None,
                         image_writer_threads=args.image_writer_threads)
        t_conv = time.perf_counter() - t
        frames = result.written_frames
        seconds = frames / args.fps
        video = sum(f.stat().st_size for f in (Path(tmp) / "ds" / "videos").rglob("*.mp4")) / 1e6

    print(f"input: {args.storage} bag, {args.seconds:.0f} s, 2 cameras {args.width}x{args.height} rgb8 @ "
          f"{args.fps} fps, {size:.0f} MB (written in {t_write:.1f} s)")
    print(f"first pass (read, index, align, report): {t_plan:.2f} s = {frames / t_plan:.0f} frames/s")
    print(f"full conversion: {frames} frames in {t_conv:.2f} s = {frames / t_conv:.1f} frames/s, "
          f"{seconds / t_conv:.2f}x real time (videos {video:.1f} MB, codec {args.vcodec or 'LeRobot default'}, "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
