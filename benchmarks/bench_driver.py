#!/usr/bin/env python3
"""Driver benchmark: control-loop timing, camera publish rates, command latency.

    source activate.sh
    python benchmarks/bench_driver.py                      # mock backend, 640x480 and 128x96
    python benchmarks/bench_driver.py --backend sim --sizes 640x480,320x240 --seconds 10

Starts the installed `driver` executable (config/driver.yaml + overrides) in its own
DDS domain and measures, from a subscriber process:
  - control loop: intervals between consecutive joint_commands stamps (= tick times)
    -> mean rate, std and p99 of |interval - period| (jitter);
  - joint_states and camera rates: from the stamps and from arrival (wall clock);
  - simulated backends: achieved real-time factor and sim steps per wall second (/clock);
  - command -> joint_commands latency: wall time from publishing a position command to
    receiving the first joint_commands message that carries it (max_joint_velocity is
    raised so the goal is reached in one tick).
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from soarm_driver.robot import JOINT_NAMES

ROOT = Path(__file__).resolve().parent.parent
JOINTS = list(JOINT_NAMES)


def stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def start_driver(backend: str, width: int, height: int, control_hz: float, log) -> subprocess.Popen:
    exe = ROOT / "install" / "soarm_driver" / "lib" / "soarm_driver" / "driver"
    if not exe.exists():
        sys.exit(f"{exe} missing: run scripts/setup.sh")
    args = [str(exe), "--ros-args", "--params-file", str(ROOT / "config" / "driver.yaml")]
    params = {
        "backend": backend,
        "control_rate_hz": control_hz,
        "max_joint_velocity": "[100.0]",
        "command_timeout": 0.0,
    }
    for cam in ("front", "wrist"):
        params[f"cameras.{cam}.width"] = width
        params[f"cameras.{cam}.height"] = height
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(node, seconds: float, control_hz: float, n_latency: int) -> dict:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    lock = threading.Lock()
    rec = {"cmd": [], "state": [], "front": [], "wrist": [], "clock": []}
    latest_cmd = {"q0": None, "t": None}

    def keep(key):
        def cb(msg):
            t = time.monotonic()
            with lock:
                rec[key].append((t, stamp(msg)))
                if key == "cmd":
                    latest_cmd["q0"], latest_cmd["t"] = msg.position[0], t
        return cb

    node.create_subscription(JointState, "joint_commands", keep("cmd"), 50)
    node.create_subscription(JointState, "joint_states", keep("state"), 50)
    node.create_subscription(Image, "cameras/front/image_raw", keep("front"), qos_profile_sensor_data)
    node.create_subscription(Image, "cameras/wrist/image_raw", keep("wrist"), qos_profile_sensor_data)
    from rosgraph_msgs.msg import Clock

    def on_clock(msg):
        with lock:
            rec["clock"].append((time.monotonic(), msg.clock.sec + msg.clock.nanosec * 1e-9))

    node.create_subscription(Clock, "/clock", on_clock, 50)
    pub = node.create_publisher(JointTrajectory, "joint_trajectory", 10)

    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (len(rec["cmd"]) < 10 or len(rec["front"]) < 3):
        time.sleep(0.1)
    if len(rec["cmd"]) < 10:
        raise RuntimeError("driver publishes no joint_commands")
    time.sleep(1.0)
    with lock:
        for v in rec.values():
            v.clear()
    time.sleep(seconds)
    with lock:
        window = {k: list(v) for k, v in rec.items()}

    latencies = []
    for i in range(n_latency):
        target = 0.1 + 0.01 * (i % 20)
        msg = JointTrajectory(joint_names=JOINTS)
        msg.points.append(JointTrajectoryPoint(positions=[target] + [0.0] * 5))
        t0 = time.monotonic()
        pub.publish(msg)
        while time.monotonic() - t0 < 2.0:
            with lock:
                q0, t = latest_cmd["q0"], latest_cmd["t"]
            if q0 is not None and abs(q0 - target) < 1e-9 and t >= t0:
                latencies.append(t - t0)
                break
            time.sleep(0.0005)
        time.sleep(0.05)
    executor.shutdown()
    return {"window": window, "latencies": np.array(latencies), "seconds": seconds, "period": 1.0 / control_hz}


def report(label: str, res: dict) -> None:
    w, period = res["window"], res["period"]
    print(f"\n== {label}")
    cmd_stamps = np.array([s for _, s in w["cmd"]])
    if len(cmd_stamps) > 2:
        d = np.diff(cmd_stamps)
        dev = np.abs(d - period) * 1e3
        print(
            f"control loop: {1 / d.mean():.1f} Hz (target {1 / period:.0f}), tick interval "
            f"mean {d.mean() * 1e3:.2f} ms, std {d.std() * 1e3:.2f} ms, |jitter| p50 {np.percentile(dev, 50):.2f} "
            f"p99 {np.percentile(dev, 99):.2f} max {dev.max():.2f} ms  ({len(d)} ticks)"
        )
    clk = w["clock"]
    if len(clk) > 2:
        wall = clk[-1][0] - clk[0][0]
        sim = clk[-1][1] - clk[0][1]
        arr = np.diff([a for a, _ in clk]) * 1e3
        print(
            f"  (sim stamps are exact; wall-clock interval between /clock arrivals: mean {arr.mean():.1f} ms, "
            f"p99 {np.percentile(arr, 99):.1f} ms, max {arr.max():.1f} ms)"
        )
        print(
            f"simulation: {sim / wall:.2f}x real time achieved ({sim / period / wall:.1f} control steps of "
            f"{period * 1e3:.1f} ms sim per wall second; physics + rendering of both cameras)"
        )
    for key in ("state", "front", "wrist"):
        data = w[key]
        if len(data) < 2:
            print(f"{key:12s}: {len(data)} messages")
            continue
        arr = np.array([a for a, _ in data])
        st = np.array([s for _, s in data])
        print(
            f"{key:12s}: {len(data) / res['seconds']:.1f} msg/s received, "
            f"stamp rate {1 / np.median(np.diff(st)):.1f} Hz, "
            f"arrival interval p99 {np.percentile(np.diff(arr), 99) * 1e3:.1f} ms"
        )
    lat = res["latencies"] * 1e3
    if len(lat):
        print(
            f"command -> joint_commands latency: mean {lat.mean():.1f} ms, p50 {np.percentile(lat, 50):.1f}, "
            f"p95 {np.percentile(lat, 95):.1f}, max {lat.max():.1f} ms ({len(lat)} commands; "
            f"includes up to one control period {period * 1e3:.1f} ms of waiting for the next tick)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="mock")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--control-rate", type=float, default=60.0)
    ap.add_argument("--sizes", default="640x480,128x96", help="camera sizes WxH, comma separated")
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument("--domain", type=int, default=int(os.environ.get("SOARM_BENCH_DOMAIN_ID", 90)))
    a = ap.parse_args()
    os.environ["ROS_DOMAIN_ID"] = str(a.domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import rclpy

    print(f"driver benchmark: backend {a.backend}, control {a.control_rate:g} Hz, {os.cpu_count()} CPUs, "
          f"domain {a.domain}")
    for size in a.sizes.split(","):
        w, h = (int(x) for x in size.lower().split("x"))
        with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
            proc = start_driver(a.backend, w, h, a.control_rate, log)
            rclpy.init()
            node = rclpy.create_node("bench_driver")
            try:
                res = measure(node, a.seconds, a.control_rate, a.latency_samples)
                report(f"{a.backend}, two cameras {w}x{h} @ 30 fps", res)
            except RuntimeError as e:
                log.seek(0)
                print(f"{size}: {e}\n{log.read()[-2000:]}")
            finally:
                node.destroy_node()
                rclpy.shutdown()
                stop(proc)


if __name__ == "__main__":
    main()
