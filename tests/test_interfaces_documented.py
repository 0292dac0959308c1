"""Every parameter each node really declares (asked over DDS through its standard
`~/list_parameters` and `~/describe_parameters` services) carries a description and is
documented in docs/interfaces.md, and so is every topic and service it really offers or
uses (from the ROS graph), so the interface document cannot drift from the code.

Per-camera names (`cameras.front.width`, `cameras/front/image_raw`) are documented once,
as `cameras.<name>.width` and `cameras/<name>/image_raw`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_helpers import SMALL_CAMERAS, ZERO_HOME, Collector

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "interfaces.md"
#: Parameters every rclpy node has; documented by ROS 2, not by us.
ROS_BUILTIN = {"use_sim_time", "start_type_description_service"}
#: Topics and services every rclpy node has.
ROS_BUILTIN_GRAPH = {"/rosout", "/parameter_events"}
ROS_BUILTIN_SERVICE_SUFFIXES = ("/describe_parameters", "/get_parameter_types", "/get_parameters",
                                "/list_parameters", "/set_parameters", "/set_parameters_atomically",
                                "/get_type_description")


def documented_names() -> set[str]:
    """Every `code span` of the interface document, plus the `a.b` / `.c` row shorthand
    (`cameras.<name>.width` / `.height` documents both)."""
    names = set()
    for line in DOC.read_text().splitlines():
        spans = re.findall(r"`([^`]+)`", line)
        names.update(spans)
        full = [s for s in spans if "." in s and not s.startswith(".")]
        for short in (s for s in spans if s.startswith(".")):
            for f in full:
                names.add(f.rsplit(".", 1)[0] + short)
    return names


def doc_form(name: str, cameras: list[str]) -> str:
    """cameras.front.width -> cameras.<name>.width (per-camera parameters)."""
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "cameras" and parts[1] in cameras:
        return f"cameras.<name>.{parts[2]}"
    return name


def doc_forms_of_graph_name(name: str, node_name: str, cameras: list[str]) -> set[str]:
    """How a graph name may appear in the document: /cameras/front/image_raw as
    cameras/<name>/image_raw; /driver/enable also as ~/enable; with or without the slash."""
    parts = name.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "cameras" and parts[1] in cameras:
        parts[1] = "<name>"
    relative = "/".join(parts)
    forms = {relative, "/" + relative}
    if parts[0] == node_name and len(parts) > 1:
        forms.add("~/" + "/".join(parts[1:]))
    return forms


def node_parameters(ros_node, node_name: str, timeout: float = 60.0) -> dict[str, str]:
    """name -> description of every parameter node_name declares (standard parameter services)."""
    from rcl_interfaces.srv import DescribeParameters, ListParameters

    listed = ros_node.call(ListParameters, f"/{node_name}/list_parameters", ListParameters.Request(), timeout=timeout)
    names = list(listed.result.names)
    described = ros_node.call(DescribeParameters, f"/{node_name}/describe_parameters",
                              DescribeParameters.Request(names=names), timeout=timeout)
    return {d.name: d.description for d in described.descriptors}


def builtin(name: str) -> bool:
    return name in ROS_BUILTIN_GRAPH or name.endswith(ROS_BUILTIN_SERVICE_SUFFIXES)


def graph_names(ros_node, node_name: str, timeout: float = 20.0) -> set[str]:
    """Topics the node publishes or subscribes, services it serves or calls (ROS graph)."""
    import time

    node = ros_node.node
    deadline = time.monotonic() + timeout
    names: set[str] = set()
    while time.monotonic() < deadline:  # discovery of all the node's endpoints takes a moment
        try:
            found = {n for lookup in (node.get_publisher_names_and_types_by_node,
                                      node.get_subscriber_names_and_types_by_node,
                                      node.get_service_names_and_types_by_node,
                                      node.get_client_names_and_types_by_node)
                     for n, _ in lookup(node_name, "/")}
        except Exception:  # node not discovered yet
            found = set()
        if found and found == names and any(not builtin(n) for n in found):
            return names
        names = found
        time.sleep(1.0)
    return names


def check_node(ros_node, node_name: str, cameras: list[str] = ()) -> list[str]:
    problems = []
    docs = documented_names()
    graph = graph_names(ros_node, node_name)
    assert graph, f"{node_name}: no topics or services in the ROS graph"
    for name in sorted(graph):
        if builtin(name):
            continue
        if not doc_forms_of_graph_name(name, node_name, list(cameras)) & docs:
            problems.append(f"{node_name}: topic/service {name!r} is not in docs/interfaces.md")
    params = node_parameters(ros_node, node_name)
    assert len(params) > 3, f"{node_name}: only {sorted(params)}"
    for name, description in sorted(params.items()):
        if name in ROS_BUILTIN or name.startswith("qos_overrides."):
            continue
        if not description.strip():
            problems.append(f"{node_name}: parameter {name!r} has no description")
        if doc_form(name, list(cameras)) not in docs:
            problems.append(f"{node_name}: parameter {name!r} is not in docs/interfaces.md")
    return problems


def test_driver_and_teleop_parameters_are_described_and_documented(start_node, ros_node):
    start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml",
               params={"backend": "mock", **ZERO_HOME, **SMALL_CAMERAS})
    start_node("soarm_driver", "teleop", params_file=ROOT / "config" / "teleop.yaml")
    problems = check_node(ros_node, "driver", cameras=["front", "wrist"]) + check_node(ros_node, "teleop")
    assert not problems, "\n".join(problems)


def start_tiny_policy(start_node, ros_node, tmp_path_factory):
    """The policy node with config/policy.yaml and a tiny random checkpoint, once it is set up
    (its first policy_status)."""
    from soarm_msgs.msg import PolicyStatus

    from soarm_act_policy.random_checkpoint import cached_random_checkpoint

    # Its own cache name: "tiny_radians" (test_multi_machine) is a checkpoint acting a target pose.
    ckpt = cached_random_checkpoint(tmp_path_factory.getbasetemp() / "policy_ckpts", "tiny_zero_action",
                                    action_mean=[0.0] * 6, action_std=[1e-4] * 6, state_std=[0.5] * 6)
    start_node("soarm_act_policy", "policy", params_file=ROOT / "config" / "policy.yaml",
               params={"checkpoint": str(ckpt), "torch_threads": 1})
    status = Collector(ros_node, PolicyStatus, "policy_status")
    ros_node.wait_for(lambda: len(status) > 0, 120, what="policy_status (checkpoint loaded, node set up)")


def test_policy_and_recorder_parameters_are_described_and_documented(start_node, ros_node, tmp_path_factory):
    start_tiny_policy(start_node, ros_node, tmp_path_factory)
    start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
               params={"output_dir": str(tmp_path_factory.mktemp("bags"))})
    problems = check_node(ros_node, "policy", cameras=["front", "wrist"]) + check_node(ros_node, "recorder")
    assert not problems, "\n".join(problems)
