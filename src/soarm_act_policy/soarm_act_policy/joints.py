"""The SO-101 joints, in motor-id order (ids 1..6), as in its URDF and in LeRobot.

The one definition inside soarm_act_policy. The driver package has its own copy on
purpose: the two packages never import each other and agree through the topics'
joint names (consumers always match joints by name, never by position).
"""

JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
