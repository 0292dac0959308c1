"""What the soarm_act launch files share, free of `launch` imports (unit-testable anywhere).

The launch files live in the repository's `launch/` directory and are started by path:
    ros2 launch launch/robot.launch.py backend:=feetech
They find parameter files, the URDF and the rviz config next to them in `config/`
(override with the SOARM_CONFIG_DIR environment variable).
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAUNCH_DIR = Path(__file__).resolve().parent
CONFIG_DIR = Path(os.environ.get("SOARM_CONFIG_DIR", LAUNCH_DIR.parent / "config"))
DEFAULT_URDF = CONFIG_DIR / "urdf" / "so101.urdf"
DEFAULT_RVIZ = CONFIG_DIR / "rviz" / "soarm.rviz"
BACKENDS = ("sim", "mock", "feetech")


@dataclass(frozen=True)
class NodeSpec:
    """One node the launch files start: `ros2 run <package> <executable>` named `name`."""

    package: str
    executable: str
    name: str
    params_file: str | None = None  # file name in config/, node section `/**`

    @property
    def params_path(self) -> Path | None:
        return CONFIG_DIR / self.params_file if self.params_file else None


DRIVER = NodeSpec("soarm_driver", "driver", "driver", "driver.yaml")
TELEOP = NodeSpec("soarm_driver", "teleop", "teleop", "teleop.yaml")
POLICY = NodeSpec("soarm_act_policy", "policy", "policy", "policy.yaml")
RUN_POLICY = NodeSpec("soarm_act_policy", "run_policy_server", "run_policy_server", "run_policy_server.yaml")
#: Nodes of this workspace (their executables are in the colcon install space).
WORKSPACE_NODES = (DRIVER, TELEOP, POLICY, RUN_POLICY)
#: Nodes from a ROS 2 distribution (apt: ros-jazzy-robot-state-publisher, ros-jazzy-rviz2).
ROBOT_STATE_PUBLISHER = NodeSpec("robot_state_publisher", "robot_state_publisher", "robot_state_publisher")
RVIZ = NodeSpec("rviz2", "rviz2", "rviz2")


def truthy(text: str) -> bool:
    """A launch argument as a boolean ('true'/'false', '1'/'0', 'yes'/'no')."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend:={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def use_sim_time_for(backend: str, use_sim_time: str) -> bool:
    """use_sim_time:=auto follows the backend: the sim backend publishes /clock."""
    if str(use_sim_time).strip().lower() == "auto":
        return check_backend(backend) == "sim"
    return truthy(use_sim_time)


def normalize_namespace(namespace: str) -> str:
    """'' or '/arm1' style; rejects names ROS would reject."""
    ns = str(namespace).strip().strip("/")
    if ns and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*", ns):
        raise ValueError(f"namespace:={namespace!r} is not a valid ROS namespace")
    return "/" + ns if ns else ""


def _load_mesh_tool():
    path = CONFIG_DIR / "urdf" / "mesh_urdf.py"
    spec = importlib.util.spec_from_file_location("soarm_mesh_urdf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def robot_description(urdf: str | os.PathLike = DEFAULT_URDF, meshes: bool = False, mesh_dir: str = "") -> str:
    """The URDF text for robot_state_publisher; with meshes, the real STL meshes."""
    urdf = Path(urdf).expanduser()
    if not urdf.is_file():
        raise FileNotFoundError(f"urdf:={urdf} does not exist")
    if not meshes:
        return urdf.read_text()
    tool = _load_mesh_tool()
    return tool.mesh_urdf_text(urdf, None, Path(mesh_dir) if mesh_dir else None)


# Topics in the rviz config that belong to the robot (follow its namespace); /tf,
# /tf_static and /clock stay global.
_RVIZ_TOPIC = re.compile(r"^(\s*(?:Topic|Value|Description Topic):?\s*)(/[A-Za-z_][^\s]*)\s*$")
_GLOBAL_TOPICS = ("/tf", "/tf_static", "/clock")


def namespaced_rviz_text(text: str, namespace: str, tf_prefix: str = "") -> str:
    """The rviz config with the robot's absolute topic names moved under `namespace` and the
    robot model's TF prefix set (robot_state_publisher's frame_prefix, e.g. 'arm2/')."""
    ns = normalize_namespace(namespace)
    prefix = tf_prefix.strip("/")
    out = []
    for line in text.splitlines(keepends=True):
        m = _RVIZ_TOPIC.match(line.rstrip("\n"))
        if ns and m and m.group(2) not in _GLOBAL_TOPICS and not m.group(2).startswith(ns + "/"):
            line = f"{m.group(1)}{ns}{m.group(2)}\n"
        elif prefix and line.strip() == 'TF Prefix: ""':
            line = line.replace('""', f'"{prefix}"')
        out.append(line)
    return "".join(out)


def rviz_config_for(namespace: str, rviz_config: str | os.PathLike = DEFAULT_RVIZ, tf_prefix: str = "") -> str:
    """Path of an rviz config for `namespace`/`tf_prefix` (the original when neither is set)."""
    path = Path(rviz_config).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"rviz_config:={path} does not exist")
    if not normalize_namespace(namespace) and not tf_prefix.strip("/"):
        return str(path)
    fd, tmp = tempfile.mkstemp(prefix="soarm_", suffix=".rviz")
    with os.fdopen(fd, "w") as f:
        f.write(namespaced_rviz_text(path.read_text(), namespace, tf_prefix))
    return tmp


# ---------------------------------------------------------------- launch helpers
# (import `launch` lazily: the functions above must work where it is not installed)

def declare(name: str, default: str, description: str, choices: list[str] | None = None):
    """A DeclareLaunchArgument (shown by `ros2 launch ... --show-args`)."""
    from launch.actions import DeclareLaunchArgument

    kwargs = {"choices": choices} if choices else {}
    return DeclareLaunchArgument(name, default_value=default, description=description, **kwargs)


def common_arguments(use_sim_time_default: str) -> list:
    """Arguments every soarm_act launch file has."""
    return [
        declare("namespace", "",
                "ROS namespace for every node and topic of this arm (e.g. arm1), so two arms can run "
                "side by side; empty = global names."),
        declare("use_sim_time", use_sim_time_default,
                "Use /clock (published by the driver's sim backend) as time: true, false"
                + (" or auto (true when backend is sim)." if use_sim_time_default == "auto" else ".")),
        declare("log_level", "info", "Log level of the nodes: debug, info, warn, error.",
                ["debug", "info", "warn", "error"]),
    ]


def arg(context, name: str) -> str:
    """The value of launch argument `name` in this context."""
    from launch.substitutions import LaunchConfiguration

    return LaunchConfiguration(name).perform(context)


def params_file_arg(spec: NodeSpec, arg_name: str):
    return declare(arg_name, str(spec.params_path),
                   f"Parameter file of the {spec.name} node (section /**: ros__parameters); "
                   f"default: config/{spec.params_file}.")


def soarm_node(spec: NodeSpec, context, params: list, **kwargs):
    """A launch_ros Node for `spec` with this launch's log level."""
    from launch_ros.actions import Node

    return Node(package=spec.package, executable=spec.executable, name=spec.name, parameters=params,
                ros_arguments=["--log-level", arg(context, "log_level")], output="screen", **kwargs)


def in_namespace(context, actions: list) -> list:
    """The actions, grouped under the `namespace` argument (if any)."""
    from launch.actions import GroupAction
    from launch_ros.actions import PushRosNamespace

    ns = normalize_namespace(arg(context, "namespace"))
    return [GroupAction([PushRosNamespace(ns), *actions])] if ns else actions
