"""Robot computer and GPU host as network namespaces joined by veth pairs.

The driver (mock backend) runs in one namespace, a policy-side rclpy process in the other;
they are joined through a routing namespace that does not forward multicast, and each
"host" gets its own /dev/shm, so DDS can only meet over unicast UDP between the two
addresses. With the LAN profile on both sides nothing is discovered (the control); with
the unicast profile (config/dds/make_profile.py, peers = both addresses) the real policy
node (a tiny random ACT checkpoint whose actions are a fixed pose) on the GPU side drives the
arm there; with a discovery server, a plain rclpy process commands it.

Needs root and iproute2 (`ip netns`); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multi_machine_hosts import TwoHosts, dds_env, run, stop

ROOT = Path(__file__).resolve().parents[1]
DDS = ROOT / "config" / "dds"
DRIVER = ROOT / "install" / "soarm_driver" / "lib" / "soarm_driver" / "driver"
POLICY = ROOT / "install" / "soarm_act_policy" / "lib" / "soarm_act_policy" / "policy"

pytestmark = pytest.mark.dds

# The policy side: waits for joint_states from the other host, then commands shoulder_pan
# +0.25 rad with single-point trajectories (a position command) until the state follows.
POLICY_SIDE = r'''
import json, sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from builtin_interfaces.msg import Duration

discover_timeout, move_timeout = float(sys.argv[1]), float(sys.argv[2])
rclpy.init()
node = rclpy.create_node("gpu_host_side")
state = {}
node.create_subscription(JointState, "joint_states",
                         lambda m: state.update(zip(m.name, m.position)), qos_profile_sensor_data)
pub = node.create_publisher(JointTrajectory, "joint_trajectory", 10)
t0 = time.monotonic()
result = {"discovered": False, "moved": False}
while time.monotonic() - t0 < discover_timeout and len(state) < 6:
    rclpy.spin_once(node, timeout_sec=0.1)
if len(state) >= 6:
    result["discovered"] = True
    result["discovery_s"] = round(time.monotonic() - t0, 2)
    start = dict(state)
    result["start"] = start["shoulder_pan"]
    target = start["shoulder_pan"] + 0.25
    t1 = time.monotonic()
    while time.monotonic() - t1 < move_timeout:
        msg = JointTrajectory()
        msg.joint_names = list(start)
        goal = dict(start, shoulder_pan=target)
        msg.points = [JointTrajectoryPoint(positions=[goal[n] for n in msg.joint_names],
                                           time_from_start=Duration(sec=0, nanosec=500_000_000))]
        pub.publish(msg)
        for _ in range(2):
            rclpy.spin_once(node, timeout_sec=0.05)
        if abs(state["shoulder_pan"] - target) < 0.02:
            result["moved"] = True
            result["move_s"] = round(time.monotonic() - t1, 2)
            break
    result["end"] = state["shoulder_pan"]
print("RESULT " + json.dumps(result), flush=True)
node.destroy_node()
rclpy.shutdown()
'''


# The GPU host's operator: waits for the robot's joint_states, enables the policy node
# (/policy/enable) and waits until the arm reaches the pose the policy commands.
OPERATOR = r'''
import json, sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

target, timeout = np.array(json.loads(sys.argv[1])), float(sys.argv[2])
names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
rclpy.init()
node = rclpy.create_node("gpu_host_operator")
state = {}
node.create_subscription(JointState, "joint_states", lambda m: state.update(zip(m.name, m.position)),
                         qos_profile_sensor_data)
t0 = time.monotonic()
result = {"discovered": False, "enabled": False, "moved": False}
while time.monotonic() - t0 < timeout and len(state) < 6:
    rclpy.spin_once(node, timeout_sec=0.1)
if len(state) >= 6:
    result["discovered"] = True
    result["discovery_s"] = round(time.monotonic() - t0, 2)
    result["start"] = [state[n] for n in names]
    client = node.create_client(SetBool, "/policy/enable")
    if client.wait_for_service(timeout_sec=timeout):
        time.sleep(0.5)  # let the response writer match our reader (a first response can be lost)
        future = client.call_async(SetBool.Request(data=True))
        rclpy.spin_until_future_complete(node, future, timeout_sec=30)
        result["enabled"] = bool(future.result() and future.result().success)
    t1 = time.monotonic()
    while result["enabled"] and time.monotonic() - t1 < timeout:
        rclpy.spin_once(node, timeout_sec=0.1)
        q = np.array([state[n] for n in names])
        if np.abs(q[:5] - target[:5]).max() < 0.05:
            result["moved"] = True
            result["move_s"] = round(time.monotonic() - t1, 2)
            break
    result["end"] = [state[n] for n in names]
print("RESULT " + json.dumps(result), flush=True)
node.destroy_node()
rclpy.shutdown()
'''
#: Where the tiny random policy sends the arm (rad): its action mean, with a near-zero std.
POLICY_TARGET = [0.1, -0.2, 0.3, -0.4, 0.5, 0.6]


@pytest.fixture
def hosts():
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    tag = os.getpid()
    try:
        h = TwoHosts(tag)
    except subprocess.CalledProcessError as exc:
        for ns in (f"soarm_robot_{tag}", f"soarm_gpu_{tag}", f"soarm_rtr_{tag}"):
            run("ip", "netns", "del", ns, check=False)
        pytest.skip(f"cannot create network namespaces here: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
    yield h
    h.close()


def fastdds_discovery_tool() -> tuple[list[str], dict]:
    """argv and environment that run `fastdds discovery` here, or skip."""
    tool = shutil.which("fastdds")
    if tool is None:
        pytest.skip("the fastdds CLI (discovery server) is not installed")
    env = dict(os.environ)
    # The PyPI wheels keep Fast DDS's private libraries in site-packages/ros_fastdds.libs.
    libs = [str(p) for p in Path(sys.prefix).glob("lib/python3*/site-packages/ros_fastdds.libs")]
    env["LD_LIBRARY_PATH"] = ":".join([*libs, str(Path(sys.prefix) / "lib"), env.get("LD_LIBRARY_PATH", "")])
    probe = subprocess.run([tool, "discovery", "-v"], capture_output=True, text=True, env=env)
    if probe.returncode != 0 or "Fast DDS version: 3." not in probe.stdout:
        pytest.skip(f"`fastdds discovery` does not run here or is not Fast DDS 3 (profile syntax): "
                    f"{(probe.stdout + probe.stderr).strip()[:200]}")
    return [tool, "discovery"], env


def parse_result(log: Path, *other_logs: Path) -> dict:
    out = log.read_text()
    others = "".join(f"\n--- {p.name}:\n{p.read_text()[-3000:]}" for p in other_logs)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines, f"{log.name} printed no result:\n{out[-3000:]}{others}"
    result = json.loads(lines[-1][len("RESULT "):])
    result["logs"] = f"--- {log.name}:\n{out[-2000:]}{others}"
    return result


def exchange(hosts: TwoHosts, tmp_path: Path, profile: Path, name: str, discover_timeout: float) -> dict:
    """Driver on `robot`, a plain rclpy policy side on `gpu`, both with `profile`; its result."""
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} not installed: run scripts/setup.sh")
    env = dds_env(profile)
    script = tmp_path / "policy_side.py"
    script.write_text(POLICY_SIDE)
    driver_log, policy_log = tmp_path / f"driver_{name}.log", tmp_path / f"policy_{name}.log"
    driver = hosts.popen("robot", [str(DRIVER), "--ros-args", "-p", "backend:=mock"], env, driver_log)
    try:
        policy = hosts.popen("gpu", [sys.executable, str(script), str(discover_timeout), "20"], env, policy_log)
        try:
            policy.wait(timeout=discover_timeout + 60)
        finally:
            stop(policy)
    finally:
        stop(driver)
    return parse_result(policy_log, driver_log)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised tiny ACT checkpoint whose actions are POLICY_TARGET (the same
    arguments as tests/test_policy_node.py's "radians" checkpoint: one run makes it once)."""
    from soarm_act_policy.random_checkpoint import cached_random_checkpoint

    return cached_random_checkpoint(tmp_path_factory.getbasetemp() / "policy_ckpts", "tiny_radians",
                                    action_mean=np.array(POLICY_TARGET), action_std=[1e-4] * 6, state_std=[0.5] * 6)


def test_driver_and_policy_node_on_two_hosts_over_unicast_profile(hosts, tmp_path, tiny_checkpoint):
    # Control: the multicast LAN profile cannot discover across this network.
    control = exchange(hosts, tmp_path, DDS / "lan.xml", "lan", discover_timeout=5.0)
    assert not control["discovered"], "multicast discovery crossed a router: the test proves nothing"

    profile = tmp_path / "unicast.xml"
    made = run(sys.executable, str(DDS / "make_profile.py"), "unicast", "-o", str(profile),
               "--peers", hosts.addr["robot"], hosts.addr["gpu"])
    assert made.returncode == 0, made.stderr
    env = dds_env(profile)
    small = []  # 128x96 cameras: the checkpoint's image size
    for cam in ("front", "wrist"):
        small += ["-p", f"cameras.{cam}.width:=128", "-p", f"cameras.{cam}.height:=96"]
    logs = {k: tmp_path / f"{k}.log" for k in ("driver", "policy", "operator")}
    script = tmp_path / "operator.py"
    script.write_text(OPERATOR)
    procs = []
    try:
        procs.append(hosts.popen("robot", [str(DRIVER), "--ros-args", "--params-file",
                                           str(ROOT / "config" / "driver.yaml"),
                                           "-p", "backend:=mock", *small], env, logs["driver"]))
        procs.append(hosts.popen("gpu", [str(POLICY), "--ros-args", "--params-file",
                                         str(ROOT / "config" / "policy.yaml"),
                                         "-p", f"checkpoint:={tiny_checkpoint}", "-p", "torch_threads:=1"],
                                 env, logs["policy"]))
        operator = hosts.popen("gpu", [sys.executable, str(script), json.dumps(POLICY_TARGET), "120"], env,
                               logs["operator"])
        procs.append(operator)
        operator.wait(timeout=400)
    finally:
        for proc in reversed(procs):
            stop(proc)
    result = parse_result(logs["operator"], logs["policy"], logs["driver"])
    assert result["discovered"], result["logs"]
    assert result["enabled"], f"/policy/enable across hosts failed\n{result['logs']}"
    distance = np.abs(np.array(result["start"][:5]) - POLICY_TARGET[:5]).max()
    assert distance > 0.3, "the arm started at the target: nothing to show"
    assert result["moved"], f"joint_states did not reach the policy's target: {result}\n{result['logs']}"
    print(f"\npolicy node -> driver across hosts (unicast): discovery {result['discovery_s']} s, "
          f"target reached {result['move_s']} s after enable")


# discovery_server.xml is for `fastdds discovery`: test_..._over_discovery_server runs a server with it.
PROFILES = sorted(p.name for p in DDS.glob("*.xml") if p.name != "discovery_server.xml")


@pytest.mark.parametrize("name", PROFILES)
def test_dds_profile_loads_in_fast_dds_without_errors(name, tmp_path):
    """Fast DDS only logs XMLPARSER errors for a bad profile and starts anyway: catch them."""
    profile = DDS / name
    if name == "unicast.xml":  # its example addresses are not this machine's: the allowlist would
        profile = tmp_path / name  # filter out every interface (logged as an Error); use loopback
        made = run(sys.executable, str(DDS / "make_profile.py"), "unicast", "--peers", "127.0.0.1", "-o", str(profile))
        assert made.returncode == 0, made.stderr
    env = {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
    code = "import rclpy; rclpy.init(); n = rclpy.create_node('profile_check'); print('created')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "created" in out.stdout, out.stderr
    assert "Error" not in out.stderr, f"{name}: {out.stderr}"


def test_make_profile_rejects_bad_addresses_and_keeps_the_rest():
    tool = [sys.executable, str(DDS / "make_profile.py")]
    bad = subprocess.run([*tool, "unicast", "--peers", "10.0.0.1", "robot.local"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not an IPv4 address" in bad.stderr
    none = subprocess.run([*tool, "unicast"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "SOARM_DDS_PEERS"})
    assert none.returncode == 2 and "SOARM_DDS_PEERS" in none.stderr
    ok = subprocess.run([*tool, "unicast"], capture_output=True, text=True,
                        env={**os.environ, "SOARM_DDS_PEERS": "10.0.0.1;10.0.0.2"})
    assert ok.returncode == 0
    assert ok.stdout.count("<address>") == 2 and "10.0.0.2" in ok.stdout and "192.168.1.10" not in ok.stdout
    assert ok.stdout.count("<transport_id>soarm_udp</transport_id>") == 2  # descriptor + participant kept
    ds = subprocess.run([*tool, "discovery_client", "--server", "10.0.0.9"], capture_output=True, text=True)
    assert ds.returncode == 0 and "<port>11811</port>" in ds.stdout and "10.0.0.9" in ds.stdout


def test_driver_and_policy_on_two_hosts_over_discovery_server(hosts, tmp_path):
    """No multicast, no peer lists: both sides register with a discovery server on the robot."""
    argv, env = fastdds_discovery_tool()
    server_addr = f"{hosts.addr['robot']}:11811"
    server_xml, client_xml = tmp_path / "ds_server.xml", tmp_path / "ds_client.xml"
    for kind, path in (("discovery_server", server_xml), ("discovery_client", client_xml)):
        made = run(sys.executable, str(DDS / "make_profile.py"), kind, "--server", server_addr, "-o", str(path))
        assert made.returncode == 0, made.stderr
    log = tmp_path / "discovery_server.log"
    server = hosts.popen("robot", [*argv, "-x", str(server_xml)], env, log)
    try:
        result = exchange(hosts, tmp_path, client_xml, "ds", discover_timeout=60.0)
    finally:
        stop(server)
    assert "Server started" in log.read_text(), log.read_text()
    assert result["discovered"], result["logs"]
    assert result["moved"], f"joint_states did not follow joint_trajectory: {result}\n{result['logs']}"
    print(f"\ndiscovery server across namespaces: {result['discovery_s']} s, command followed in {result['move_s']} s")
