"""Helpers for the driver DDS tests (not a test module)."""

from __future__ import annotations

import threading

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
#: Tests start the arm at all zeros (config/driver.yaml's home is a folded pose).
ZERO_HOME = {"home_pose": [0.0] * 6}
SMALL_CAMERAS = {
    "cameras.front.width": 64,
    "cameras.front.height": 48,
    "cameras.wrist.width": 32,
    "cameras.wrist.height": 24,
}


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Collector:
    """Keeps every message of a topic (thread-safe)."""

    def __init__(self, ros, msg_type, topic, qos=10):
        self.msgs = []
        self._lock = threading.Lock()
        ros.node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg):
        with self._lock:
            self.msgs.append(msg)

    def snapshot(self):
        with self._lock:
            return list(self.msgs)

    def last(self):
        with self._lock:
            return self.msgs[-1] if self.msgs else None

    def clear(self):
        with self._lock:
            self.msgs.clear()

    def __len__(self):
        with self._lock:
            return len(self.msgs)


def trajectory(points, names=JOINTS, stamp: float | None = None, velocities=None):
    """points: [(time_from_start s, [6 positions])]; stamp: absolute seconds or None (receipt)."""
    from builtin_interfaces.msg import Duration, Time
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory()
    msg.joint_names = list(names)
    if stamp is not None:
        msg.header.stamp = Time(sec=int(stamp), nanosec=int((stamp - int(stamp)) * 1e9))
    for i, (t, q) in enumerate(points):
        pt = JointTrajectoryPoint()
        pt.positions = [float(x) for x in q]
        if velocities is not None:
            pt.velocities = [float(x) for x in velocities[i]]
        pt.time_from_start = Duration(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))
        msg.points.append(pt)
    return msg


def start_driver(start_node, ros, params=None, timeout=60.0, backend="mock"):
    """Start the driver with config/driver.yaml + overrides; wait for its joint_states."""
    from pathlib import Path

    from sensor_msgs.msg import JointState

    cfg = Path(__file__).resolve().parent.parent / "config" / "driver.yaml"
    proc = start_node(
        "soarm_driver", "driver", params_file=cfg, params={"backend": backend, **ZERO_HOME, **SMALL_CAMERAS,
                                                           **(params or {})}
    )
    states = Collector(ros, JointState, "joint_states")
    commands = Collector(ros, JointState, "joint_commands")
    try:
        ros.wait_for(lambda: len(states) > 2 or not proc.alive(), timeout, what="driver joint_states")
    except AssertionError:
        raise AssertionError("driver published no joint_states; log:\n" + proc.log()[-3000:]) from None
    assert proc.alive(), "driver exited:\n" + proc.log()[-3000:]
    return proc, states, commands


class Status:
    """The driver's ~/status (soarm_msgs/DriverStatus, reliable, transient local)."""

    def __init__(self, ros, topic="/driver/status"):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from soarm_msgs.msg import DriverStatus

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._c = Collector(ros, DriverStatus, topic, qos)
        self._names = {getattr(DriverStatus, n): n for n in ("CONNECTING", "ENABLED", "DISABLED", "ERROR")}

    def last(self):
        """The newest DriverStatus, None before the first."""
        return self._c.last()

    def state(self) -> str | None:
        """Name of the newest state ("ENABLED", ...), None before the first status."""
        m = self._c.last()
        return None if m is None else self._names[m.state]

    def get(self, name: str, default=None):
        """A field of the newest status, `default` before the first."""
        m = self._c.last()
        return default if m is None else getattr(m, name)


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class SceneAfterReset:
    """The cube pose of the scene an episode started with.

    A `scene/objects` message of the previous scene may still be in flight when the
    reset_episode response arrives, so only markers stamped at or after the episode's
    STARTED event (same driver clock) count; the first of them is the new scene as placed.
    """

    def __init__(self, ros):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from soarm_msgs.msg import EpisodeEvent
        from visualization_msgs.msg import MarkerArray

        self.ros = ros
        self.started_kind = EpisodeEvent.STARTED
        latched = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.events = Collector(ros, EpisodeEvent, "episode_events", latched)
        self.objects = Collector(ros, MarkerArray, "scene/objects")

    def started_stamp(self, episode: int, timeout: float = 10.0) -> int:
        def stamps():
            return [stamp_ns(e.header) for e in self.events.snapshot()
                    if e.kind == self.started_kind and e.episode_index == episode]

        self.ros.wait_for(lambda: stamps(), timeout, what=f"episode {episode} STARTED")
        return max(stamps())

    def cube(self, episode: int | None = None, timeout: float = 20.0):
        """Cube centre (x, y, z) in the world frame; of `episode`'s scene if given, else the newest."""
        import numpy as np

        since = self.started_stamp(episode) if episode is not None else 0

        def fresh():
            return [a for a in self.objects.snapshot() if a.markers and stamp_ns(a.markers[0].header) >= since]

        self.ros.wait_for(lambda: fresh(), timeout, what="scene/objects of the new scene")
        m = [m for m in fresh()[0 if episode is not None else -1].markers if m.ns == "cube"][0]
        assert m.header.frame_id == "world"
        return np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])
