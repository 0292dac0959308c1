"""The SO-101 as the policy package knows it: joint names (motor-id order, ids 1..6, as in
its URDF and in LeRobot) and joint limits.

The one definition inside soarm_act_policy. The driver package has its own
(soarm_driver/robot.py) on purpose: the two packages never import each other and agree
through the topics' joint names (consumers always match joints by name, never by
position). tests/test_urdf.py holds both equal to config/urdf/so101.urdf.
"""

JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)

#: Joint position limits (rad): the URDF's <limit lower=... upper=...> per joint.
URDF_LIMITS: dict[str, tuple[float, float]] = {
    "shoulder_pan": (-1.91986, 1.91986),
    "shoulder_lift": (-1.74533, 1.74533),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.65806, 1.65806),
    "wrist_roll": (-2.74385, 2.84121),
    "gripper": (-0.174533, 1.74533),
}
