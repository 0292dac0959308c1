#!/usr/bin/env python3
"""Does the policy node play its chunks at the rate they were recorded at? (sim time, over DDS)

Starts the sim driver (the demo's 128x96 cameras, /clock) and the policy node with a random
ACT checkpoint, enables it for --seconds of sim time per mode and reads policy_status and
joint_trajectory. Prints, per mode:

  ticks/s     policy_status messages per sim second (how often the node's tick ran)
  played/s    timeline steps played per sim second (PolicyStatus.steps)
  late        steps skipped by late ticks (PolicyStatus.skipped_late)
  rate        (played + late) / elapsed steps: 1.00 = the timeline runs at the clock's rate
  grid        largest distance (in periods) of a trajectory stamp from the step grid t0 + k*period
  gap p50/max sim time between consecutive joint_trajectory messages (ms)

    python benchmarks/bench_policy_timing.py --modes auto ensemble chunk async --seconds 20
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"


def start(package, exe, params_files, params, log):
    argv = [str(INSTALL / package / "lib" / package / exe), "--ros-args"]
    for f in params_files:
        argv += ["--params-file", str(f)]
    for k, v in params.items():
        v = ("true" if v else "false") if isinstance(v, bool) else v
        argv += ["-p", f"{k}:={v}"]
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", nargs="+", default=["auto", "ensemble", "chunk", "async"])
    ap.add_argument("--seconds", type=float, default=20.0, help="sim seconds enabled per mode")
    ap.add_argument("--preset", default="cpu", help="random checkpoint preset (tiny | cpu | baseline)")
    ap.add_argument("--checkpoint", default="", help="use this checkpoint instead of a random one")
    args = ap.parse_args()

    import rclpy
    from soarm_msgs.msg import PolicyStatus
    from soarm_msgs.srv import ResetEpisode
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    from soarm_act_policy.random_checkpoint import cached_random_checkpoint

    work = Path(tempfile.mkdtemp(prefix="bench_timing_"))
    ckpt = args.checkpoint or str(cached_random_checkpoint(work, args.preset, preset=args.preset))
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    rclpy.init()
    node = rclpy.create_node("bench_policy_timing", parameter_overrides=[
        rclpy.parameter.Parameter("use_sim_time", value=True)])
    statuses, trajs = [], []
    node.create_subscription(PolicyStatus, "policy_status", lambda m: statuses.append(m), 100)
    node.create_subscription(JointTrajectory, "joint_trajectory", lambda m: trajs.append(
        (node.get_clock().now().nanoseconds * 1e-9, m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)), 100)

    def spin_until(pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
            if pred():
                return True
        return False

    def call(srv, name, req, timeout=60):
        c = node.create_client(srv, name)
        if not c.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"{name} not available")
        spin_until(lambda: False, 0.5)
        f = c.call_async(req)
        spin_until(f.done, timeout)
        return f.result()

    driver = start("soarm_driver", "driver", [ROOT / "config/driver.yaml", ROOT / "config/demo/driver.yaml"], {},
                   work / "driver.log")
    rows = []
    try:
        call(SetBool, "/driver/enable", SetBool.Request(data=True), 120)
        for mode in args.modes:
            policy = start("soarm_act_policy", "policy", [ROOT / "config/policy.yaml"], {
                "checkpoint": ckpt, "mode": mode, "use_sim_time": True, "device": "cpu",
                "publish_planned_path": False}, work / f"policy_{mode}.log")
            try:
                call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=1, randomize=True), 120)
                statuses.clear()
                trajs.clear()
                call(SetBool, "/policy/enable", SetBool.Request(data=True), 180)
                spin_until(lambda: any(s.state == PolicyStatus.RUNNING for s in statuses), 60)
                t_start = node.get_clock().now().nanoseconds * 1e-9
                spin_until(lambda: node.get_clock().now().nanoseconds * 1e-9 - t_start >= args.seconds,
                           args.seconds * 20)
                call(SetBool, "/policy/enable", SetBool.Request(data=False))
                run = [s for s in statuses if s.state == PolicyStatus.RUNNING]
                from collections import Counter
                holds = Counter(s.hold_reason.split(":")[0] for s in statuses if s.state != PolicyStatus.RUNNING)
                print(f"{mode}: hold ticks by reason: {dict(holds)}")
                mode_used = run[-1].mode if run else "?"
                stamps = [s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 for s in run]
                elapsed = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
                played = run[-1].steps - run[0].steps
                late = run[-1].skipped_late - run[0].skipped_late
                period = 1 / 30.0
                ts = np.array([t for _, t in trajs])
                phase = (ts - ts[0]) / period
                grid = float(np.max(np.abs(phase - np.round(phase)))) if len(ts) else np.nan
                gaps = np.diff([r for r, _ in trajs]) * 1000 if len(trajs) > 1 else np.array([np.nan])
                rows.append((mode, mode_used, len(run) / elapsed, played / elapsed, late,
                             (played + late) / (elapsed / period),
                             grid, float(np.median(gaps)), float(np.max(gaps)), run[-1].inference_latency * 1000))
            finally:
                stop(policy)
    finally:
        stop(driver)
        node.destroy_node()
        rclpy.shutdown()
    print(f"\n{'mode':9s} {'used':9s} {'ticks/s':>8s} {'played/s':>9s} {'late':>6s} {'rate':>6s} {'grid':>6s} "
          f"{'gap p50':>8s} {'gap max':>8s} {'infer ms':>9s}")
    for r in rows:
        print(f"{r[0]:9s} {r[1]:9s} {r[2]:8.1f} {r[3]:9.1f} {r[4]:6d} {r[5]:6.3f} {r[6]:6.3f} "
              f"{r[7]:8.0f} {r[8]:8.0f} {r[9]:9.0f}")
    print(f"logs: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
