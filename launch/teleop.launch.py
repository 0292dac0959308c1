"""Teleoperation: the teleop node (keyboard, leader arm or scripted expert -> joint_trajectory).

    ros2 launch launch/teleop.launch.py                      # with robot.launch.py running
    ros2 launch launch/teleop.launch.py use_sim_time:=true   # against the sim backend

Show every argument: ros2 launch launch/teleop.launch.py --show-args
"""

import sys
from pathlib import Path

from launch import LaunchDescription
from launch.actions import OpaqueFunction

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soarm_common as sc  # noqa: E402


def _setup(context):
    params = [sc.arg(context, "teleop_params"), {"use_sim_time": sc.truthy(sc.arg(context, "use_sim_time"))}]
    return sc.in_namespace(context, [sc.soarm_node(sc.TELEOP, context, params)])


def generate_launch_description():
    return LaunchDescription([
        *sc.common_arguments("false"),
        sc.params_file_arg(sc.TELEOP, "teleop_params"),
        OpaqueFunction(function=_setup),
    ])
