"""Driver (sim backend) + teleop (scripted expert) as real processes over DDS."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_helpers import JOINTS, Collector

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
TASK = "Put the cube in the target zone"
# Demo-sized cameras (home pose with open jaws, as the demo should use).
DRIVER_PARAMS = {
    "backend": "sim",
    "cameras.front.width": 128,
    "cameras.front.height": 96,
    "cameras.wrist.width": 128,
    "cameras.wrist.height": 96,
    "home_pose": "[0.0, 0.0, 0.0, 0.0, 0.0, 0.3]",
}


def events_qos():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start_driver(start_node):
    return start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml", params=DRIVER_PARAMS)


def successes(events):
    from soarm_msgs.msg import EpisodeEvent

    return {e.episode_index for e in events.snapshot() if e.kind == EpisodeEvent.SUCCESS}


def test_teleop_session_drives_episodes_to_success(start_node, ros_node):
    from soarm_msgs.msg import EpisodeEvent
    from trajectory_msgs.msg import JointTrajectory

    events = Collector(ros_node, EpisodeEvent, "episode_events", events_qos())
    commands = Collector(ros_node, JointTrajectory, "joint_trajectory", 50)
    driver = start_driver(start_node)
    teleop = start_node(
        "soarm_driver", "teleop", params_file=ROOT / "config" / "teleop.yaml",
        params={"use_sim_time": True, "episodes": 2, "seed": 40, "task": TASK},
    )
    deadline = time.monotonic() + 180
    while teleop.alive() and time.monotonic() < deadline:
        assert driver.alive(), "driver died"
        time.sleep(0.2)
    assert not teleop.alive(), "teleop session did not finish"
    assert teleop.proc.returncode == 0, teleop.log()[-3000:]
    # Every episode succeeds: a starved teleop no longer makes the expert's plan jump ahead
    # (sim/episode_runner.py, max_plan_step), what made it fail some episodes over DDS under load.
    assert "session done: 2/2 episodes succeeded" in teleop.log(), teleop.log()[-3000:]
    started = [e for e in events.snapshot() if e.kind == EpisodeEvent.STARTED]
    assert len(started) == 2 and all(e.task == TASK for e in started)
    indices = {e.episode_index for e in started}
    ros_node.wait_for(lambda: successes(events) == indices, 10, what="the SUCCESS events of both episodes")
    msgs = commands.snapshot()
    assert len(msgs) > 200  # ~30 Hz for ~2 x 10 s
    assert all(list(m.joint_names) == JOINTS and len(m.points) == 1 and len(m.points[0].positions) == 6 for m in msgs)


def test_teleop_follows_episodes_started_by_others(start_node, ros_node):
    from soarm_msgs.msg import EpisodeEvent
    from soarm_msgs.srv import ResetEpisode

    events = Collector(ros_node, EpisodeEvent, "episode_events", events_qos())
    driver = start_driver(start_node)
    teleop = start_node("soarm_driver", "teleop", params_file=ROOT / "config" / "teleop.yaml",
                        params={"use_sim_time": True})
    resp = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=40, randomize=True), timeout=90)
    assert resp.success, resp.message
    # teleop ends the episode itself (SUCCESS, or its episode_timeout on the sim clock): wait for
    # that rather than for a wall-clock time, which a slow sim on a loaded machine can overrun
    ros_node.wait_for(lambda: resp.episode_index in successes(events) or "no SUCCESS" in teleop.log(), 180,
                      interval=0.5, what="the end of the episode we started (teleop's SUCCESS or timeout)")
    # (CI 2026-12-01 17:20: once, the expert planned at once and had no SUCCESS after 20 s of sim
    # time; the driver's side is printed too, to find out why if it happens again)
    assert resp.episode_index in successes(events), (
        f"teleop:\n{teleop.log()[-3000:]}\ndriver:\n{driver.log()[-3000:]}\n"
        f"events: {[(e.kind, e.episode_index, e.detail) for e in events.snapshot()]}")
    assert teleop.alive()
    started = [e for e in events.snapshot() if e.kind == EpisodeEvent.STARTED]
    assert started[-1].task == TASK  # the sim backend's task text is the driver's default


class SlowEndRunner:
    """Stands in for teleop's EpisodeRunner: records the episode calls in the order they happen; an
    end takes 0.3 s, so a STARTED handled alongside it would be recorded first."""

    def __init__(self):
        self.calls = []

    def on_end(self, index, result="ended"):
        time.sleep(0.3)
        self.calls.append(("end", index))

    def on_started(self, index, stamp):
        self.calls.append(("started", index))

    def on_success(self, index, now, detail=""):
        self.calls.append(("success", index))

    def on_joints(self, q):
        pass

    def on_object(self, name, stamp, pos, quat):
        pass

    def tick(self, now):
        return None


def test_teleop_handles_episode_events_in_order(ros_node):
    """RESET then STARTED of one episode, delivered together (a reset right after teleop starts: both
    come as transient-local history; or a busy teleop): teleop must handle them in that order. It
    used a reentrant callback group, so its executor ran the STARTED callback beside a RESET one
    still running, and a RESET handled after STARTED ended the episode it had just started (teleop
    then sat idle)."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from soarm_msgs.msg import EpisodeEvent

    from soarm_driver.teleop_node import TeleopNode

    pub = ros_node.node.create_publisher(EpisodeEvent, "episode_events", events_qos())
    for kind in (EpisodeEvent.RESET, EpisodeEvent.STARTED):  # history for a late joiner
        pub.publish(EpisodeEvent(kind=kind, episode_index=0, task=TASK))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = TeleopNode(context=context)
        runner = node.episode_runner = SlowEndRunner()
        executor = MultiThreadedExecutor(num_threads=3, context=context)  # as teleop's main()
        executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        try:
            ros_node.wait_for(lambda: len(runner.calls) >= 2, 30, what="teleop handling both events")
            time.sleep(0.5)  # anything handled late would show up
        finally:
            executor.shutdown(timeout_sec=2)
            spin.join(timeout=5)
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert runner.calls == [("end", 0), ("started", 0)]
