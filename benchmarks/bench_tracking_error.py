#!/usr/bin/env python3
"""Tracking error of the driver's backends: what the path tolerance must allow (prints numbers).

    python benchmarks/bench_tracking_error.py               # sim: 5 expert episodes, fast moves; mock
    python benchmarks/bench_tracking_error.py --seeds 10

The driver's path tolerance (docs/interfaces.md, "driver": `path_tolerance`,
`path_tolerance_duration`) compares each tick's measured position with the goal sent the
tick before. This runs the real DriverCore in-process (no DDS) on

- the sim backend with the scripted expert (reset_episode, then one-point trajectories at
  30 Hz, time_from_start 1/30 s, as teleop sends them), several scenes;
- the sim backend with one-shot moves at `max_joint_velocity` (3 rad/s, the fastest motion
  the driver commands);
- the mock backend (first-order, time constant 0.05 s) with the same fast moves;

and prints per joint the largest deviation, its 99th percentile and the longest time it
stayed above 0.1 / 0.2 / 0.3 / 0.5 rad.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "soarm_driver"))

import numpy as np

from soarm_driver.backends.base import JOINT_NAMES
from soarm_driver.core import ENABLED, DriverConfig, DriverCore
from soarm_driver.joint_limits import JointLimits
from soarm_driver.robot import HOME_POSE

RATE = 60.0
THRESHOLDS = (0.1, 0.2, 0.3, 0.5)


class Recorder:
    """A core ticked on a virtual clock; keeps |measured - previous goal| of every tick."""

    def __init__(self, backend):
        self.core = DriverCore(DriverConfig(limits=JointLimits(max_velocity=3.0), home_pose=HOME_POSE,
                                            control_rate_hz=RATE, path_tolerance=[0.0] * 6), backend)
        self.t = 0.0
        self.goal = None
        self.deviations: list[np.ndarray] = []

    def tick(self, record=True):
        self.t += 1.0 / RATE
        out = self.core.tick(wall=self.t, now=self.t)
        if out.command is None:
            return
        q = self.core.backend.read_positions()
        if record and self.goal is not None:
            self.deviations.append(np.abs(q - self.goal))
        self.goal = out.command

    def send(self, q, tfs):
        why = self.core.command(JOINT_NAMES, [(tfs, [float(x) for x in q], [])], None, self.core.clock(self.t))
        assert why is None, why


def longest_above(dev: np.ndarray, threshold: float) -> float:
    """Longest run (s) of consecutive ticks with deviation > threshold, per joint."""
    best = np.zeros(dev.shape[1])
    run = np.zeros(dev.shape[1])
    for row in dev:
        run = np.where(row > threshold, run + 1, 0)
        best = np.maximum(best, run)
    return best / RATE


def report(title: str, deviations: list[np.ndarray]) -> None:
    dev = np.array(deviations)
    print(f"== {title}: {len(dev)} ticks at {RATE:g} Hz")
    print(f"  {'joint':14s} {'max':>7s} {'p99':>7s} " + " ".join(f"{'>' + str(t) + ' s':>8s}" for t in THRESHOLDS))
    longest = {t: longest_above(dev, t) for t in THRESHOLDS}
    for j, name in enumerate(JOINT_NAMES):
        print(f"  {name:14s} {dev[:, j].max():7.3f} {np.percentile(dev[:, j], 99):7.3f} "
              + " ".join(f"{longest[t][j]:8.2f}" for t in THRESHOLDS))
    print("  (rad; the last columns: longest time in s above that deviation)")


def fast_moves(rec: Recorder) -> None:
    """One-shot moves between far poses, executed at max_joint_velocity (3 rad/s)."""
    a = np.array([0.8, -1.2, 1.3, 1.0, 0.8, 0.3])
    b = np.array([-0.8, -0.2, 0.3, 0.0, -0.8, 1.2])
    for target in (a, b, a, np.asarray(HOME_POSE)):
        rec.send(target, 0.0)
        for _ in range(int(1.5 * RATE)):
            rec.tick()


def sim_expert(seeds: int) -> None:
    from soarm_driver.sim.backend import SimBackend
    from soarm_driver.sim.expert import ScriptedExpert
    from soarm_driver.sim.scene import CUBE, TARGET

    expert = ScriptedExpert()
    rec = Recorder(SimBackend({"seed": 0, "control_period": 1.0 / RATE}))
    successes = 0
    for seed in range(seeds):
        rec.tick(record=False)
        reset = rec.core.request_reset(seed=seed)
        while not reset.done.is_set():
            rec.tick()
        assert reset.success, reset.message
        poses = rec.core.backend.object_poses()
        expert.start(poses[CUBE][0], poses[CUBE][1], poses[TARGET][0], rec.core.backend.read_positions())
        t = 0.0
        while t < expert.duration + 0.5:
            rec.send(expert.command(t), 1.0 / 30)
            rec.tick()
            rec.tick()
            t += 1.0 / 30
        successes += rec.core.backend.task_outcome() == "success"
    assert rec.core.status().state == ENABLED
    report(f"sim, scripted expert, {seeds} scenes ({successes} successes), reset moves included", rec.deviations)
    rec.deviations = []
    fast_moves(rec)
    report("sim, one-shot moves at 3 rad/s", rec.deviations)
    rec.core.close()


def mock_moves() -> None:
    from soarm_driver.backends.mock import MockBackend

    rec = Recorder(MockBackend({"home_pose": list(HOME_POSE)}))
    rec.tick(record=False)
    fast_moves(rec)
    report("mock (time_constant 0.05 s), one-shot moves at 3 rad/s", rec.deviations)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="sim scenes for the scripted expert (default 5)")
    args = ap.parse_args()
    sim_expert(args.seeds)
    mock_moves()


if __name__ == "__main__":
    main()
