"""Joint units: the project's radians <-> the units a checkpoint was trained in.

Checkpoints trained on datasets converted from our bags use radians for every joint
(the gripper included), so ``radians`` is the identity. Checkpoints trained on data
recorded with LeRobot's own SO-101 follower use LeRobot's motor units:

- ``lerobot_degrees`` (LeRobot's default since PR #2968, ``use_degrees=True``): body
  joints in degrees (with the "new calib" zero at the middle of each joint's range,
  degrees = radians * 180 / pi), the gripper in 0..100 % of its calibrated range.
- ``lerobot_range100`` (legacy, ``use_degrees=False``): body joints in -100..100 over
  their calibrated range, the gripper in 0..100.

Calibrated ranges are not stored in a checkpoint; ranges default to the SO-101 URDF
joint limits and can be overridden per joint (`ranges`) to match a robot's calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .joints import JOINT_NAMES, URDF_LIMITS

UNITS = ("radians", "lerobot_degrees", "lerobot_range100")
GRIPPER = "gripper"


class JointUnits:
    """Affine per-joint map between radians and a checkpoint's units.

    ``to_policy(q)`` and ``to_radians(a)`` work on arrays whose last axis follows
    `joint_names` (any leading shape, e.g. a whole action chunk).
    """

    def __init__(
        self,
        units: str,
        joint_names: Sequence[str] = JOINT_NAMES,
        ranges: Mapping[str, tuple[float, float]] | None = None,
    ):
        if units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}; got {units!r}")
        self.units = units
        self.joint_names = tuple(joint_names)
        limits = {**URDF_LIMITS, **(ranges or {})}
        # policy = scale * (rad - offset_rad)... written as policy = scale * rad + bias.
        scale = np.ones(len(self.joint_names))
        bias = np.zeros(len(self.joint_names))
        for i, name in enumerate(self.joint_names):
            if units == "radians":
                continue
            if name == GRIPPER or units == "lerobot_range100":
                if name not in limits:
                    raise ValueError(
                        f"units {units!r} need the calibrated range of joint {name!r} (radians); "
                        f"set it in the joint ranges"
                    )
                lo, hi = limits[name]
                if not hi > lo:
                    raise ValueError(f"range of joint {name!r} is empty: [{lo}, {hi}]")
                out_lo, out_hi = (0.0, 100.0) if name == GRIPPER else (-100.0, 100.0)
                scale[i] = (out_hi - out_lo) / (hi - lo)
                bias[i] = out_lo - scale[i] * lo
            else:
                scale[i] = 180.0 / math.pi
        self._scale = scale
        self._bias = bias

    def to_policy(self, radians: np.ndarray) -> np.ndarray:
        """Radians (last axis in joint order) -> checkpoint units, float64."""
        return np.asarray(radians, dtype=np.float64) * self._scale + self._bias

    def to_radians(self, values: np.ndarray) -> np.ndarray:
        """Checkpoint units (last axis in joint order) -> radians, float64."""
        return (np.asarray(values, dtype=np.float64) - self._bias) / self._scale
