#!/usr/bin/env python3
"""Conversion benchmark: our rosbag2 -> LeRobot conversion against the bare video encoder.

    source activate.sh
    python benchmarks/bench_conversion.py                         # 128x96, 320x240, 640x480; the default codec
    python benchmarks/bench_conversion.py --sizes 640x480 --codecs libsvtav1,h264,h264:ultrafast --load-batches 20

For each image size --bags synthetic demonstration bags (bags.synthetic: joint_states 30 Hz,
joint_commands 50 Hz, two rgb8 cameras at --fps), one episode of --seconds each, are written
to a temporary directory. Default 4 x 20 s: demonstrations here last 10-30 s and a session
holds several, so per-run costs are shared by a few episodes as in real use (more bags only
lengthen the run). Then, on the same recorded frames, for each codec:

* bare encoder: each bag's frames, already decoded into memory (one bag at a time), encoded
  with PyAV directly into one video per camera and episode (the dataset's unit; LeRobot
  then joins them), the two cameras at once in two threads, as the conversion's encoding
  job does, with the codec options LeRobot's RGBEncoderConfig gives that codec (pix_fmt, crf,
  g, preset) and the codec's own thread count (the same in both);
* ours: `conversion.convert` end to end (read, align, quality report, frame decoding,
  encoding, statistics, parquet/metadata writing, finalize), `--workers` as the CLI's
  (default 1: the jobs in a thread beside the writer, two encoder threads like the bare
  encoder; more: that many processes);

and prints frames/s of both (a frame = one dataset row, i.e. one image per camera),
their ratio, x real time (recorded seconds per wall second) and the video bytes; also the
CPU seconds each used (ours: this process and any worker processes) and their ratio, which
says how much work ours adds whatever else runs on the machine, and under it where ours spent
it (conversion.cpu_times: pass 1, the encoding jobs' reading of the frames, video statistics,
LeRobot's writing; the rest is the encoder threads, the codec's own and everything unmeasured).
LeRobot is imported before
any timing: that fixed cost of a `bag_to_lerobot` run (torch, datasets) is printed apart.
With --load-batches N it also times LeRobotDataset + torch DataLoader reading the
converted dataset (decoding the videos) in batches of --batch-size: ms per batch, the
first batch (decoder start) left out. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def read_frames(bag: Path, cameras: tuple[str, ...]) -> dict:
    """Every camera image of the bag as HxWx3 uint8, per camera, in order."""
    from soarm_act_policy.bags import BagReader
    from soarm_act_policy.conversion.images import to_rgb

    topic_cam = {f"/cameras/{c}/image_raw": c for c in cameras}
    frames: dict = {c: [] for c in cameras}
    with BagReader(bag) as r:
        for m in r.messages(list(topic_cam)):
            frames[topic_cam[m.topic]].append(to_rgb(m.msg))
    return frames


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its ended child processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def bare_encode(frames: dict, out: Path, fps: int, settings) -> float:
    """Seconds to encode every camera's frames with PyAV into out/<camera>.mp4, one thread per camera."""
    import av

    av.logging.set_level(av.logging.ERROR)  # libx264's statistics per video
    enc = settings.encoder_config()  # LeRobot's RGBEncoderConfig
    options = enc.get_codec_options(None, as_strings=True)
    errors: list[BaseException] = []

    def encode(cam: str, imgs: list) -> None:
        try:
            with av.open(str(out / f"{cam}.mp4"), "w") as container:
                stream = container.add_stream(enc.vcodec, fps, options=options)
                stream.pix_fmt = enc.pix_fmt
                stream.height, stream.width = imgs[0].shape[:2]
                tb = Fraction(1, fps)  # not stream.time_base: the muxer changes it when it starts
                stream.time_base = tb
                for i, img in enumerate(imgs):
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                    frame.pts = i
                    frame.time_base = tb
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
        except BaseException as exc:  # noqa: B036 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=encode, args=item) for item in frames.items()]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t
    if errors:
        raise errors[0]
    return seconds


def load_ms_per_batch(root: Path, batches: int, batch_size: int) -> float:
    """Mean ms per DataLoader batch of LeRobotDataset(root) (video decoding), first batch excluded."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("bench/conversion", root=root)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(0))
    times = []
    it = iter(loader)
    t = time.perf_counter()
    for _ in range(batches + 1):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        now = time.perf_counter()
        times.append(now - t)
        t = now
    return 1000 * sum(times[1:]) / max(1, len(times) - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="recorded duration per bag (s)")
    ap.add_argument("--bags", type=int, default=4, help="bags (episodes) per size")
    ap.add_argument("--sizes", default="128x96,320x240,640x480", help="comma-separated WxH")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    ap.add_argument("--codecs", default="", help="comma-separated codec[:preset] (default: the conversion's "
                    "default), e.g. libsvtav1,h264:ultrafast,libsvtav1:13")
    ap.add_argument("--workers", type=int, default=1, help="conversion --workers (1: a thread, more: processes)")
    ap.add_argument("--load-batches", type=int, default=0, help="also time this many training batches")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    t_import = time.perf_counter()
    import av
    import datasets
    import lerobot.datasets.lerobot_dataset  # import cost is not conversion cost
    import lerobot.datasets.compute_stats  # noqa: F401

    t_import = time.perf_counter() - t_import

    av.logging.set_level(av.logging.ERROR)  # libx264's statistics per video

    from soarm_act_policy.bags.synthetic import DemoSpec, write_demo_bag
    from soarm_act_policy.conversion import Options, convert

    datasets.disable_progress_bars()
    codecs = [c for c in args.codecs.split(",") if c] or [Options().vcodec or "libsvtav1"]
    if any(c.count(":") > 1 for c in codecs):
        ap.error("--codecs: codec[:preset], e.g. h264:ultrafast")
    spec0 = DemoSpec()
    print(f"{os.cpu_count()} CPUs; {args.bags} x {args.seconds:.0f} s recordings, {len(spec0.cameras)} cameras rgb8 @ "
          f"{args.fps} fps, {args.storage}; conversion --workers {args.workers}; load average "
          + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    print(f"fixed cost not in 'ours': importing LeRobot (torch, datasets) took {t_import:.1f} s")
    header = (f"{'size':>8} {'codec':>16} | {'bare fr/s':>9} {'ours fr/s':>9} {'ratio':>5} | "
              f"{'bare cpu s':>10} {'ours cpu s':>10} {'ratio':>5} | {'x real':>6} {'video MB':>8}"
              + (f" | {'load ms/batch':>13}" if args.load_batches else ""))
    print(header)
    print("-" * len(header))
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            bags = Path(tmp) / "bags"
            cameras = DemoSpec().cameras
            recorded = []
            for b in range(args.bags):
                spec = DemoSpec(duration=args.seconds, t0=100.0 + 1000 * b, camera_rate=args.fps, height=h, width=w)
                recorded.append(write_demo_bag(bags / f"episode_{b:03d}", spec, storage=args.storage))
            for codec in codecs:
                vcodec, _, preset = codec.partition(":")
                opts = Options(fps=args.fps, task="bench", vcodec=vcodec, preset=int(preset) if preset.isdigit()
                               else preset or None)
                n = t_bare = cpu_bare = 0
                for b, bag in enumerate(recorded):  # one episode's frames in memory at a time
                    frames = read_frames(bag, cameras)
                    bare_dir = Path(tmp) / f"bare-{codec.replace(':', '-')}-{b}"
                    bare_dir.mkdir()
                    c0 = cpu_seconds()[0]
                    t_bare += bare_encode(frames, bare_dir, args.fps, opts.video_settings())
                    cpu_bare += cpu_seconds()[0] - c0
                    n += min(len(v) for v in frames.values())
                    del frames
                root = Path(tmp) / f"ds-{codec.replace(':', '-')}"
                c0 = cpu_seconds()
                t = time.perf_counter()
                result = convert([bags], "bench/conversion", root, opts, log=lambda s: None,
                                 workers=args.workers)
                t_ours = time.perf_counter() - t
                cpu_ours = sum(cpu_seconds()) - sum(c0)  # the worker processes have ended
                ours = result.written_frames / t_ours
                bare = n / t_bare
                video = sum(f.stat().st_size for f in (root / "videos").rglob("*.mp4")) / 1e6
                line = (f"{size:>8} {codec:>16} | {bare:9.1f} {ours:9.1f} {ours / bare:5.2f} | "
                        f"{cpu_bare:10.1f} {cpu_ours:10.1f} {cpu_bare / cpu_ours:5.2f} | "
                        f"{result.written_frames / args.fps / t_ours:6.2f} {video:8.2f}")
                if args.load_batches:
                    line += f" | {load_ms_per_batch(root, args.load_batches, args.batch_size):13.1f}"
                print(line, flush=True)
                stages = result.cpu.seconds
                parts = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
                print(f"{'':>8} {'':>16}   ours, CPU s by stage: {parts}; the encoder threads and the rest "
                      f"{cpu_ours - sum(stages.values()):.2f}", flush=True)


if __name__ == "__main__":
    main()
