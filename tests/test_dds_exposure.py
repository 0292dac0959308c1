"""Who can talk to the arm: the shipped Fast DDS profiles against an intruder on the same link.

Three network namespaces on one Ethernet segment (a bridge that forwards multicast like an
unmanaged switch), each with its own /dev/shm: `robot` runs the driver (mock backend), `peer` is
the legitimate GPU host / operator, `intruder` is any other machine on that network. The robot
and the peer use the multi-machine profile made by config/dds/make_profile.py (peers = their
two addresses: multicast discovery off, UDP only on the listed addresses); the intruder uses
Fast DDS's defaults (multicast discovery) on the same domain. For 5 s the intruder publishes
joint_trajectory and calls /driver/enable false; the driver must have accepted nothing (its
~/status counters and state unchanged, the arm where it was), while the peer sees joint_states
and its own command and service call reach the driver (the positive control). A control run
with the permissive LAN profile on the robot shows the same intruder does get through.

Needs root and iproute2 (`ip netns`); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multi_machine_hosts import OneLan, run, stop

ROOT = Path(__file__).resolve().parents[1]
DDS = ROOT / "config" / "dds"
DRIVER = ROOT / "install" / "soarm_driver" / "lib" / "soarm_driver" / "driver"
CLIENTS = Path(__file__).resolve().parent / "dds_exposure_clients.py"
ATTACK_S = 5.0

pytestmark = pytest.mark.dds


@pytest.fixture
def lan():
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    tag = os.getpid()
    hosts = ("robot", "peer", "intruder")
    try:
        net = OneLan(tag, hosts)
    except subprocess.CalledProcessError as exc:
        for ns in OneLan.namespaces(tag, hosts).values():
            run("ip", "netns", "del", ns, check=False)
        pytest.skip(f"cannot create network namespaces here: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
    try:
        yield net
    finally:
        net.close()


def env_with(profile: Path | None, discovery_range: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "ROS_STATIC_PEERS")}
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    env["PYTHONUNBUFFERED"] = "1"
    return env


def result_of(log: Path, *other_logs: Path) -> dict:
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    others = "".join(f"\n--- {p.name}:\n{p.read_text()[-2500:]}" for p in other_logs)
    assert lines, f"{log.name} printed no result:\n{text[-2500:]}{others}"
    return json.loads(lines[-1][len("RESULT "):])


def attack(lan: OneLan, tmp_path: Path, name: str, robot_env: dict, observer_env: dict, intruder_env: dict,
           observer_host: str = "peer") -> dict:
    """Driver on `robot`, the observer on `observer_host`, the intruder's 5 s attack in between;
    both results."""
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} not installed: run scripts/setup.sh")
    logs = {k: tmp_path / f"{name}_{k}.log" for k in ("driver", "observer", "intruder")}
    stop_file = tmp_path / f"{name}.stop"
    procs = []
    try:
        procs.append(lan.popen("robot", [str(DRIVER), "--ros-args", "-p", "backend:=mock",
                                         "-p", "camera_names:=['']"], robot_env, logs["driver"]))
        observer = lan.popen(observer_host, [sys.executable, str(CLIENTS), "observer", str(stop_file), "60"],
                             observer_env, logs["observer"])
        procs.append(observer)
        deadline = time.monotonic() + 90
        while "READY" not in logs["observer"].read_text() and observer.poll() is None:
            assert time.monotonic() < deadline, f"observer never ready\n{logs['observer'].read_text()[-2000:]}"
            time.sleep(0.2)
        intruder = lan.popen("intruder", [sys.executable, str(CLIENTS), "intruder", str(ATTACK_S)],
                             intruder_env, logs["intruder"])
        procs.append(intruder)
        intruder.wait(timeout=ATTACK_S + 60)
        stop_file.touch()
        observer.wait(timeout=60)
    finally:
        stop_file.touch()
        for proc in reversed(procs):
            stop(proc)
    return {"observer": result_of(logs["observer"], logs["driver"]),
            "intruder": result_of(logs["intruder"], logs["driver"])}


def got_through(result: dict) -> bool:
    """Did the intruder reach the driver (answers, or the driver's counters or state moved)?"""
    obs, intr = result["observer"], result["intruder"]
    before, after = obs["before"]["status"], obs["after"]["status"]
    return (intr["enable_answers"] > 0 or intr["joint_states_seen"] > 0 or after["state"] != before["state"]
            or after["accepted"] != before["accepted"] or after["rejected"] != before["rejected"])


def assert_nothing_reached_the_driver(result: dict, what: str):
    obs, intr = result["observer"], result["intruder"]
    assert obs["discovered"], f"{what}: the legitimate peer never saw the driver: the test proves nothing"
    before, after = obs["before"], obs["after"]
    assert intr["published"] > 50 and intr["enable_calls"] > 10, f"{what}: the intruder did not attack: {intr}"
    assert intr["enable_answers"] == 0, f"{what}: /driver/enable answered the intruder: {intr}"
    assert intr["joint_states_seen"] == 0 and intr["status_seen"] == 0, f"{what}: the intruder sees the arm: {intr}"
    assert "driver" not in intr["nodes_seen"], f"{what}: the intruder discovered the driver: {intr}"
    for key in ("state", "accepted", "rejected", "clamped"):
        assert after["status"][key] == before["status"][key], f"{what}: ~/status.{key} changed: {before} -> {after}"
    assert after["status"]["state"] == "ENABLED", after
    moved = max(abs(a - b) for a, b in zip(before["joints"], after["joints"]))
    assert moved < 1e-3, f"{what}: the arm moved {moved:.4f} rad during the attack"
    # Positive control: the legitimate peer's own service call and command reach the driver.
    assert obs["enable_service_found"] and obs["enable_answered"], f"{what}: the peer's /driver/enable failed: {obs}"
    assert obs["final"]["status"]["accepted"] == after["status"]["accepted"] + 1, \
        f"{what}: the peer's trajectory was not accepted: {obs}"
    print(f"\n{what}: intruder published {intr['published']} trajectories, {intr['enable_calls']} enable(false) "
          f"calls -> {intr['enable_answers']} answers, {intr['joint_states_seen']} joint_states seen; driver "
          f"accepted {before['status']['accepted']} -> {after['status']['accepted']}, rejected "
          f"{before['status']['rejected']} -> {after['status']['rejected']}, state {after['status']['state']}; "
          f"peer saw {after['joint_states_seen']} joint_states, its command accepted")


def unicast_profile(lan: OneLan, tmp_path: Path, *hosts: str) -> Path:
    profile = tmp_path / f"unicast_{'_'.join(hosts)}.xml"
    made = run(sys.executable, str(DDS / "make_profile.py"), "unicast", "-o", str(profile),
               "--peers", *(lan.addr[h] for h in hosts))
    assert made.returncode == 0, made.stderr
    return profile


def test_intruder_on_the_link_cannot_reach_the_driver_with_the_unicast_profile(lan, tmp_path):
    intruder_env = env_with(None, "SUBNET")  # Fast DDS defaults: multicast discovery on the link
    # Control: with the permissive LAN profile on the robot, the same intruder does get through.
    lan_env = env_with(DDS / "lan.xml", "SUBNET")
    control = attack(lan, tmp_path, "lan", lan_env, lan_env, intruder_env)
    assert control["observer"]["discovered"], control
    assert got_through(control), f"the intruder did not reach a driver on lan.xml: the test proves nothing: {control}"
    print(f"\ncontrol (lan.xml): intruder got {control['intruder']['enable_answers']} enable answers, driver state "
          f"{control['observer']['after']['status']['state']}")

    # The shipped multi-machine profile, generated for the robot and the peer only.
    env = env_with(unicast_profile(lan, tmp_path, "robot", "peer"), "SYSTEM_DEFAULT")
    result = attack(lan, tmp_path, "unicast", env, env, intruder_env)
    assert_nothing_reached_the_driver(result, "unicast profile")


@pytest.mark.parametrize("discovery_range", ["SYSTEM_DEFAULT", "SUBNET"])
def test_intruder_on_the_link_cannot_reach_the_driver_with_the_single_machine_profile(lan, tmp_path, discovery_range):
    """local.xml: driver and observer on the robot host; nothing of theirs on the network, as
    activate.sh runs it (SYSTEM_DEFAULT) and as a plain ROS 2 install does (SUBNET, the default)."""
    env = env_with(DDS / "local.xml", discovery_range)
    result = attack(lan, tmp_path, "local", env, env, env_with(None, "SUBNET"), observer_host="robot")
    assert_nothing_reached_the_driver(result, f"single-machine profile ({discovery_range})")


def test_limits_of_the_unicast_profile_stated_in_the_readme(lan, tmp_path):
    """What the profile alone does not stop (README, "Safety and security"): the ROS default
    discovery range (SUBNET) announces the participants by multicast, and an intruder that puts
    the robot's address in its own peer list is accepted (discovery is not authentication)."""
    intruder_env = env_with(None, "SUBNET")
    subnet = env_with(unicast_profile(lan, tmp_path, "robot", "peer"), "SUBNET")
    leaked = attack(lan, tmp_path, "subnet", subnet, subnet, intruder_env)
    assert leaked["observer"]["discovered"], leaked
    assert got_through(leaked), f"SUBNET no longer leaks: update unicast.xml's comment and the README: {leaked}"
    secure = env_with(unicast_profile(lan, tmp_path, "robot", "peer"), "SYSTEM_DEFAULT")
    knowing = env_with(unicast_profile(lan, tmp_path, "intruder", "robot"), "SYSTEM_DEFAULT")
    informed = attack(lan, tmp_path, "informed", secure, secure, knowing)
    assert informed["observer"]["discovered"], informed
    assert got_through(informed), f"an intruder listing the robot's address was refused: update the README: {informed}"
    for name, r in (("SUBNET range", leaked), ("intruder listing the robot", informed)):
        print(f"\n{name}: intruder got {r['intruder']['enable_answers']} enable answers, driver state "
              f"{r['observer']['after']['status']['state']}")


def xml_lists(text: str) -> dict:
    import xml.etree.ElementTree as ET

    ns = {"d": "http://www.eprosima.com"}
    root = ET.fromstring(text)
    return {
        "peers": [a.text for a in root.findall(".//d:initialPeersList/d:locator/d:udpv4/d:address", ns)],
        "allowlist": [i.get("name") for i in root.findall(".//d:interfaces/d:allowlist/d:interface", ns)],
        "meta_unicast": root.findall(".//d:metatrafficUnicastLocatorList/d:locator", ns),
        "meta_multicast": root.findall(".//d:metatrafficMulticastLocatorList/d:locator", ns),
    }


def test_shipped_profiles_restrict_discovery_and_interfaces():
    """The settings the namespace tests rely on, in the committed and generated files."""
    local = xml_lists((DDS / "local.xml").read_text())
    assert local["peers"] == ["127.0.0.1"] and local["allowlist"] == ["127.0.0.1"], local
    assert len(local["meta_unicast"]) == 1 and not local["meta_multicast"], "local.xml: multicast discovery is on"
    made = run(sys.executable, str(DDS / "make_profile.py"), "unicast", "--peers", "10.0.0.1", "10.0.0.2")
    unicast = xml_lists(made.stdout)
    assert unicast["peers"] == ["10.0.0.1", "10.0.0.2"], unicast
    assert unicast["allowlist"] == ["10.0.0.1", "10.0.0.2", "127.0.0.1"], unicast
    assert len(unicast["meta_unicast"]) == 1 and not unicast["meta_multicast"], "unicast.xml: multicast discovery is on"


def test_compose_default_domain_is_not_zero_and_profiles_are_used_as_written():
    import re

    text = (ROOT / "docker" / "compose.yaml").read_text()
    domain = re.search(r"ROS_DOMAIN_ID: \$\{ROS_DOMAIN_ID:-(\d+)\}", text)
    assert domain and int(domain.group(1)) != 0, "compose: the default ROS_DOMAIN_ID must not be 0"
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE: ${ROS_AUTOMATIC_DISCOVERY_RANGE:-SYSTEM_DEFAULT}" in text
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-SYSTEM_DEFAULT}"' in \
        (ROOT / "activate.sh").read_text()
