"""End to end over DDS: driver (MuJoCo sim) + teleop (scripted expert session) + recorder ->
one bag per episode -> bag_to_lerobot -> a LeRobot dataset that loads."""

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.dds
ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["/joint_states", "/joint_commands", "/episode_events", "/cameras/front/image_raw",
          "/cameras/wrist/image_raw"]


@pytest.mark.slow
def test_sim_driver_teleop_recorder_to_dataset(start_node, ros_node, tmp_path):
    """The demo pipeline: MuJoCo driver + scripted teleop session + recorder on sim time."""
    from std_srvs.srv import Trigger

    from soarm_act_policy.conversion import convert

    out = tmp_path / "recordings"
    start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml", params={
        "backend": "sim", "cameras.front.width": 128, "cameras.front.height": 96,
        "cameras.wrist.width": 128, "cameras.wrist.height": 96,
        "home_pose": "[0.0, 0.0, 0.0, 0.0, 0.0, 0.3]"})
    rec = start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
                     params={"output_dir": str(out), "use_sim_time": True})
    n = ros_node.node
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from soarm_msgs.msg import EpisodeEvent

    started = []
    n.create_subscription(EpisodeEvent, "episode_events",
                          lambda e: started.append(e.task) if e.kind == EpisodeEvent.STARTED else None,
                          QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ros_node.wait_for(lambda: all(any(i.node_name == "recorder" for i in n.get_subscriptions_info_by_topic(t))
                                  for t in TOPICS), 90, what="recorder subscribed to the sim driver's topics")
    teleop = start_node("soarm_driver", "teleop", params_file=ROOT / "config" / "teleop.yaml",
                        params={"use_sim_time": True, "episodes": 2, "seed": 40})
    ros_node.wait_for(lambda: not teleop.alive(), 180, interval=0.5, what="teleop session end")
    # Every episode succeeds (a stalled teleop delays the expert's plan, sim/episode_runner.py).
    assert teleop.proc.returncode == 0 and "session done: 2/2" in teleop.log(), teleop.log()[-3000:]
    ros_node.wait_for(lambda: len(list(out.iterdir())) == 2, 20, what="second bag opened")
    assert ros_node.call(Trigger, "/recorder/stop", Trigger.Request()).success
    ros_node.wait_for(lambda: not [p for p in out.iterdir() if p.name.startswith(".")], 15,
                      what="the last bag closed")
    assert rec.alive()

    result = convert(sorted(out.iterdir()), "soarm_test/sim_demo", tmp_path / "dataset")
    assert len(started) == 2 and started[0]  # the driver's task text, as announced in STARTED
    assert [e.task for e in result.episodes] == started
    outcomes = [e.segment.outcome for e in result.episodes]
    assert outcomes == ["success", "success"], outcomes
    for ep in result.episodes:
        r = ep.report(30)
        assert r["problems"] == [] and r["frames"] > 120, r  # ~6 s of demonstration each
        assert r["streams"]["/cameras/front/image_raw"]["width"] == 128
        if ep.segment.outcome == "success":
            assert ep.action[:, 5].min() < 0.0 < ep.action[:, 5].max()  # jaws opened, then closed on the cube
        assert np.abs(ep.state[:, :5] - ep.action[:, :5]).mean() < 0.1  # the arm followed its commands

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("soarm_test/sim_demo", root=tmp_path / "dataset")
    assert ds.meta.total_episodes == 2 and ds.meta.robot_type == "so101_follower"
    item = ds[len(ds) - 1]
    assert item["observation.images.wrist"].shape == (3, 96, 128) and item["action"].shape == (6,)
