"""End to end over DDS: driver (mock backend) + a commanding node + recorder -> one bag per
episode -> bag_to_lerobot -> a LeRobot dataset that loads, with the driver's tasks."""

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_helpers import JOINTS, start_driver, trajectory  # noqa: E402

pytestmark = pytest.mark.dds
ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["/joint_states", "/joint_commands", "/episode_events", "/cameras/front/image_raw",
          "/cameras/wrist/image_raw"]


def target(t: float) -> list[float]:
    """A slow joint-space motion (rad), well inside limits and velocity limits."""
    return [0.3 * np.sin(1.5 * t + j) for j in range(6)]


class Commander:
    """Streams single-point position commands on joint_trajectory at 30 Hz (like teleop)."""

    def __init__(self, ros):
        from trajectory_msgs.msg import JointTrajectory

        self.pub = ros.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
        ros.wait_for(lambda: self.pub.get_subscription_count() > 0, 30, what="driver joint_trajectory sub")
        self.running = threading.Event()
        self.t0 = time.monotonic()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            if self.running.is_set():
                self.pub.publish(trajectory([(0.0, target(time.monotonic() - self.t0))]))
            time.sleep(1 / 30)

    def close(self):
        self._stop = True
        self._thread.join(2)


def test_driver_commands_recorder_to_dataset(start_node, ros_node, tmp_path):
    from soarm_msgs.srv import ResetEpisode
    from std_srvs.srv import Trigger

    from soarm_act_policy.conversion import convert

    out = tmp_path / "recordings"
    start_driver(start_node, ros_node)
    rec = start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
                     params={"output_dir": str(out)})
    n = ros_node.node
    ros_node.wait_for(lambda: all(any(i.node_name == "recorder" for i in n.get_subscriptions_info_by_topic(t))
                                  for t in TOPICS), 60, what="recorder subscribed to the driver's topics")
    cmd = Commander(ros_node)
    try:
        for k, task in enumerate(("pick the red cube", "pick the blue cube")):
            r = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(task=task, seed=3), timeout=60)
            assert r.success, r.message
            # a loaded machine can deliver the STARTED event late (reliable retransmission)
            ros_node.wait_for(lambda: len(list(out.iterdir())) == k + 1, 20, what=f"bag {k} opened")
            cmd.running.set()
            time.sleep(2.5)
            cmd.running.clear()
        assert ros_node.call(Trigger, "/recorder/stop", Trigger.Request()).success
    finally:
        cmd.close()
    # an ended bag closes once in-flight messages stamped before its end are written
    ros_node.wait_for(lambda: not [p for p in out.iterdir() if p.name.startswith(".")], 15,
                      what="the last bag closed")
    assert rec.alive(), rec.log()[-3000:]

    bags = sorted(out.iterdir())
    assert len(bags) == 2 and all(not b.name.startswith(".") for b in bags), (bags, rec.log()[-4000:])
    root = tmp_path / "dataset"
    result = convert(bags, "soarm_test/e2e", root)
    assert [e.task for e in result.episodes] == ["pick the red cube", "pick the blue cube"]
    assert [e.segment.ended_by for e in result.episodes] == ["ENDED", "end of bag"]

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("soarm_test/e2e", root=root)
    assert ds.meta.total_episodes == 2 and ds.meta.robot_type == "so101_follower"
    assert ds.meta.features["observation.state"]["names"] == [f"{j}.pos" for j in JOINTS]
    assert list(ds.meta.features["observation.images.front"]["shape"]) == [48, 64, 3]
    for ep in result.episodes:
        assert ep.frames >= 45, ep.report(30)  # >= 1.5 s of the 2.5 s streamed at 30 fps
        # the arm followed the commands: measured state close to the commanded action,
        # and the commands really moved (not a frozen recording)
        assert np.abs(ep.state - ep.action).max() < 0.15
        assert np.ptp(ep.action, axis=0).max() > 0.3
    item = ds[len(ds) - 1]
    assert item["observation.images.wrist"].shape == (3, 24, 32)
