"""Joint position and velocity limits applied to every goal before it reaches a backend.

ROS-free. All values in radians and rad/s, JOINT_NAMES order; position limits default to
the SO-101's (soarm_driver.robot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soarm_driver.robot import JOINT_NAMES, LOWER_LIMITS, UPPER_LIMITS

#: Former names of robot.LOWER_LIMITS / robot.UPPER_LIMITS (aliases, not a second definition).
URDF_LOWER, URDF_UPPER = LOWER_LIMITS, UPPER_LIMITS


def per_joint(values, name: str) -> np.ndarray:
    """A scalar or one value per joint → float array (6,); ValueError otherwise."""
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.size == 1:
        arr = np.full(len(JOINT_NAMES), float(arr[0]))
    if arr.shape != (len(JOINT_NAMES),):
        raise ValueError(f"{name}: expected 1 or {len(JOINT_NAMES)} values ({', '.join(JOINT_NAMES)}), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: values must be finite, got {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class LimitResult:
    """A limited goal and what was done to it."""

    goal: np.ndarray
    #: Joints whose requested position was outside [lower, upper].
    position_clamped: np.ndarray
    #: Joints whose step was cut by the velocity limit.
    velocity_limited: np.ndarray


class JointLimits:
    """Position limits [lower, upper] and a maximum speed per joint."""

    def __init__(self, lower=LOWER_LIMITS, upper=UPPER_LIMITS, max_velocity=2.0):
        self.lower = per_joint(lower, "joint lower limits")
        self.upper = per_joint(upper, "joint upper limits")
        self.max_velocity = per_joint(max_velocity, "max_joint_velocity")
        bad = [n for n, lo, hi in zip(JOINT_NAMES, self.lower, self.upper) if not lo < hi]
        if bad:
            raise ValueError(f"joint limits: lower must be < upper for {bad}")
        if np.any(self.max_velocity <= 0):
            raise ValueError(f"max_joint_velocity must be > 0 rad/s, got {self.max_velocity.tolist()}")

    def clamp(self, q: np.ndarray) -> np.ndarray:
        """Positions clamped into [lower, upper]."""
        return np.clip(np.asarray(q, dtype=float), self.lower, self.upper)

    def contains(self, q: np.ndarray, tol: float = 1e-9) -> bool:
        q = np.asarray(q, dtype=float)
        return bool(np.all(q >= self.lower - tol) and np.all(q <= self.upper + tol))

    def apply(self, previous_goal: np.ndarray, requested: np.ndarray, dt: float) -> LimitResult:
        """Clamp `requested` to the position limits, then move from `previous_goal`
        towards it by at most max_velocity * dt per joint (dt in seconds)."""
        requested = np.asarray(requested, dtype=float)
        clamped = self.clamp(requested)
        position_clamped = ~np.isclose(clamped, requested, rtol=0.0, atol=1e-12)
        max_step = self.max_velocity * max(float(dt), 0.0)
        step = clamped - np.asarray(previous_goal, dtype=float)
        limited_step = np.clip(step, -max_step, max_step)
        velocity_limited = np.abs(step) > max_step + 1e-12
        goal = self.clamp(np.asarray(previous_goal, dtype=float) + limited_step)
        return LimitResult(goal=goal, position_clamped=position_clamped, velocity_limited=velocity_limited)
