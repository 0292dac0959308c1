"""The shape of the code (issue 15), checked on the sources: a thin driver node, one written
definition of the joint limits per package, two packages that never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from soarm_act_policy.kinematics import parse_joints

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / "config" / "urdf" / "so101.urdf"
PACKAGES = {"soarm_driver": ROOT / "src" / "soarm_driver" / "soarm_driver",
            "soarm_act_policy": ROOT / "src" / "soarm_act_policy" / "soarm_act_policy"}
#: The one module per package that writes the joint limits down (tests/test_urdf.py holds them equal to the URDF).
LIMITS_MODULE = {"soarm_driver": "robot.py", "soarm_act_policy": "joints.py"}
DRIVER_NODE_MAX_LINES = 300


def sources(package: str) -> list[Path]:
    return sorted(p for p in PACKAGES[package].rglob("*.py") if "__pycache__" not in p.parts)


def test_driver_node_is_wiring_within_300_lines():
    node = PACKAGES["soarm_driver"] / "driver_node.py"
    n = len(node.read_text().splitlines())
    assert n <= DRIVER_NODE_MAX_LINES, (
        f"driver_node.py has {n} lines (at most {DRIVER_NODE_MAX_LINES}): it only wires parameters, topics, "
        "services and the control thread; move logic into core.py (ROS-free, unit-tested), messages.py or "
        "ros_support.py")


@pytest.mark.parametrize("package, other", [("soarm_driver", "soarm_act_policy"), ("soarm_act_policy", "soarm_driver")])
def test_the_two_packages_never_import_each_other(package, other):
    found = []
    for path in sources(package):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == other]
    assert not found, f"{package} imports {other} (they agree through topics only): {found}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_joint_limit_value_is_written_in_one_module_per_package(package):
    """A grep for any joint limit value finds at most one definition per package."""
    limits = {abs(v) for j in parse_joints(URDF.read_text()).values() if j.type != "fixed" for v in (j.lower, j.upper)}
    assert len(limits) >= 6
    where: dict[str, set[float]] = {}
    for path in sources(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value in limits:
                where.setdefault(path.name, set()).add(node.value)
    assert set(where) <= {LIMITS_MODULE[package]}, (
        f"joint limit values written outside {LIMITS_MODULE[package]}: "
        f"{ {f: sorted(v) for f, v in where.items() if f != LIMITS_MODULE[package]} }; import them from there")
    assert where.get(LIMITS_MODULE[package]) == limits
