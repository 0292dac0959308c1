"""Path tolerance and stall detection (ROS-free), like the path and goal tolerances of
ros2_control's joint_trajectory_controller.

Definition (documented in docs/interfaces.md, "driver"):

- Every control tick while torque is on, each joint's deviation is |measured position -
  the goal the driver sent the tick before|. A joint whose deviation stays above its
  tolerance (rad) for longer than `duration` (s) without interruption violates the path
  tolerance: `check` returns the reason once, and the caller holds the arm where it
  measures it (an obstacle, a stalled or frozen servo, a joint that cannot follow).
- The same rule covers the path (while a trajectory runs) and the goal (while holding
  its last point): a goal the arm never reaches trips it too.
- A tolerance <= 0 leaves that joint unchecked (the default for the gripper: a grasp
  keeps its jaw short of the closed goal by the object's width).
"""

from __future__ import annotations

import numpy as np

from soarm_driver.joint_limits import per_joint
from soarm_driver.robot import JOINT_NAMES


class PathToleranceMonitor:
    """See the module docstring. `tolerance`: 1 or 6 values (rad, JOINT_NAMES order)."""

    def __init__(self, tolerance, duration: float):
        self.joint_names = list(JOINT_NAMES)
        self.tolerance = per_joint(tolerance, "path_tolerance")
        if not duration >= 0:
            raise ValueError(f"path_tolerance_duration must be >= 0 s, got {duration}")
        self.duration = float(duration)
        #: |measured - commanded| of the last check (rad), None before the first.
        self.deviation: np.ndarray | None = None
        self._since = np.full(len(JOINT_NAMES), np.nan)  # when each joint went out of tolerance

    @property
    def active(self) -> bool:
        return bool(np.any(self.tolerance > 0))

    def reset(self) -> None:
        """Forget the deviations seen so far (enable, hold, reconnect)."""
        self._since[:] = np.nan

    def check(self, now: float, commanded: np.ndarray, measured: np.ndarray) -> str | None:
        """The reason when a joint has been out of tolerance for longer than `duration` at `now`
        (s), else None. After a violation the timers restart (call `reset` after holding)."""
        dev = np.abs(np.asarray(measured, dtype=float) - np.asarray(commanded, dtype=float))
        self.deviation = dev
        out = (self.tolerance > 0) & (dev > self.tolerance)
        self._since[~out] = np.nan
        self._since[out & np.isnan(self._since)] = now
        late = out & (now - self._since > self.duration)
        if not late.any():
            return None
        j = int(np.argmax(np.where(late, dev - self.tolerance, -np.inf)))
        others = [self.joint_names[i] for i in np.flatnonzero(late) if i != j]
        why = (f"path tolerance: {self.joint_names[j]} measured {dev[j]:.3f} rad from its goal for "
               f"{now - self._since[j]:.2f} s (tolerance {self.tolerance[j]:g} rad for "
               f"{self.duration:g} s)" + (f", also {', '.join(others)}" if others else ""))
        self.reset()
        return why
