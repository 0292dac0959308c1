#!/usr/bin/env python3
"""Benchmark of the MuJoCo sim backend and the scripted expert (prints numbers, asserts nothing).

    python benchmarks/bench_sim.py                 # all sections, 20 expert seeds
    python benchmarks/bench_sim.py --seeds 50 --skip-render

Measures: render time per frame for each camera and size, physics steps/s, the sim step
rate with two cameras at 128x96 (the demo), 320x240 and 640x480 (30 Hz ticks of 1/30 s of
physics + both frames), the scripted expert's
success rate (cube resting in the target zone), time to success, placement accuracy and
per-command cost over --seeds scenes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "soarm_driver"))

import numpy as np

from soarm_driver.backends.base import CameraSpec
from soarm_driver.sim.backend import SimBackend
from soarm_driver.sim.expert import ScriptedExpert
from soarm_driver.sim.scene import CUBE, TARGET

SIZES = [(128, 96), (320, 240), (640, 480)]


def bench_render(sim: SimBackend, frames: int) -> None:
    print("== rendering (MUJOCO_GL=%s, no shadows, no multisampling)" % os.environ["MUJOCO_GL"])
    for width, height in SIZES:
        for cam in ("front", "wrist"):
            spec = [CameraSpec(cam, width, height)]
            sim.capture_frames(spec)  # renderer creation, warm-up
            t0 = time.perf_counter()
            for _ in range(frames):
                sim.capture_frames(spec)
            ms = (time.perf_counter() - t0) / frames * 1000
            print(f"  {cam:5s} {width}x{height}: {ms:6.1f} ms/frame  ({1000 / ms:5.1f} fps)")


def bench_physics(sim: SimBackend, seconds: float) -> None:
    print("== physics")
    sim.write_goal_positions(np.array([0.3, -0.5, 0.6, 0.8, 0.2, 0.5]))
    steps = int(seconds / sim.model.opt.timestep)
    t0 = time.perf_counter()
    sim.advance(seconds)
    wall = time.perf_counter() - t0
    print(f"  timestep {sim.model.opt.timestep * 1000:g} ms: {steps / wall:,.0f} steps/s "
          f"= {seconds / wall:,.0f}x real time (arm moving, cube on the table)")


def bench_sim_step_rate(sim: SimBackend, ticks: int) -> None:
    print("== sim step rate with two cameras: each tick = 1/30 s of physics + front and wrist frames")
    for width, height in SIZES:
        cams = [CameraSpec("front", width, height), CameraSpec("wrist", width, height)]
        sim.capture_frames(cams)
        t0 = time.perf_counter()
        for _ in range(ticks):
            sim.advance(1 / 30)
            sim.capture_frames(cams)
        ms = (time.perf_counter() - t0) / ticks * 1000
        print(f"  {width}x{height}: {ms:6.1f} ms per tick = {1000 / ms:5.1f} ticks/s "
              f"-> real-time factor {33.33 / ms:.2f} at 30 fps")


def bench_expert(seeds: int, first_seed: int) -> None:
    print(f"== scripted expert on {seeds} seeds ({first_seed}..{first_seed + seeds - 1}), driving SimBackend at 30 Hz")
    expert = ScriptedExpert()
    results, cmd_ms, offsets = [], [], []
    for seed in range(first_seed, first_seed + seeds):
        sim = SimBackend({"seed": seed})
        sim.connect()
        sim.advance(0.3)
        poses = sim.object_poses()
        expert.start(poses[CUBE][0], poses[CUBE][1], poses[TARGET][0], sim.read_positions())
        t, success_at = 0.0, None
        while t < expert.duration + 1.0 and success_at is None:
            c0 = time.perf_counter()
            goal = expert.command(t)
            cmd_ms.append((time.perf_counter() - c0) * 1000)
            sim.write_goal_positions(goal)
            sim.advance(1 / 30)
            t += 1 / 30
            if sim.task_outcome() == "success":
                success_at = t
        results.append(success_at)
        placed = sim.object_poses()
        offsets.append(np.linalg.norm(placed[CUBE][0][:2] - placed[TARGET][0][:2]))
        sim.disconnect()
    ok = [r for r in results if r is not None]
    print(f"  success rate: {len(ok)}/{seeds} = {100 * len(ok) / seeds:.0f} %")
    if ok:
        print(f"  time to success: mean {statistics.mean(ok):.2f} s, min {min(ok):.2f}, max {max(ok):.2f} "
              f"(~{statistics.mean(ok) * 30:.0f} frames at 30 fps; planned motion {expert.duration:.1f} s)")
    print(f"  cube centre to zone centre at the end: mean {1000 * statistics.mean(offsets):.1f} mm, "
          f"max {1000 * max(offsets):.1f} mm (zone half-side 35 mm)")
    print(f"  expert command: mean {statistics.mean(cmd_ms):.2f} ms, p95 {np.percentile(cmd_ms, 95):.2f} ms, "
          f"max {max(cmd_ms):.1f} ms")
    failed = [first_seed + i for i, r in enumerate(results) if r is None]
    if failed:
        print(f"  failed seeds: {failed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="expert episodes (default 20)")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=30, help="frames per render measurement")
    parser.add_argument("--skip-render", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    sim = SimBackend({"seed": 0})
    sim.connect()
    print(f"model build + connect: {time.perf_counter() - t0:.2f} s")
    if not args.skip_render:
        bench_render(sim, args.frames)
    bench_physics(sim, 5.0)
    bench_sim_step_rate(sim, 30)
    sim.disconnect()
    bench_expert(args.seeds, args.first_seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
