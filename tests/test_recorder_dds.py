"""The recorder node over real DDS: live topics from a test node -> one MCAP bag per episode
-> bag_to_lerobot -> a LeRobot dataset with the published values."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
TOPICS = ["/joint_states", "/joint_commands", "/episode_events", "/cameras/front/image_raw",
          "/cameras/front/camera_info", "/cameras/wrist/image_raw", "/cameras/wrist/camera_info"]


def state_value(t_s: float) -> list[float]:
    """Joint positions linear in the stamp: linear interpolation on the grid is exact."""
    return [0.1 * j + 0.25 * (t_s % 1000.0) for j in range(6)]


class Streams:
    """Publishes the driver's topics at 30 Hz from the test node."""

    def __init__(self, ros):
        from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from soarm_msgs.msg import EpisodeEvent

        n = ros.node
        self.node = n
        self.js = n.create_publisher(JointState, "joint_states", 10)
        self.cmd = n.create_publisher(JointState, "joint_commands", 10)
        self.img = {c: n.create_publisher(Image, f"cameras/{c}/image_raw", qos_profile_sensor_data)
                    for c in ("front", "wrist")}
        self.info = {c: n.create_publisher(CameraInfo, f"cameras/{c}/camera_info", qos_profile_sensor_data)
                     for c in ("front", "wrist")}
        self.events = n.create_publisher(
            EpisodeEvent, "episode_events", QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.types = (JointState, Image, CameraInfo, EpisodeEvent)
        self.frame = 0
        self.timer = n.create_timer(1 / 30, self.tick)

    def tick(self):
        JointState, Image, CameraInfo, _ = self.types
        now = self.node.get_clock().now()
        stamp = now.to_msg()
        t = now.nanoseconds * 1e-9
        js = JointState(name=JOINTS, position=state_value(t))
        js.header.stamp = stamp
        self.js.publish(js)
        cmd = JointState(name=list(reversed(JOINTS)), position=list(reversed([v + 0.5 for v in state_value(t)])))
        cmd.header.stamp = stamp
        self.cmd.publish(cmd)
        for c, pub in self.img.items():
            im = Image(height=24, width=32, encoding="rgb8", step=96)
            im.header.stamp = stamp
            im.header.frame_id = f"{c}_camera_optical_frame"
            im.data = bytes([(self.frame * 7) % 256]) * (24 * 96)
            pub.publish(im)
            info = CameraInfo(height=24, width=32)
            info.header = im.header
            self.info[c].publish(info)
        self.frame += 1

    def event(self, kind, index, task=""):
        ev = self.types[3](kind=kind, episode_index=index, task=task)
        ev.header.stamp = self.node.get_clock().now().to_msg()
        self.events.publish(ev)


def test_recorder_writes_one_bag_per_episode_and_they_convert(start_node, ros_node, tmp_path):
    from soarm_msgs.msg import EpisodeEvent as E
    from std_srvs.srv import Trigger

    from soarm_act_policy.bags import open_bag
    from soarm_act_policy.conversion import convert

    out = tmp_path / "recordings"
    rec = start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
                     params={"output_dir": str(out), "task": "manual task"})
    streams = Streams(ros_node)
    n = ros_node.node

    def subscribed():
        return all(any(i.node_name == "recorder" for i in n.get_subscriptions_info_by_topic(t))
                   for t in TOPICS)

    ros_node.wait_for(subscribed, 60, what="recorder subscriptions on every topic")
    assert rec.alive(), rec.log()
    time.sleep(0.5)
    streams.event(E.STARTED, 7, "pick the cube")
    time.sleep(1.5)
    streams.event(E.SUCCESS, 7)
    streams.event(E.ENDED, 7)
    streams.event(E.RESET, 8)
    time.sleep(0.3)
    streams.event(E.STARTED, 8, "lift the cube")
    time.sleep(1.2)
    streams.event(E.STARTED, 9, "push the cube")  # a new episode closes the running one
    time.sleep(1.2)
    # a loaded machine can deliver events late (reliable retransmission): wait for the bag
    ros_node.wait_for(lambda: len(list(out.iterdir())) == 3, 20, what="third bag opened")
    r = ros_node.call(Trigger, "/recorder/stop", Trigger.Request())
    assert r.success and "episode_000002_" in r.message
    assert not ros_node.call(Trigger, "/recorder/stop", Trigger.Request()).success
    r = ros_node.call(Trigger, "/recorder/start", Trigger.Request())
    assert r.success and "episode_000003_" in r.message
    assert not ros_node.call(Trigger, "/recorder/start", Trigger.Request()).success
    time.sleep(1.0)
    assert rec.stop() == 0  # SIGINT: the running bag is closed, not lost
    streams.timer.cancel()

    bags = sorted(p for p in out.iterdir())
    assert [p.name[:14] for p in bags] == [f"episode_00000{i}" for i in range(4)], bags
    events, cmd_stamps = [], []
    for bag in bags:
        with open_bag(bag) as b:
            assert set(b.topics) == set(TOPICS)
            counts = b.message_counts()
            assert counts["/cameras/front/image_raw"] > 10 and counts["/cameras/wrist/camera_info"] > 10
            events.append([(m.msg.kind, m.msg.episode_index) for m in b.messages(["episode_events"])])
            custom = b.custom_data
            cmd_stamps.append(np.array([m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
                                        for m in b.messages(["joint_commands"])]))
            # raw CDR written unchanged: an image round-trips with its stamp and frame id
            img = next(iter(b.messages(["cameras/wrist/image_raw"]))).msg
            assert img.header.frame_id == "wrist_camera_optical_frame" and img.width == 32
    assert events == [[(E.STARTED, 7), (E.SUCCESS, 7), (E.ENDED, 7)], [(E.STARTED, 8)], [(E.STARTED, 9)], []]
    assert custom["soarm.task"] == "manual task" and custom["soarm.started_by"] == "service"
    assert custom["soarm.ended_by"] == "shutdown"

    result = convert(bags, "soarm_test/recorded", tmp_path / "ds")
    tasks = [e.task for e in result.episodes]
    assert tasks == ["pick the cube", "lift the cube", "push the cube", "manual task"]
    assert [e.segment.outcome for e in result.episodes] == ["success", None, None, None]
    for ep, cmd in zip(result.episodes, cmd_stamps):
        assert ep.status == "written" and ep.frames >= 20, ep.report(30)
        want = np.array([state_value(t * 1e-9) for t in ep.grid])
        np.testing.assert_allclose(ep.state, want, atol=1e-4)  # float32 of values ~ 1e2
        # action: the newest command not newer than the grid time, reordered by joint name
        held = [cmd[cmd <= t].max() for t in ep.grid]
        want = np.array([[v + 0.5 for v in state_value(t * 1e-9)] for t in held])
        np.testing.assert_allclose(ep.action, want, atol=1e-4)


def test_recorder_bad_configuration_exits_with_a_clear_error(start_node, ros_node, tmp_path):
    rec = start_node("soarm_act_policy", "recorder", params={"topics_file": str(tmp_path / "missing.yaml"),
                                                            "output_dir": str(tmp_path / "out")})
    ros_node.wait_for(lambda: not rec.alive(), 60, what="recorder exit")
    assert rec.proc.returncode == 2  # refused configuration
    assert "recorder: error:" in rec.log() and "missing.yaml" in rec.log()


def test_killed_recorder_bag_is_recovered_at_restart(start_node, ros_node, tmp_path):
    """SIGKILL 5 s into an episode, restart: the bag holds everything but the last ~chunk_period."""
    from soarm_msgs.msg import EpisodeEvent as E

    from soarm_act_policy.bags import open_bag
    from soarm_act_policy.conversion import convert
    from soarm_act_policy.conversion.options import Options

    out = tmp_path / "recordings"
    params = {"output_dir": str(out)}
    rec = start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml", params=params)
    streams = Streams(ros_node)
    n = ros_node.node
    ros_node.wait_for(lambda: all(any(i.node_name == "recorder" for i in n.get_subscriptions_info_by_topic(t))
                                  for t in TOPICS), 60, what="recorder subscriptions on every topic")
    time.sleep(0.5)
    t_start = n.get_clock().now().nanoseconds
    streams.event(E.STARTED, 3, "pick the cube")
    ros_node.wait_for(lambda: list(out.glob(".episode_000000_*.partial")), 20, what="bag opened")
    time.sleep(5.0)
    t_kill = n.get_clock().now().nanoseconds
    os.killpg(rec.proc.pid, signal.SIGKILL)
    rec.proc.wait(timeout=10)
    streams.timer.cancel()
    (partial,) = out.glob(".episode_000000_*.partial")
    assert not (out / partial.name[1:-len(".partial")]).exists()

    rec2 = start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
                      params=params)
    final = out / partial.name[1:-len(".partial")]
    ros_node.wait_for(lambda: "recovered" in rec2.log(), 60, what="recovery logged")
    assert rec2.alive() and final.exists(), rec2.log()
    with open_bag(final) as b:
        assert set(b.topics) == set(TOPICS)
        events = [(m.msg.kind, m.msg.episode_index) for m in b.messages(["episode_events"])]
        stamps = sorted(m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
                        for m in b.messages(["joint_states"]))
        assert b.custom_data["soarm.task"] == "pick the cube" and b.custom_data["soarm.ended_by"] == "recovered"
    assert events == [(E.STARTED, 3)]
    lag = (t_kill - stamps[-1]) * 1e-9
    gaps = max(b - a for a, b in zip(stamps, stamps[1:])) * 1e-9
    print(f"recovered {len(stamps)} joint_states over {(stamps[-1] - stamps[0]) * 1e-9:.2f} s; newest "
          f"{lag:.2f} s before the kill; first {(stamps[0] - t_start) * 1e-9:.2f} s after STARTED; "
          f"largest gap {gaps:.3f} s")
    # chunks reach the disk every second (rosbags alone: every 1 MiB, ~7 s of these topics)
    assert lag < 3.0 and stamps[0] - t_start < 0.5e9 and gaps < 0.5
    result = convert([out], "soarm_test/recovered", tmp_path / "ds", Options(), dry_run=True, log=print)
    (ep,) = result.episodes
    assert ep.status == "planned" and ep.frames >= 60 and ep.task == "pick the cube", ep.report(30)
