#!/usr/bin/env python3
"""Switch smoothness of the driver's take-over and hand-back (prints numbers).

    python benchmarks/bench_takeover.py                 # 50 switch pairs, handover_speed 0.5
    python benchmarks/bench_takeover.py --switches 200 --handover-speed 1.0

Runs the real DriverCore in-process (mock backend, no DDS, a virtual clock at 60 Hz) while a
`policy` stream and a `human` (leader) stream both send one-point commands at 30 Hz to random
poses, and switches policy -> human -> policy (docs/interfaces.md, "Take-over and hand-back").
Prints, over all switches, the largest joint step per tick after policy -> human (alignment at
`handover_speed`, then the last step within `handover_tolerance`) and after human -> policy
(limited by `max_joint_velocity` only), the time to align, and the limit max_joint_velocity x dt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "soarm_driver"))

from soarm_driver.backends.base import JOINT_NAMES
from soarm_driver.backends.mock import MockBackend
from soarm_driver.command_arbiter import HUMAN, POLICY
from soarm_driver.core import DriverConfig, DriverCore
from soarm_driver.joint_limits import JointLimits
from soarm_driver.robot import HOME_POSE

RATE = 60.0
MAX_VEL = 3.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--switches", type=int, default=50, help="policy -> human -> policy pairs (default 50)")
    ap.add_argument("--handover-speed", type=float, default=0.5, help="rad/s (default 0.5, the driver's)")
    ap.add_argument("--hold", type=float, default=4.0, help="s each source drives before the next switch")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    limits = JointLimits(max_velocity=MAX_VEL)
    core = DriverCore(DriverConfig(limits=limits, home_pose=HOME_POSE, control_rate_hz=RATE, backend="mock",
                                   handover_speed=args.handover_speed),
                      MockBackend({"home_pose": list(HOME_POSE)}))
    t = 100.0
    low, high = limits.lower * 0.6, limits.upper * 0.6

    def tick():
        nonlocal t
        t += 1.0 / RATE
        return core.tick(wall=t, now=t).command

    while core.status().state != "ENABLED":
        tick()
    after_human, after_policy, align_times = [], [], []
    for _ in range(args.switches):
        policy_q, leader_q = rng.uniform(low, high), rng.uniform(low, high)
        for source in (HUMAN, POLICY):
            core.request_select(source, "bench")
            prev, steps, aligned_at, start = None, [], None, t
            for _ in range(int(args.hold * RATE)):
                core.command(JOINT_NAMES, [(1 / 30, list(policy_q), [])], None, t, source=POLICY)
                core.command(JOINT_NAMES, [(1 / 30, list(leader_q), [])], None, t, source=HUMAN)
                goal = tick()
                if prev is not None:
                    steps.append(float(np.max(np.abs(goal - prev))))
                prev = goal
                if source == HUMAN and aligned_at is None and not core.arbiter.state.aligning:
                    aligned_at = t - start
            (after_human if source == HUMAN else after_policy).append(max(steps))
            if aligned_at is not None:
                align_times.append(aligned_at)
    limit = MAX_VEL / RATE
    print(f"{args.switches} switch pairs at {RATE:g} Hz, max_joint_velocity {MAX_VEL} rad/s (limit "
          f"{limit:.4f} rad per tick), handover_speed {args.handover_speed} rad/s "
          f"({args.handover_speed / RATE:.4f} rad per tick), handover_tolerance {core.arbiter.tolerance} rad")
    print(f"policy -> human: largest step {max(after_human):.4f} rad ({max(after_human) / limit:.2f} x limit); "
          f"aligned after {np.median(align_times):.2f} s median, {max(align_times):.2f} s max")
    print(f"human -> policy: largest step {max(after_policy):.4f} rad ({max(after_policy) / limit:.2f} x limit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
