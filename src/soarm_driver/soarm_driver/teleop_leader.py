"""SO-101 leader arm as a command source, through LeRobot (ROS-free).

LeRobot's `SO101Leader` reports the body joints in degrees (0 at mid-range, the
"new calib" zero of the SO-101 model) and the gripper in 0..100; both are converted
to the project's radians by `soarm_driver.units` (the one place where LeRobot units
meet radians). The leader must have been calibrated with LeRobot first:

    lerobot-calibrate --teleop.type=so101_leader --teleop.port=/dev/ttyACM0 --teleop.id=soarm_leader
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from soarm_driver.units import lerobot_to_radians


def leader_action_to_radians(action: Mapping[str, float]) -> np.ndarray:
    """A LeRobot leader reading ({"<joint>.pos": value}) -> goal radians (6,), JOINT_NAMES order.

    Raises ValueError on a missing joint or a non-finite value: nothing is sent then.
    """
    try:
        q = lerobot_to_radians(action)
    except KeyError as exc:
        raise ValueError(str(exc)) from exc
    if not np.all(np.isfinite(q)):
        raise ValueError(f"leader reading has non-finite values: {dict(action)}")
    return q


class LeaderArm:
    """A connected SO-101 leader arm (torque off: moved by hand)."""

    def __init__(self, port: str, robot_id: str = "soarm_leader", calibration_dir: str | None = None):
        self.port, self.robot_id = port, robot_id
        self.calibration_dir = Path(calibration_dir) if calibration_dir else None
        self._leader = None

    def connect(self) -> None:
        try:
            from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig
        except ImportError as exc:
            raise RuntimeError(
                "leader mode needs LeRobot with Feetech support: pip install 'lerobot[feetech]'") from exc
        config = SO101LeaderConfig(port=self.port, id=self.robot_id, calibration_dir=self.calibration_dir,
                                   use_degrees=True)
        leader = SO101Leader(config)
        if not leader.calibration:
            raise RuntimeError(
                f"no LeRobot calibration for leader id '{self.robot_id}' ({leader.calibration_fpath}); run: "
                f"lerobot-calibrate --teleop.type=so101_leader --teleop.port={self.port} --teleop.id={self.robot_id}"
            )
        try:
            # calibrate=False: never block on LeRobot's interactive calibration prompt.
            leader.connect(calibrate=False)
        except Exception as exc:  # serial errors come in many types
            raise RuntimeError(f"cannot connect to the SO-101 leader on {self.port}: {exc}") from exc
        self._leader = leader

    def read_radians(self) -> np.ndarray:
        if self._leader is None:
            raise RuntimeError("leader arm not connected")
        return leader_action_to_radians(self._leader.get_action())

    def disconnect(self) -> None:
        if self._leader is not None:
            try:
                self._leader.disconnect()
            finally:
                self._leader = None
