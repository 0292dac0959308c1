#!/usr/bin/env python3
"""Camera images over DDS on one host: delivered frames and latency, publisher and
subscriber in two processes, with the shipped Fast DDS profile (activate.sh selects
config/dds/local.xml through FASTDDS_DEFAULT_PROFILES_FILE).

    source activate.sh
    python benchmarks/bench_image_transport.py                       # 640x480 rgb8, 30 Hz, 10 s
    python benchmarks/bench_image_transport.py --reliability reliable --depth 5
    python benchmarks/bench_image_transport.py --profile ''          # Fast DDS defaults, no profile

The publisher sends --seconds x --rate sensor_msgs/Image (stamp = send time) once the
subscriber has matched; the subscriber (a child process) records each frame's arrival.
Prints delivered/sent (%), latency (arrival - stamp) mean / p95 / max in ms, and the
profile used. QoS default: best effort, keep last 1 (the camera topics' QoS). Asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOPIC = "/bench/image_raw"


def _qos(args):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT if args.reliability == "best_effort"
                      else ReliabilityPolicy.RELIABLE)


def subscriber(args) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_image_sub")
    got: list[tuple[int, int, int]] = []  # (frame number, stamp ns, arrival ns)

    def on_image(msg) -> None:
        now = time.time_ns()
        got.append((int(msg.header.frame_id), msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, now))

    node.create_subscription(Image, TOPIC, on_image, _qos(args))
    deadline = time.monotonic() + args.seconds + 30.0
    last = None
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
        if got and last != len(got):
            last, quiet_since = len(got), time.monotonic()
        if got and time.monotonic() - quiet_since > 2.0:
            break
    Path(args.out).write_text(json.dumps(got))
    node.destroy_node()
    rclpy.shutdown()


def publisher(args) -> None:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sub.json"
        child = subprocess.Popen([sys.executable, __file__, "--role", "sub", "--out", str(out),
                                  *sys.argv[1:]])
        rclpy.init()
        node = rclpy.create_node("bench_image_pub")
        pub = node.create_publisher(Image, TOPIC, _qos(args))
        t_end = time.monotonic() + 20.0
        while pub.get_subscription_count() < 1 and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.05)
        if pub.get_subscription_count() < 1:
            child.kill()
            raise SystemExit("the subscriber did not match within 20 s (DDS discovery): check the profile")
        time.sleep(1.0)  # let the match settle on both sides
        w, h = args.width, args.height
        msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
        msg.data = np.random.default_rng(0).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()
        n = int(args.seconds * args.rate)
        period = 1.0 / args.rate
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
            msg.header.frame_id = str(i)
            pub.publish(msg)
        send_s = time.monotonic() - t0
        child.wait(timeout=args.seconds + 60)
        got = json.loads(out.read_text()) if out.exists() else []
        node.destroy_node()
        rclpy.shutdown()
    import numpy as np

    lat = np.array([(a - s) / 1e6 for _, s, a in got]) if got else np.zeros(1)
    frames = {i for i, _, _ in got}
    print(f"profile: {os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') or '(Fast DDS defaults)'}; "
          f"{args.reliability}, keep last {args.depth}; {w}x{h} rgb8 at {args.rate:g} Hz "
          f"(sent in {send_s:.1f} s)")
    print(f"delivered {len(frames)}/{n} = {100 * len(frames) / n:.2f} %; latency mean {lat.mean():.2f} ms, "
          f"p95 {np.percentile(lat, 95):.2f} ms, max {lat.max():.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--reliability", choices=["best_effort", "reliable"], default="best_effort")
    ap.add_argument("--depth", type=int, default=1, help="keep-last history depth")
    ap.add_argument("--profile", default=None,
                    help="Fast DDS profile XML (default: $FASTDDS_DEFAULT_PROFILES_FILE; '' = none)")
    ap.add_argument("--role", choices=["pub", "sub"], default="pub", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile is not None:
        if args.profile:
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(args.profile).absolute())
        else:
            os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    (subscriber if args.role == "sub" else publisher)(args)


if __name__ == "__main__":
    main()
