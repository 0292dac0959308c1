"""Take-over during a `run_policy` goal over DDS: driver (mock) + policy (tiny ACT checkpoint whose
actions sit at fixed targets) + run_policy_server as processes; the test node is the human (a
leader stream on joint_trajectory/human) and flips the source with /driver/select_source."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_helpers import JOINTS, Collector, trajectory
from test_run_policy_action import Client, ckpt, start_graph, wait_policy_ready  # noqa: F401 (ckpt: fixture)

pytestmark = pytest.mark.dds

POLICY_TARGET = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.6])  # the checkpoint's action mean
LEADER_Q = np.array([-0.4, 0.2, 0.6, 0.2, -0.3, 1.0])


def near(msg, q, tol) -> bool:
    if msg is None:
        return False
    by_name = dict(zip(msg.name, msg.position))
    return bool(np.all(np.abs(np.array([by_name[n] for n in JOINTS]) - q) <= tol))


def test_policy_holds_while_the_human_drives_and_the_result_counts_the_intervention(
        start_node, ros_node, ckpt):  # noqa: F811 (the imported fixture)
    from sensor_msgs.msg import JointState
    from soarm_msgs.msg import PolicyStatus
    from soarm_msgs.srv import SelectSource
    from trajectory_msgs.msg import JointTrajectory

    start_graph(start_node, ckpt, success_after=0.0)  # no success: the goal ends at its time limit
    wait_policy_ready(ros_node)
    commands = Collector(ros_node, JointState, "joint_commands")
    policy_msgs = Collector(ros_node, JointTrajectory, "joint_trajectory")
    status = Collector(ros_node, PolicyStatus, "policy_status")
    human = ros_node.node.create_publisher(JointTrajectory, "joint_trajectory/human", 10)
    stop = threading.Event()

    def lead():
        while not stop.is_set():
            human.publish(trajectory([(1 / 30, LEADER_Q)]))
            time.sleep(1 / 30)

    def select(source):
        answer = ros_node.call(SelectSource, "/driver/select_source",
                               SelectSource.Request(source=source, reason=f"test {source}"))
        assert answer.success, answer.message

    c = Client(ros_node)
    RunPolicy = c.RunPolicy
    goal = c.send("run", time_limit=25.0)
    threading.Thread(target=lead, daemon=True).start()
    try:
        ros_node.wait_for(lambda: near(commands.last(), POLICY_TARGET, 0.05), 60, what="the policy's target reached")
        select("human")
        ros_node.wait_for(lambda: near(commands.last(), LEADER_Q, 1e-3), 30, what="the arm at the leader's pose")
        ros_node.wait_for(lambda: status.last().state == PolicyStatus.HOLDING
                          and "human in control" in status.last().hold_reason, 10, what="the policy holding")
        time.sleep(0.5)
        policy_msgs.clear()
        time.sleep(1.5)
        assert len(policy_msgs) == 0  # the policy publishes nothing while the human drives
        assert near(commands.last(), LEADER_Q, 1e-3)
        assert any(f.human_in_control and f.interventions == 1 for _, f in c.feedback["run"])
        select("policy")
        ros_node.wait_for(lambda: status.last().state == PolicyStatus.RUNNING, 20, what="the policy running again")
        ros_node.wait_for(lambda: near(commands.last(), POLICY_TARGET, 0.05), 30,
                          what="the arm back at the policy's target")
    finally:
        stop.set()
    _, wrapped = c.result(goal, 60)
    r = wrapped.result
    assert r.outcome == RunPolicy.Result.TIMEOUT, r.message
    assert r.interventions == 1 and 2.0 < r.human_time < r.duration, (r.human_time, r.duration)
    print(f"\n[take-over] run_policy result: {r.interventions} intervention, {r.human_time:.2f} s of "
          f"{r.duration:.2f} s under human control")
