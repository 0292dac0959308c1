#!/usr/bin/env python3
"""Policy benchmark: ensembling cost, ACT inference time, control rate and latency per mode, DDS images.

    source activate.sh
    python benchmarks/bench_policy.py                 # everything (~3-5 min on 2 cores)
    python benchmarks/bench_policy.py --only inference --presets baseline

Sections (prints numbers; asserts nothing):
  ensembler  per-step cost of TemporalEnsembler (add a chunk + plan + advance) and of
             LeRobot's ACTTemporalEnsembler.update, chunk 100 x 6 joints;
  inference  one predict (pre-process, forward, post-process) of random ACT checkpoints
             saved through LeRobot: `tiny` (test size), `cpu` (CPU-sized, 128x96) and the
             seeds' `baseline` (ResNet18, dim 512, chunk 100, two 640x480 cameras);
  modes      the real ControlLoop + ObservationBuilder + model, ticking at 30 Hz against a
             30 Hz sensor stream (Image-like messages), for each mode: achieved command rate
             and observation-to-command latency p50/p99 (command ready - capture stamp of the
             observation its newest chunk was computed from);
  dds        camera image arrival rate and latency over DDS (a publisher process, a
             sensor-data keep-last-1 subscriber, the profile FASTDDS_DEFAULT_PROFILES_FILE
             selects - config/dds/local.xml after `source activate.sh`) at 640x480 and 128x96.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from soarm_act_policy.checkpoint import LoadedPolicy
from soarm_act_policy.control_loop import RUNNING, ControlLoop, LoopConfig, Snapshot
from soarm_act_policy.ensembler import TemporalEnsembler
from soarm_act_policy.observation import ObservationBuilder, ObservationMapping
from soarm_act_policy.random_checkpoint import make_random_checkpoint
from soarm_act_policy.units import JOINT_NAMES

SIZES = {"tiny": (96, 128), "cpu": (96, 128), "baseline": (480, 640)}  # (H, W)


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def bench_ensembler(steps: int = 3000):
    import torch
    from lerobot.policies.act.modeling_act import ACTTemporalEnsembler

    chunks = np.random.default_rng(0).normal(size=(steps, 100, 6))
    ens = TemporalEnsembler(100, 6, 0.01)
    t0 = time.perf_counter()
    for t in range(steps):
        ens.add(t, chunks[t])
        ens.plan(10)
        ens.advance()
    ours = (time.perf_counter() - t0) / steps
    theirs_ens = ACTTemporalEnsembler(0.01, 100)
    tchunks = torch.from_numpy(chunks).float()
    t0 = time.perf_counter()
    for t in range(steps):
        theirs_ens.update(tchunks[t : t + 1])
    theirs = (time.perf_counter() - t0) / steps
    print(f"ensembler: ours {ours * 1e6:.1f} us/step (add 100x6 + plan 10 + advance), "
          f"LeRobot ACTTemporalEnsembler.update {theirs * 1e6:.1f} us/step, {steps} steps")


def make(preset: str, root: Path) -> Path:
    return make_random_checkpoint(root / preset, preset=preset, image_hw=SIZES[preset])


def bench_inference(presets, root: Path, runs: int):
    out = {}
    for preset in presets:
        t0 = time.perf_counter()
        path = make(preset, root)
        lp = LoadedPolicy(path, "cpu")
        n_params = sum(p.numel() for p in lp.policy.parameters())
        load = time.perf_counter() - t0
        lp.warmup(1)
        lat = []
        for _ in range(runs):
            lp.predict_chunk(lp.dummy_observation())
            lat.append(lp.last_latency)
        h, w = SIZES[preset]
        print(f"inference {preset:8s}: {n_params / 1e6:5.1f} M params, 2 cameras {w}x{h}, chunk "
              f"{lp.spec.chunk_size}: mean {np.mean(lat) * 1000:7.1f} ms, min {np.min(lat) * 1000:7.1f} ms "
              f"({runs} runs; build+load {load:.1f} s)")
        out[preset] = (path, lp, float(np.mean(lat)))
    return out


class FakeStream:
    """Joint state + two camera frames 'captured' at 30 Hz on the wall clock."""

    def __init__(self, h, w, rate=30.0):
        self.rate = rate
        pixels = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes()
        self.img = SimpleNamespace(height=h, width=w, step=3 * w, encoding="rgb8", data=pixels)
        self.js = SimpleNamespace(name=list(JOINT_NAMES), position=[0.0] * 6)

    def snapshot(self, now):
        stamp = np.floor(now * self.rate) / self.rate  # newest frame so far
        stamps = {"joint_states": stamp, "cameras/front/image_raw": stamp, "cameras/wrist/image_raw": stamp}
        return Snapshot(stamps, (self.js, {"front": self.img, "wrist": self.img}))


def bench_modes(models, presets, seconds: float, rate: float = 30.0):
    for preset in presets:
        path, lp, mean_latency = models[preset]
        seconds_here = max(seconds, 6 * mean_latency)  # a few inferences even for a slow model
        h, w = SIZES[preset]
        builder = ObservationBuilder(ObservationMapping(), lp.spec.image_shapes)

        def predict(payload):
            js, imgs = payload
            return builder.actions_to_radians(lp.predict_chunk(builder.build(js, imgs)))

        stream = FakeStream(h, w)
        for mode in ("ensemble", "chunk", "async"):
            loop = ControlLoop(LoopConfig(mode=mode, chunk_size=lp.spec.chunk_size,
                                          n_action_steps=lp.spec.n_action_steps, max_observation_age=10.0,
                                          trajectory_points=10), predict)
            loop.set_enabled(True)
            period = 1.0 / rate
            start = time.monotonic()
            next_tick = start
            commands, latencies, ticks = [], [], 0
            while time.monotonic() - start < seconds_here:
                now = time.monotonic()
                if now < next_tick:
                    time.sleep(next_tick - now)
                now = time.monotonic()
                next_tick = max(next_tick + period, now)  # a late tick is not made up
                r = loop.tick(now, stream.snapshot(now))
                ticks += 1
                if r.state == RUNNING:
                    done = time.monotonic()
                    commands.append(done)
                    latencies.append(done - r.source_stamp)
            loop.close()
            elapsed = time.monotonic() - start
            c = loop.counters
            print(f"mode {mode:8s} {preset:8s}: {len(commands) / elapsed:5.1f} commands/s (target {rate:.0f}), "
                  f"obs->command p50 {pct(latencies, 50) * 1000:7.1f} ms p99 {pct(latencies, 99) * 1000:7.1f} ms, "
                  f"inference {loop.last_latency * 1000:6.1f} ms, no-action holds {c.skipped_no_action} "
                  f"of {ticks} ticks")


PUBLISHER = textwrap.dedent("""
    import sys, time, numpy as np, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    w, h, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, "cameras/front/image_raw", qos_profile_sensor_data)
    data = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes()
    time.sleep(2.0)  # discovery
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        img = Image(height=h, width=w, encoding="rgb8", step=3 * w, data=data)
        img.header.stamp = node.get_clock().now().to_msg()
        pub.publish(img)
        sent += 1
        time.sleep(max(0.0, t0 + sent / 30.0 - time.monotonic()))
    print(sent, flush=True)
    time.sleep(0.5)
""")


def bench_dds(seconds: float):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from soarm_act_policy.policy_node import SENSOR_QOS

    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "(Fast DDS defaults)")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init()
    node = rclpy.create_node("bench_policy_sub")
    for w, h in ((640, 480), (128, 96)):
        got = []

        def on_image(msg):
            now = node.get_clock().now().nanoseconds * 1e-9
            got.append(now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

        sub = node.create_subscription(Image, "cameras/front/image_raw", on_image, SENSOR_QOS)
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(w), str(h), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
        t_end = time.monotonic() + seconds + 6
        while pub.poll() is None and time.monotonic() < t_end:
            ex.spin_once(timeout_sec=0.05)
        out, _ = pub.communicate(timeout=10)
        sent = int(out.strip() or 0)
        print(f"dds images {w}x{h} rgb8 30 Hz, best effort keep-last 1, profile {Path(profile).name}: "
              f"received {len(got)}/{sent} ({len(got) / max(sent, 1) * 100:.0f} %), "
              f"latency p50 {pct(got, 50) * 1000:.1f} ms p99 {pct(got, 99) * 1000:.1f} ms")
        node.destroy_subscription(sub)
        ex.remove_node(node)
    node.destroy_node()
    rclpy.shutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["ensembler", "inference", "modes", "dds"], action="append")
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu", "baseline"], choices=sorted(SIZES))
    ap.add_argument("--mode-presets", nargs="+", default=["cpu", "baseline"], choices=sorted(SIZES))
    ap.add_argument("--runs", type=int, default=5, help="inferences per preset")
    ap.add_argument("--seconds", type=float, default=8.0, help="per mode / per DDS size")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default; the node's default is 1)")
    args = ap.parse_args(argv)
    only = set(args.only or ["ensembler", "inference", "modes", "dds"])
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    if "ensembler" in only:
        bench_ensembler()
    with tempfile.TemporaryDirectory(prefix="bench_policy_") as tmp:
        models = {}
        if "inference" in only or "modes" in only:
            need = list(dict.fromkeys(args.presets + (args.mode_presets if "modes" in only else [])))
            models = bench_inference(need, Path(tmp), args.runs)
        if "modes" in only:
            bench_modes(models, args.mode_presets, args.seconds)
    if "dds" in only:
        bench_dds(args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
