"""Teleoperation: the teleop node (leader arm or the sim's scripted expert -> joint_trajectory).

    ros2 launch launch/teleop.launch.py source:=leader                           # real arm, robot.launch.py running
    ros2 launch launch/teleop.launch.py source:=scripted use_sim_time:=true      # sim demos

Show every argument: ros2 launch launch/teleop.launch.py --show-args
"""

import sys
from pathlib import Path

from launch import LaunchDescription
from launch.actions import OpaqueFunction

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soarm_common as sc


def _setup(context):
    overrides = {"use_sim_time": sc.truthy(sc.arg(context, "use_sim_time"))}
    if sc.arg(context, "source"):  # empty: keep the parameter file's source
        overrides["source"] = sc.arg(context, "source")
    params = [sc.arg(context, "teleop_params"), overrides]
    return sc.in_namespace(context, [sc.soarm_node(sc.TELEOP, context, params)])


def generate_launch_description():
    return LaunchDescription([
        *sc.common_arguments("false"),
        sc.params_file_arg(sc.TELEOP, "teleop_params"),
        sc.declare("source", "", "Command source: scripted (the sim's scripted expert) or leader (an SO-101 "
                   "leader arm through LeRobot); empty = the parameter file's.", ["", "scripted", "leader"]),
        OpaqueFunction(function=_setup),
    ])
