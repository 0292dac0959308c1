#!/usr/bin/env python3
"""Camera images between two "hosts" (network namespaces behind a router, unicast UDP only).

Publishes two rgb8 camera topics (sensor-data QoS: best effort, keep last 5) at 30 Hz on the
"robot" host and receives them on the "GPU host", for several image sizes and Fast DDS
profiles, and prints delivered fraction, latency (mean / p95, from header.stamp; both hosts
share this machine's clock) and received bandwidth. The veth link itself is not the limit
here (it is memory); the numbers show the DDS/UDP path and the effect of socket buffers.

    sudo python benchmarks/bench_multi_machine.py [--seconds 5] [--sizes 640x480,320x240,128x96]

Needs root and iproute2 (network namespaces), a built workspace (`source activate.sh`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from multi_machine_hosts import TwoHosts, dds_env, run, stop  # noqa: E402

PUBLISHER = r'''
import sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
w, h, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rclpy.init()
node = rclpy.create_node("bench_cameras")
pubs = [node.create_publisher(Image, f"cameras/{c}/image_raw", qos_profile_sensor_data) for c in ("front", "wrist")]
data = np.random.default_rng(0).integers(0, 256, size=h * w * 3, dtype=np.uint8).tobytes()
time.sleep(3.0)  # discovery
t_end = time.monotonic() + seconds
next_t = time.monotonic()
while time.monotonic() < t_end:
    for pub, name in zip(pubs, ("front", "wrist")):
        msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)
        msg.header.frame_id = f"{name}_camera_optical_frame"
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
    next_t += 1 / 30
    time.sleep(max(0.0, next_t - time.monotonic()))
time.sleep(1.0)
'''

SUBSCRIBER = r'''
import json, sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
seconds = float(sys.argv[1])
rclpy.init()
node = rclpy.create_node("bench_policy_side")
lat, nbytes, first = [], [0], [None]
def cb(msg):
    now = node.get_clock().now().nanoseconds
    first[0] = first[0] or time.monotonic()
    lat.append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e6)
    nbytes[0] += len(msg.data)
for c in ("front", "wrist"):
    node.create_subscription(Image, f"cameras/{c}/image_raw", cb, qos_profile_sensor_data)
t_end = time.monotonic() + seconds + 6.0
while time.monotonic() < t_end:
    rclpy.spin_once(node, timeout_sec=0.05)
span = (time.monotonic() - first[0]) if first[0] else 1.0
print("RESULT " + json.dumps({"received": len(lat), "latency_ms": sorted(lat),
                             "mbytes_per_s": nbytes[0] / 1e6 / seconds}))
'''


def profile_variants(hosts: TwoHosts, tmp: Path) -> dict[str, Path]:
    """unicast.xml for these hosts, and the same without its socket buffer sizes."""
    made = tmp / "unicast.xml"
    run(sys.executable, str(ROOT / "config" / "dds" / "make_profile.py"), "unicast", "-o", str(made),
        "--peers", hosts.addr["robot"], hosts.addr["gpu"])
    text = made.read_text()
    plain = tmp / "unicast_default_buffers.xml"
    plain.write_text("\n".join(line for line in text.splitlines()
                               if "sendBufferSize" not in line and "receiveBufferSize" not in line))
    return {"unicast.xml (8 MiB buffers)": made, "unicast, default buffers": plain}


def measure(hosts: TwoHosts, tmp: Path, profile: Path, w: int, h: int, seconds: float) -> dict:
    env = dds_env(profile)
    (tmp / "pub.py").write_text(PUBLISHER)
    (tmp / "sub.py").write_text(SUBSCRIBER)
    sub = hosts.popen("gpu", [sys.executable, str(tmp / "sub.py"), str(seconds)], env, tmp / "sub.log")
    time.sleep(1.0)
    pub = hosts.popen("robot", [sys.executable, str(tmp / "pub.py"), str(w), str(h), str(seconds)], env,
                      tmp / "pub.log")
    try:
        sub.wait(timeout=seconds + 60)
    finally:
        stop(pub)
        stop(sub)
    out = (tmp / "sub.log").read_text()
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if not line:
        raise RuntimeError(f"subscriber printed no result:\n{out[-2000:]}")
    return json.loads(line[-1][7:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="publishing time per case (s)")
    ap.add_argument("--sizes", default="640x480,320x240,128x96", help="WxH list")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_DOMAIN_ID", "77")
    hosts = TwoHosts(os.getpid())
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            print(f"two cameras, rgb8, 30 Hz each, {args.seconds:g} s per case, best effort keep-last 5")
            print(f"{'profile':<28} {'size':>8} {'offered MB/s':>12} {'delivered':>10} {'lat mean ms':>11} "
                  f"{'p95 ms':>7} {'MB/s':>6}")
            for name, profile in profile_variants(hosts, tmp).items():
                for size in args.sizes.split(","):
                    w, h = (int(v) for v in size.split("x"))
                    r = measure(hosts, tmp, profile, w, h, args.seconds)
                    sent = 2 * 30 * args.seconds
                    lat = r["latency_ms"]
                    mean = sum(lat) / len(lat) if lat else float("nan")
                    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
                    offered = 2 * 30 * w * h * 3 / 1e6
                    print(f"{name:<28} {size:>8} {offered:>12.1f} {r['received'] / sent:>10.0%} {mean:>11.1f} "
                          f"{p95:>7.1f} {r['mbytes_per_s']:>6.1f}", flush=True)
    finally:
        hosts.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
