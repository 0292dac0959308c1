"""GPU host (or one machine): the ACT policy node alone.

    ros2 launch launch/policy.launch.py checkpoint:=outputs/train/act/checkpoints/last/pretrained_model
    ros2 launch launch/policy.launch.py checkpoint:=... device:=cuda namespace:=arm2

The driver runs elsewhere (robot.launch.py on the robot computer) with the same ROS_DOMAIN_ID.
Show every argument: ros2 launch launch/policy.launch.py --show-args
"""

import sys
from pathlib import Path

from launch import LaunchDescription
from launch.actions import OpaqueFunction

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soarm_common as sc


def policy_node(context):
    overrides = {"use_sim_time": sc.truthy(sc.arg(context, "use_sim_time"))}
    for name in ("checkpoint", "device"):
        value = sc.arg(context, name)
        if value:  # empty: keep the parameter file's value
            overrides[name] = value
    return sc.soarm_node(sc.POLICY, context, [sc.arg(context, "policy_params"), overrides])


def policy_arguments() -> list:
    return [
        sc.params_file_arg(sc.POLICY, "policy_params"),
        sc.declare("checkpoint", "", "LeRobot ACT checkpoint (a pretrained_model directory); empty = "
                   "the parameter file's checkpoint."),
        sc.declare("device", "", "Torch device: auto, cpu, cuda, cuda:1, mps; empty = the parameter file's."),
    ]


def generate_launch_description():
    return LaunchDescription([
        *sc.common_arguments("false"),
        *policy_arguments(),
        OpaqueFunction(function=lambda context: sc.in_namespace(context, [policy_node(context)])),
    ])
