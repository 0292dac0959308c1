"""GPU host (or one machine): the ACT policy node, and run_policy_server beside it (the
`run_policy` action that runs one episode per goal; run_policy:=false leaves it out).

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


def run_policy_node(context) -> list:
    if not sc.truthy(sc.arg(context, "run_policy")):
        return []
    use_sim_time = sc.truthy(sc.arg(context, "use_sim_time"))
    return [sc.soarm_node(sc.RUN_POLICY, context, [sc.arg(context, "run_policy_params"),
                                                    {"use_sim_time": use_sim_time}])]


def policy_arguments() -> list:
    return [
        sc.params_file_arg(sc.POLICY, "policy_params"),
        sc.declare("checkpoint", "", "LeRobot ACT checkpoint (a pretrained_model directory); empty = "
                   "the parameter file's checkpoint."),
        sc.declare("device", "", "Torch device: auto, cpu, cuda, cuda:1, mps; empty = the parameter file's."),
        sc.declare("run_policy", "true", "Start run_policy_server beside the policy (the run_policy action: one "
                   "episode per goal, for task planners).", ["true", "false"]),
        sc.params_file_arg(sc.RUN_POLICY, "run_policy_params"),
    ]


def generate_launch_description():
    return LaunchDescription([
        *sc.common_arguments("false"),
        *policy_arguments(),
        OpaqueFunction(function=lambda context: sc.in_namespace(context, [policy_node(context),
                                                                          *run_policy_node(context)])),
    ])
