"""Conversion between LeRobot's SO-101 motor units and the project's radians (ROS-free).

LeRobot (>= PR #2968, `use_degrees=True`) reports the five body joints of an SO-101
in degrees, 0 at the middle of each joint's calibrated range; with the "new calib"
URDF/MJCF (`so101_new_calib`) that zero is the model's zero, so radians are
degrees * pi / 180. The gripper is always reported in 0..100 (0 = closed, 100 =
open, over the range recorded during LeRobot's calibration); it maps linearly onto
the gripper joint's range in the model (soarm_driver.robot: closed at the lower limit,
open at the upper one, as in the MJCF). Used by the Feetech backend and by teleop's leader mode.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from soarm_driver.robot import JOINT_NAMES, LOWER_LIMITS, UPPER_LIMITS

BODY_JOINTS = JOINT_NAMES[:5]
GRIPPER = JOINT_NAMES[5]
#: Gripper joint angle (rad) at LeRobot's 0 (closed) and 100 (open): the joint's limits.
GRIPPER_CLOSED_RAD = LOWER_LIMITS[5]
GRIPPER_OPEN_RAD = UPPER_LIMITS[5]


def gripper_percent_to_radians(
    percent: float, closed: float = GRIPPER_CLOSED_RAD, opened: float = GRIPPER_OPEN_RAD
) -> float:
    return closed + (float(percent) / 100.0) * (opened - closed)


def gripper_radians_to_percent(
    rad: float, closed: float = GRIPPER_CLOSED_RAD, opened: float = GRIPPER_OPEN_RAD
) -> float:
    """Jaw angle (rad) → LeRobot 0..100, clipped to 0..100."""
    pct = (float(rad) - closed) / (opened - closed) * 100.0
    return min(100.0, max(0.0, pct))


def lerobot_to_radians(values: Mapping[str, float]) -> np.ndarray:
    """LeRobot follower/leader reading ({motor: value} or {"<motor>.pos": value};
    degrees, gripper 0..100) → radians (6,) in JOINT_NAMES order.

    Raises KeyError naming the missing motor.
    """
    def get(name):
        if name in values:
            return float(values[name])
        if f"{name}.pos" in values:
            return float(values[f"{name}.pos"])
        raise KeyError(f"LeRobot reading has no value for motor '{name}' (keys: {sorted(values)})")

    q = np.empty(len(JOINT_NAMES))
    for i, name in enumerate(BODY_JOINTS):
        q[i] = math.radians(get(name))
    q[5] = gripper_percent_to_radians(get(GRIPPER))
    return q


def radians_to_lerobot(q: np.ndarray) -> dict[str, float]:
    """Radians (6,) in JOINT_NAMES order → {motor: LeRobot value} (degrees, gripper 0..100)."""
    q = np.asarray(q, dtype=float)
    if q.shape != (len(JOINT_NAMES),):
        raise ValueError(f"expected {len(JOINT_NAMES)} joint values, got shape {q.shape}")
    out = {name: math.degrees(q[i]) for i, name in enumerate(BODY_JOINTS)}
    out[GRIPPER] = gripper_radians_to_percent(q[5])
    return out
