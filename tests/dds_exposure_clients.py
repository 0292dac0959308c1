"""The two DDS clients of tests/test_dds_exposure.py (not a test module), each run as its own
process inside a network namespace; each prints one `RESULT {json}` line at the end.

    dds_exposure_clients.py observer STOP_FILE TIMEOUT   # the legitimate peer
    dds_exposure_clients.py intruder SECONDS              # the attacker on the same link

observer: waits (up to TIMEOUT s) for the driver's joint_states and ~/status, prints `READY`,
watches until STOP_FILE exists, waits for a fresh status, then sends one joint trajectory (the
measured pose) and calls /driver/enable true itself: its own commands must reach the driver.
intruder: for SECONDS s publishes joint_trajectory (a pose far from the arm's) at 20 Hz and
calls /driver/enable false every 0.25 s, counting what it sees and what answers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import rclpy
from builtin_interfaces.msg import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from soarm_msgs.msg import DriverStatus
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
STATES = {getattr(DriverStatus, n): n for n in ("CONNECTING", "ENABLED", "DISABLED", "ERROR")}


def status_dict(msg: DriverStatus | None) -> dict | None:
    if msg is None:
        return None
    return {"state": STATES.get(msg.state, str(msg.state)), "accepted": msg.accepted, "rejected": msg.rejected,
            "clamped": msg.clamped, "watchdog_trips": msg.watchdog_trips, "detail": msg.detail}


def spin_for(node, seconds: float):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def point_trajectory(positions: list[float]) -> JointTrajectory:
    msg = JointTrajectory()
    msg.joint_names = list(JOINTS)
    msg.points = [JointTrajectoryPoint(positions=[float(p) for p in positions],
                                       time_from_start=Duration(sec=0, nanosec=500_000_000))]
    return msg


def observer(stop_file: Path, timeout: float) -> dict:
    node = rclpy.create_node("exposure_observer")
    joints: dict = {}
    seen = {"joint_states": 0}
    statuses: list = []

    def on_joints(msg):
        seen["joint_states"] += 1
        joints.update(zip(msg.name, msg.position))

    node.create_subscription(JointState, "/joint_states", on_joints, qos_profile_sensor_data)
    node.create_subscription(DriverStatus, "/driver/status", statuses.append, STATUS_QOS)
    result = {"discovered": False}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and (len(joints) < 6 or not statuses):
        rclpy.spin_once(node, timeout_sec=0.1)
    if len(joints) < 6 or not statuses:
        return result
    result.update(discovered=True, discovery_s=round(time.monotonic() - t0, 2))
    result["before"] = {"status": status_dict(statuses[-1]), "joints": [joints[n] for n in JOINTS]}
    print("READY", flush=True)
    while not stop_file.exists():
        rclpy.spin_once(node, timeout_sec=0.1)
    n_status = len(statuses)
    while len(statuses) < n_status + 2:  # two fresh ones: the periodic status (status_period) is 1 s
        rclpy.spin_once(node, timeout_sec=0.1)
    result["after"] = {"status": status_dict(statuses[-1]), "joints": [joints[n] for n in JOINTS],
                       "joint_states_seen": seen["joint_states"]}
    # Positive control: this peer's own command and service call reach the driver.
    pub = node.create_publisher(JointTrajectory, "/joint_trajectory", 10)
    client = node.create_client(SetBool, "/driver/enable")
    result["enable_service_found"] = client.wait_for_service(timeout_sec=10.0)
    spin_for(node, 0.5)  # let the response reader match (a first response can be lost)
    future = client.call_async(SetBool.Request(data=True))
    rclpy.spin_until_future_complete(node, future, timeout_sec=10.0)
    result["enable_answered"] = bool(future.done() and future.result() is not None)
    pub.publish(point_trajectory([joints[n] for n in JOINTS]))
    n_status = len(statuses)
    while len(statuses) < n_status + 2:
        rclpy.spin_once(node, timeout_sec=0.1)
    result["final"] = {"status": status_dict(statuses[-1])}
    node.destroy_node()
    return result


def intruder(seconds: float) -> dict:
    node = rclpy.create_node("exposure_intruder")
    counts = {"published": 0, "enable_calls": 0, "enable_answers": 0, "joint_states_seen": 0, "status_seen": 0}
    node.create_subscription(JointState, "/joint_states",
                             lambda _m: counts.__setitem__("joint_states_seen", counts["joint_states_seen"] + 1),
                             qos_profile_sensor_data)
    node.create_subscription(DriverStatus, "/driver/status",
                             lambda _m: counts.__setitem__("status_seen", counts["status_seen"] + 1), STATUS_QOS)
    pub = node.create_publisher(JointTrajectory, "/joint_trajectory", 10)
    client = node.create_client(SetBool, "/driver/enable")
    futures = []
    pose = [0.5, -0.5, 0.5, -0.5, 0.5, 0.5]
    t0 = last_call = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pub.publish(point_trajectory(pose))
        counts["published"] += 1
        if time.monotonic() - last_call >= 0.25:
            futures.append(client.call_async(SetBool.Request(data=False)))
            counts["enable_calls"] += 1
            last_call = time.monotonic()
        spin_for(node, 0.05)
    spin_for(node, 1.0)
    counts["enable_answers"] = sum(1 for f in futures if f.done() and f.result() is not None)
    counts["nodes_seen"] = sorted(n for n in node.get_node_names() if n != "exposure_intruder")
    node.destroy_node()
    return counts


def main(argv: list[str]) -> int:
    rclpy.init()
    try:
        if argv[0] == "observer":
            result = observer(Path(argv[1]), float(argv[2]))
        elif argv[0] == "intruder":
            result = intruder(float(argv[1]))
        else:
            raise SystemExit(f"unknown role {argv[0]!r}: observer or intruder")
    finally:
        rclpy.try_shutdown()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
