"""The colcon workspace: all three packages built, executables where `ros2 run` looks."""

import configparser
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"
PACKAGES = ("soarm_msgs", "soarm_driver", "soarm_act_policy")


def declared_console_scripts(package: str) -> list[str]:
    """Executable names from the package's setup.py console_scripts (not other entry-point groups)."""
    text = (ROOT / "src" / package / "setup.py").read_text()
    block = re.search(r'"console_scripts"\s*:\s*\[(.*?)\]', text, re.S)
    return re.findall(r'"(\w+)\s*=\s*[\w.]+:\w+"', block.group(1)) if block else []


@pytest.mark.parametrize("package", PACKAGES)
def test_package_installed_in_ament_index(package):
    marker = INSTALL / package / "share" / "ament_index" / "resource_index" / "packages" / package
    assert marker.exists(), f"{package} missing from the ament index of {INSTALL}"
    assert (INSTALL / package / "share" / package / "package.xml").exists()


@pytest.mark.parametrize("package", ["soarm_driver", "soarm_act_policy"])
def test_executables_where_ros2_run_looks(package):
    names = declared_console_scripts(package)
    assert names, f"no console_scripts declared in {package}/setup.py"
    for name in names:
        exe = INSTALL / package / "lib" / package / name
        assert exe.exists(), f"{exe} missing: ros2 run {package} {name} would fail"
        assert exe.stat().st_mode & 0o111, f"{exe} is not executable"
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "src" / package / "setup.cfg")
    assert cfg["install"]["install_scripts"] == f"$base/lib/{package}"


def test_generated_interfaces_importable():
    from soarm_msgs.msg import EpisodeEvent, PolicyStatus
    from soarm_msgs.srv import ResetEpisode

    assert EpisodeEvent.SUCCESS != EpisodeEvent.FAILURE
    assert {PolicyStatus.IDLE, PolicyStatus.RUNNING, PolicyStatus.HOLDING, PolicyStatus.ERROR} == {0, 1, 2, 3}
    req = ResetEpisode.Request(task="pick", seed=3, randomize=True)
    assert (req.task, req.seed, req.randomize) == ("pick", 3, True)
    assert hasattr(ResetEpisode.Response(), "episode_index")


@pytest.mark.parametrize("package", PACKAGES)
def test_package_xml_valid_for_rosdep(package):
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(ROOT / "src" / package / "package.xml"))
    assert pkg.name == package
    deps = {d.name for d in pkg.build_depends + pkg.exec_depends + pkg.buildtool_depends}
    if package == "soarm_msgs":
        assert {"rosidl_default_generators", "std_msgs"} <= deps
    else:
        assert {"rclpy", "sensor_msgs", "trajectory_msgs", "soarm_msgs"} <= deps


def test_interface_fields_documented():
    """Every field and constant of our interfaces carries a comment."""
    for f in sorted((ROOT / "src" / "soarm_msgs").glob("*/*.*")):
        if f.suffix not in (".msg", ".srv"):
            continue
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            s = line.strip()
            if not s or s.startswith("#") or s == "---":
                continue
            commented = "#" in s or (i > 0 and lines[i - 1].strip().startswith("#"))
            assert commented, f"{f.name}:{i + 1} undocumented: {s!r}"


def test_python_is_312():
    assert sys.version_info[:2] == (3, 12)
