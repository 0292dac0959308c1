"""The SROS2 access-control policy (config/sros2/policy.xml) against the interface document and
the running nodes.

- Every topic, service and action of docs/interfaces.md's node-graph table is granted to the
  documented sides (publishers / servers / action servers and subscribers / callers / action
  clients), and the policy grants no topic or service the document does not name.
- The real driver, teleop, recorder, policy and run_policy_server processes and the evaluate and
  replay clients (over DDS, the ROS graph) use nothing outside their profile, and their profile
  grants nothing they do not use (but NOT_ALWAYS_CREATED: `/clock` with the sim backend and
  `use_sim_time`, the `run_policy` action with `evaluate --action`).

Enforcement itself cannot run here: the PyPI Fast DDS has no DDS Security plugins.
"""

from __future__ import annotations

import fnmatch
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_helpers import SMALL_CAMERAS, ZERO_HOME
from test_interfaces_documented import builtin, start_tiny_policy

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "config" / "sros2" / "policy.xml"
DOC = ROOT / "docs" / "interfaces.md"
#: The doc's words for who is on a side -> policy profiles (node names).
SIM_TIME_NODES = {"policy", "teleop", "recorder", "evaluate", "replay", "run_policy_server", "evaluate_run_policy"}
ROLES = {
    "driver": {"driver"}, "policy": {"policy"}, "teleop": {"teleop"}, "recorder": {"recorder"},
    "evaluate": {"evaluate"}, "replay": {"replay"}, "rviz": {"rviz"}, "run_policy_server": {"run_policy_server"},
    # people and their tools (ros2 CLI, rqt, Foxglove, a task planner) share the operator enclave
    "users": {"operator"}, "rqt_robot_monitor": {"operator"}, "foxglove": {"operator"},
    "task planners": {"operator"},
    # episode_events "-> all": every node that follows episodes (the driver only writes them)
    "all": {"policy", "teleop", "recorder", "evaluate", "replay", "operator"},
    "every node with use_sim_time": SIM_TIME_NODES,
}
#: Granted, but only created in other configurations: name -> when.
NOT_ALWAYS_CREATED = {"clock": "sim backend, use_sim_time", "run_policy": "evaluate --action run_policy",
                      # teleop take_over:=true (the human command source and its toggle)
                      "joint_trajectory/human": "teleop take_over", "teleop/take_over": "teleop take_over",
                      "driver/select_source": "teleop take_over",
                      # teleop take_over_after > 0 (the DAgger corrector watches the task stages)
                      "driver/status": "teleop take_over_after"}


def norm(name: str, node: str = "") -> str:
    """Policy or graph name -> the document's relative form: '~/x' -> '<node>/x', no leading '/'."""
    if name.startswith("~/"):
        name = f"{node}/{name[2:]}"
    return name.lstrip("/")


def policy_grants() -> dict[str, dict[str, set[str]]]:
    """profile node -> permission (publish, subscribe, reply, request, execute, call) -> names."""
    root = ET.parse(POLICY).getroot()
    assert root.tag == "policy" and root.get("version") == "0.2.0", "not an SROS2 policy (version 0.2.0)"
    grants: dict[str, dict[str, set[str]]] = {}
    for enclave in root.iter("enclave"):
        assert enclave.get("path", "").startswith("/soarm/"), enclave.get("path")
        for profile in enclave.iter("profile"):
            node = profile.get("node")
            assert profile.get("ns") == "/" and node, ET.tostring(profile)[:200]
            g = grants.setdefault(node, {})
            for group in profile:
                for permission, value in group.attrib.items():
                    assert value == "ALLOW", f"{node}: only ALLOW rules expected, got {permission}={value}"
                    g.setdefault(permission, set()).update(norm(child.text.strip(), node) for child in group)
    return grants


def granted(grants, node: str, permission: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in grants.get(node, {}).get(permission, ()))


def doc_graph_rows() -> list[dict]:
    """The node-graph table of docs/interfaces.md: names, service?, senders, receivers (profiles)."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| name | type | from → to |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        name_cell, type_cell, sides, qos = (c.strip() for c in line.strip("|").split(" | "))
        names = []
        for span in re.findall(r"`([^`]+)`", name_cell):
            if span.startswith("~/"):
                continue  # the node-private spelling of the name before it
            if span.startswith(".../"):
                span = names[-1].rsplit("/", 1)[0] + span[3:]
            names.append(norm(span).replace("<name>", "front"))
        senders, receivers = (parse_roles(side) for side in sides.split("→"))
        kind = ("action" if "action" in qos or "/action/" in type_cell
                else "service" if "service" in qos or "/srv/" in type_cell else "topic")
        rows.append({"names": names, "kind": kind, "senders": senders, "receivers": receivers, "line": line})
    assert len(rows) > 10, f"node-graph table not found or cut short in {DOC}"
    return rows


def parse_roles(text: str) -> set[str]:
    text = re.sub(r"\([^)]*\)", "", text.replace("`", "")).lower()
    words = [w.strip() for w in re.split(r",| / | or | and ", text) if w.strip()]
    unknown = [w for w in words if w not in ROLES]
    assert not unknown, f"docs/interfaces.md names {unknown} in the node graph: map them in ROLES"
    return set().union(*(ROLES[w] for w in words))


def test_policy_grants_every_documented_topic_and_service_to_its_documented_sides():
    grants = policy_grants()
    problems = []
    documented = set()
    for row in doc_graph_rows():
        send, receive = {"topic": ("publish", "subscribe"), "service": ("request", "reply"),
                         "action": ("call", "execute")}[row["kind"]]
        names = row["names"]
        documented.update(names)
        for name in names:
            receivers = row["receivers"]
            if len(names) > 1:  # /driver/enable, /policy/enable -> driver, policy: the one its name says
                owner = name.split("/")[0]
                receivers = {owner} if owner in receivers else receivers
            for node in sorted(receivers):
                if not granted(grants, node, receive, name):
                    problems.append(f"{node} may not {receive} {name!r} ({row['line']})")
            if not any(granted(grants, node, send, name) for node in row["senders"]):
                problems.append(f"none of {sorted(row['senders'])} may {send} {name!r} ({row['line']})")
        for node in sorted(row["senders"]):  # a row of several names: each sender uses one at least
            if not any(granted(grants, node, send, name) for name in names):
                problems.append(f"{node} may not {send} any of {names} ({row['line']})")
    assert not problems, "config/sros2/policy.xml lacks grants:\n" + "\n".join(problems)
    # The other way: nothing granted that the document does not name (actions and builtins aside).
    cameras = {n for n in documented if n.startswith("cameras/")}
    undocumented = set()
    for node, g in grants.items():
        for permission in ("publish", "subscribe", "reply", "request"):
            for name in g.get(permission, ()):
                if builtin("/" + name) or name in documented:
                    continue
                if "*" in name and any(fnmatch.fnmatchcase(c, name) for c in cameras):
                    continue
                undocumented.add(f"{node} {permission} {name}")
    assert not undocumented, f"granted but not in docs/interfaces.md's node graph: {sorted(undocumented)}"
    assert len(documented) >= 15, sorted(documented)


def test_policy_rejects_what_the_document_does_not_allow():
    """The checks above can fail: a grant removed or a foreign role is noticed."""
    grants = policy_grants()
    assert granted(grants, "driver", "subscribe", "joint_trajectory")
    assert not granted(grants, "recorder", "publish", "joint_trajectory"), "the recorder must not move the arm"
    assert not granted(grants, "operator", "publish", "joint_trajectory"), "people command through nodes"
    assert not granted(grants, "rviz", "request", "driver/enable")
    assert granted(grants, "operator", "request", "driver/enable")
    with pytest.raises(AssertionError, match="map them in ROLES"):
        parse_roles("driver → intruder")


# ---------------------------------------------------------------------------------- real nodes
def node_graph(ros_node, node_name: str, timeout: float = 30.0) -> dict[str, set[str]]:
    """permission -> names the running node has in the ROS graph (settled: two equal looks)."""
    node = ros_node.node
    lookups = {"publish": node.get_publisher_names_and_types_by_node,
               "subscribe": node.get_subscriber_names_and_types_by_node,
               "reply": node.get_service_names_and_types_by_node,
               "request": node.get_client_names_and_types_by_node}
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        try:
            found = {k: {n for n, _ in f(node_name, "/")} for k, f in lookups.items()}
        except Exception:  # not discovered yet
            found = {}
        if found and found == seen and any(not builtin(n) for names in found.values() for n in names):
            return found
        seen = found
        time.sleep(1.0)
    return seen


def check_against_profile(grants, node_name: str, graph: dict[str, set[str]]) -> list[str]:
    problems = []
    used: dict[str, set[str]] = {}
    for permission, names in graph.items():
        for name in names:
            name = norm(name)
            if "/_action/" in name:  # an action's hidden topics and services
                base = name.split("/_action/")[0]
                permission_used = "execute" if permission in ("reply", "publish") else "call"
                used.setdefault(permission_used, set()).add(base)
                ok = granted(grants, node_name, permission_used, base)
            else:
                used.setdefault(permission, set()).add(name)
                ok = granted(grants, node_name, permission, name)
            if not ok:
                problems.append(f"{node_name} {permission}s {name!r}: not in its profile")
    for permission, patterns in grants[node_name].items():
        for pattern in patterns:
            if pattern in NOT_ALWAYS_CREATED or (permission == "reply" and builtin("/" + pattern)):
                continue
            if not any(fnmatch.fnmatchcase(n, pattern) for n in used.get(permission, ())):
                problems.append(f"{node_name}: profile grants {permission} {pattern!r}, the node does not use it")
    return problems


@pytest.mark.dds
def test_running_nodes_stay_inside_their_profiles(start_node, ros_node, tmp_path_factory):
    grants = policy_grants()
    start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml",
               params={"backend": "mock", **ZERO_HOME, **SMALL_CAMERAS})
    start_node("soarm_driver", "teleop", params_file=ROOT / "config" / "teleop.yaml")
    start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
               params={"output_dir": str(tmp_path_factory.mktemp("bags"))})
    start_tiny_policy(start_node, ros_node, tmp_path_factory)
    problems = []
    start_node("soarm_act_policy", "run_policy_server")
    # The evaluate and replay clients as their CLIs build them (no episode is run).
    from soarm_act_policy.evaluation.client import EvalClient, EvalSettings
    from soarm_act_policy.replay.client import ReplayClient, ReplaySettings

    clients = [EvalClient(EvalSettings(use_sim_time=False), run_policy=True), ReplayClient(ReplaySettings())]
    try:
        for node_name in ("driver", "teleop", "recorder", "policy", "run_policy_server", "evaluate",
                          "evaluate_run_policy", "replay"):
            graph = node_graph(ros_node, node_name)
            assert graph and graph["publish"], f"{node_name}: not in the ROS graph"
            if node_name in ("run_policy_server", "evaluate_run_policy"):  # the action's hidden services
                assert any("/_action/" in n for n in graph["reply"]), graph
            problems += check_against_profile(grants, node_name, graph)
    finally:
        for client in clients:
            client.close()
    assert not problems, "config/sros2/policy.xml vs the running nodes:\n" + "\n".join(problems)
