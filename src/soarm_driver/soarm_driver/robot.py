"""The SO-101 as the driver package knows it: joint names, joint limits, home pose.

The one definition inside soarm_driver; the policy package keeps its own
(soarm_act_policy/joints.py) because the two packages never import each other.
tests/test_urdf.py holds both equal to the shipped URDF (config/urdf/so101.urdf), whose
joint limits are the official `so101_new_calib` MJCF ranges.
"""

from __future__ import annotations

#: Joint names in motor-id order (ids 1..6), as in the URDF and in LeRobot.
JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
#: Joint position limits (rad), JOINT_NAMES order: the URDF's <limit lower=... upper=...>.
#: The gripper is the moving jaw's angle: closed at its lower limit, open at its upper one.
LOWER_LIMITS: tuple[float, ...] = (-1.91986, -1.74533, -1.69, -1.65806, -2.74385, -0.174533)
UPPER_LIMITS: tuple[float, ...] = (1.91986, 1.74533, 1.69, 1.65806, 2.84121, 1.74533)
#: Home pose (rad): the gripper above the table in front of the arm, jaws half open.
#: Start pose of the sim and mock backends, target of reset_episode (driver parameter home_pose).
HOME_POSE: tuple[float, ...] = (0.0, -1.2, 1.3, 1.0, 0.0, 0.3)
