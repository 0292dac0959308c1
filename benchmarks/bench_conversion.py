#!/usr/bin/env python3
"""Conversion benchmark: our rosbag2 -> LeRobot conversion against the bare video encoder.

    source activate.sh
    python benchmarks/bench_conversion.py                         # 128x96, 320x240, 640x480; LeRobot's codec
    python benchmarks/bench_conversion.py --sizes 640x480 --codecs libsvtav1,h264,h264:ultrafast --load-batches 20

For each image size --bags synthetic demonstration bags (bags.synthetic: joint_states 30 Hz,
joint_commands 50 Hz, two rgb8 cameras at --fps) is written to a temporary directory.
Then, on the same recorded frames, for each codec:

* bare encoder: the bag's frames, already decoded into memory, encoded with PyAV
  directly, one thread per camera (as LeRobot's streaming encoder does), with the codec
  options LeRobot's RGBEncoderConfig gives that codec (pix_fmt, crf, g, preset);
* ours: `conversion.convert` end to end (read, align, quality report, frame decoding,
  encoding, parquet/metadata writing, finalize), `--workers` processes;

and prints frames/s of both (a frame = one dataset row, i.e. one image per camera),
their ratio, x real time (recorded seconds per wall second) and the video bytes.
With --load-batches N it also times LeRobotDataset + torch DataLoader reading the
converted dataset (decoding the videos) in batches of --batch-size: ms per batch, the
first batch (decoder start) left out. LeRobot is imported before any timing.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
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


def bare_encode(frames: dict, out: Path, fps: int, settings) -> float:
    """Seconds to encode every camera's frames with PyAV, one thread per camera."""
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
    ap.add_argument("--seconds", type=float, default=10.0, help="recorded duration per bag (s)")
    ap.add_argument("--bags", type=int, default=1, help="bags (episodes) per size")
    ap.add_argument("--sizes", default="128x96,320x240,640x480", help="comma-separated WxH")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    ap.add_argument("--codecs", default="", help="comma-separated codec[:preset] (default: the conversion's "
                    "default), e.g. libsvtav1,h264:ultrafast,libsvtav1:13")
    ap.add_argument("--workers", type=int, default=1, help="conversion worker processes")
    ap.add_argument("--load-batches", type=int, default=0, help="also time this many training batches")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import av
    import datasets
    import lerobot.datasets.lerobot_dataset  # noqa: F401 - import cost is not conversion cost

    av.logging.set_level(av.logging.ERROR)  # libx264's statistics per video

    from soarm_act_policy.bags.synthetic import DemoSpec, write_demo_bag
    from soarm_act_policy.conversion import Options, convert

    datasets.disable_progress_bars()
    codecs = [c for c in args.codecs.split(",") if c] or [Options().vcodec or "libsvtav1"]
    if any(c.count(":") > 1 for c in codecs):
        ap.error("--codecs: codec[:preset], e.g. h264:ultrafast")
    spec0 = DemoSpec()
    print(f"{os.cpu_count()} CPUs; {args.bags} x {args.seconds:.0f} s recordings, {len(spec0.cameras)} cameras rgb8 @ "
          f"{args.fps} fps, {args.storage}; conversion --workers {args.workers}")
    header = (f"{'size':>8} {'codec':>16} | {'bare fr/s':>9} {'ours fr/s':>9} {'ratio':>5} | "
              f"{'x real':>6} {'video MB':>8}" + (f" | {'load ms/batch':>13}" if args.load_batches else ""))
    print(header)
    print("-" * len(header))
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            bags = Path(tmp) / "bags"
            frames: dict = {}
            for b in range(args.bags):
                spec = DemoSpec(duration=args.seconds, t0=100.0 + 1000 * b, camera_rate=args.fps, height=h, width=w)
                bag = write_demo_bag(bags / f"episode_{b:03d}", spec, storage=args.storage)
                for c, imgs in read_frames(bag, spec.cameras).items():
                    frames.setdefault(c, []).extend(imgs)
            n = min(len(v) for v in frames.values())
            for codec in codecs:
                bare_dir = Path(tmp) / f"bare-{codec.replace(':', '-')}"
                bare_dir.mkdir()
                vcodec, _, preset = codec.partition(":")
                opts = Options(fps=args.fps, task="bench", vcodec=vcodec, preset=int(preset) if preset.isdigit()
                               else preset or None)
                t_bare = bare_encode(frames, bare_dir, args.fps, opts.video_settings())
                root = Path(tmp) / f"ds-{codec.replace(':', '-')}"
                t = time.perf_counter()
                result = convert([bags], "bench/conversion", root, opts, log=lambda s: None,
                                 workers=args.workers)
                t_ours = time.perf_counter() - t
                ours = result.written_frames / t_ours
                bare = n / t_bare
                video = sum(f.stat().st_size for f in (root / "videos").rglob("*.mp4")) / 1e6
                line = (f"{size:>8} {codec:>16} | {bare:9.1f} {ours:9.1f} {ours / bare:5.2f} | "
                        f"{result.written_frames / args.fps / t_ours:6.2f} {video:8.2f}")
                if args.load_batches:
                    line += f" | {load_ms_per_batch(root, args.load_batches, args.batch_size):13.1f}"
                print(line, flush=True)
            del frames


if __name__ == "__main__":
    main()
