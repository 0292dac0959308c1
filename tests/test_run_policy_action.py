"""The `run_policy` action (`run_policy_server`) over DDS: driver (mock backend) + policy (tiny
random ACT checkpoint) + the server as processes; the test node is the action client.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from soarm_act_policy.random_checkpoint import cached_random_checkpoint

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
H, W = 96, 128
START_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    # the model's output is pinned near the action mean: the arm moves to fixed targets
    return cached_random_checkpoint(tmp_path_factory.getbasetemp() / "policy_ckpts", "tiny_run_policy",
                                    action_mean=[0.1, -0.2, 0.3, -0.4, 0.5, 0.6], action_std=[1e-4] * 6,
                                    state_std=[0.5] * 6)


class Client:
    """An ActionClient for RunPolicy on the test node, collecting feedback per goal."""

    def __init__(self, ros_node):
        from rclpy.action import ActionClient
        from soarm_msgs.action import RunPolicy

        self.ros, self.RunPolicy = ros_node, RunPolicy
        self.client = ActionClient(ros_node.node, RunPolicy, "run_policy")
        self.feedback: dict[str, list] = {}

    def send(self, name: str, **goal):
        assert self.client.wait_for_server(timeout_sec=START_TIMEOUT), "run_policy action server not available"
        self.feedback[name] = []
        future = self.client.send_goal_async(
            self.RunPolicy.Goal(**goal), feedback_callback=lambda m: self.feedback[name].append((time.monotonic(),
                                                                                                  m.feedback)))
        self.ros.wait_for(future.done, 30, what=f"goal {name} response")
        handle = future.result()
        assert handle.accepted  # refusals come as results with a reason
        return handle

    def result(self, handle, timeout: float):
        future = handle.get_result_async()
        self.ros.wait_for(future.done, timeout, what="goal result")
        return time.monotonic(), future.result()


def start_graph(start_node, ckpt, success_after: float):
    start_node("soarm_driver", "driver", params_file=ROOT / "config" / "driver.yaml", params={
        "backend": "mock", "mock.success_after": success_after, "cameras.front.width": W,
        "cameras.front.height": H, "cameras.wrist.width": W, "cameras.wrist.height": H})
    start_node("soarm_act_policy", "policy", params_file=ROOT / "config" / "policy.yaml",
               params={"checkpoint": str(ckpt), "torch_threads": 1, "mode": "chunk", "image_size": [W, H]})
    return start_node("soarm_act_policy", "run_policy_server")


def wait_policy_ready(ros_node):
    """The policy node reports HOLDING (disabled) with the driver's data: it can be enabled."""
    from soarm_msgs.msg import PolicyStatus

    seen = []
    ros_node.node.create_subscription(PolicyStatus, "policy_status", seen.append, 10)
    ros_node.wait_for(lambda: seen and seen[-1].state == PolicyStatus.HOLDING and "disabled" in seen[-1].hold_reason,
                      START_TIMEOUT, what="policy holding, ready to run")


def test_goal_runs_to_success_with_feedback_and_a_second_goal_is_rejected(start_node, ros_node, ckpt, tmp_path):
    server = start_graph(start_node, ckpt, success_after=6.0)
    wait_policy_ready(ros_node)
    c = Client(ros_node)
    RunPolicy = c.RunPolicy
    first = c.send("first", task="Put the cube in the target zone", time_limit=60.0, seed=5)
    ros_node.wait_for(lambda: any(f.state == RunPolicy.Feedback.RUNNING and f.control_steps > 0
                                  for _, f in c.feedback["first"]), 60, what="feedback: running with steps")

    second = c.send("second", time_limit=5.0)
    _, wrapped = c.result(second, 30)
    r = wrapped.result
    assert r.outcome == RunPolicy.Result.REJECTED and r.message.startswith("busy: goal "), r.message
    assert "cancel it" in r.message and r.episode_index == -1
    assert wrapped.status == 6  # action_msgs/GoalStatus STATUS_ABORTED

    _, wrapped = c.result(first, 60)
    r = wrapped.result
    assert wrapped.status == 4, r.message  # STATUS_SUCCEEDED
    assert r.outcome == RunPolicy.Result.SUCCESS and r.episode_index >= 0 and r.seed == 5
    assert r.task == "Put the cube in the target zone" and r.stages == -1  # the mock cannot tell stages
    assert r.control_steps > 0 and 0.0 < r.time_to_success <= r.duration < 60.0
    assert r.interventions == 0 and r.skipped_steps == (r.skipped_stale + r.skipped_missing + r.skipped_no_action
                                                       + r.skipped_late)
    fb = [f for _, f in c.feedback["first"]]
    running = [f for f in fb if f.state == RunPolicy.Feedback.RUNNING]
    assert len(running) >= 3 and all(f.episode_index == r.episode_index for f in running)
    elapsed = [f.elapsed for f in running]
    assert elapsed == sorted(elapsed) and elapsed[-1] > elapsed[0] and all(f.time_limit == 60.0 for f in fb)
    steps = [f.control_steps for f in running]
    assert steps == sorted(steps) and steps[-1] <= r.control_steps
    print(f"success after {r.time_to_success:.2f} s, {r.control_steps} steps, {len(fb)} feedback messages")

    # the server is free again at once; record true needs a running auto-recording recorder
    _, wrapped = c.result(c.send("record", time_limit=0.5, record=True), 60)
    r = wrapped.result
    assert r.outcome == RunPolicy.Result.REJECTED and "no recorder runs" in r.message, r.message
    bags = tmp_path / "bags"
    start_node("soarm_act_policy", "recorder", params_file=ROOT / "config" / "recorder.yaml",
               params={"output_dir": str(bags)})
    from rcl_interfaces.srv import GetParameters

    ros_node.client(GetParameters, "/recorder/get_parameters", timeout=60)  # the recorder is up
    _, wrapped = c.result(c.send("recorded", time_limit=0.5, record=True), 90)
    r = wrapped.result
    assert r.outcome == RunPolicy.Result.TIMEOUT, r.message
    # its bag is closed at the next reset (ENDED)
    _, wrapped = c.result(c.send("next", time_limit=0.5), 60)

    def recorded_indices():
        import yaml

        return {yaml.safe_load(m.read_text())["rosbag2_bagfile_information"]["custom_data"]["soarm.episode_index"]
                for m in bags.glob("episode_*/metadata.yaml")}

    ros_node.wait_for(lambda: str(r.episode_index) in recorded_indices(), 30,
                      what=f"the bag of episode {r.episode_index}")
    assert server.alive()


def test_time_limit_gives_timeout_and_cancel_stops_the_policy(start_node, ros_node, ckpt):
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from soarm_msgs.msg import EpisodeEvent
    from trajectory_msgs.msg import JointTrajectory

    server = start_graph(start_node, ckpt, success_after=0.0)  # the mock task never succeeds
    events, trajectories = [], []
    ros_node.node.create_subscription(EpisodeEvent, "episode_events", events.append,
                                      QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ros_node.node.create_subscription(JointTrajectory, "joint_trajectory",
                                      lambda m: trajectories.append((time.monotonic(), m)), 50)
    wait_policy_ready(ros_node)
    c = Client(ros_node)
    RunPolicy = c.RunPolicy

    # time limit -> TIMEOUT, a FAILURE event for the episode
    _, wrapped = c.result(c.send("timeout", time_limit=2.0), 60)
    r = wrapped.result
    assert wrapped.status == 6 and r.outcome == RunPolicy.Result.TIMEOUT, r.message
    assert r.message == "timeout after 2.0 s" and 2.0 <= r.duration < 4.0 and r.control_steps > 0
    ros_node.wait_for(lambda: any(e.kind == EpisodeEvent.FAILURE and e.episode_index == r.episode_index
                                  and e.detail == "run_policy: timeout after 2.0 s" for e in events), 10,
                      what="FAILURE event of the timed-out episode")

    # cancel -> CANCELED; the policy publishes nothing after that but its hold command
    handle = c.send("cancel", time_limit=60.0)
    ros_node.wait_for(lambda: any(f.control_steps > 5 for _, f in c.feedback["cancel"]), 60,
                      what="the policy running")
    t_cancel = time.monotonic()
    cancel = handle.cancel_goal_async()
    ros_node.wait_for(cancel.done, 30, what="cancel response")
    t_result, wrapped = c.result(handle, 30)
    r = wrapped.result
    assert wrapped.status == 5 and r.outcome == RunPolicy.Result.CANCELED, r.message  # STATUS_CANCELED
    assert r.message == "canceled by the client" and r.control_steps > 5
    time.sleep(2.5)
    after = [(t, m) for t, m in trajectories if t >= t_result]
    # at most the single-point hold, stamped before the result was sent; nothing later
    assert all(len(m.points) == 1 for _, m in after), [len(m.points) for _, m in after]
    assert not [t for t, _ in after if t > t_result + 0.5], "joint_trajectory published after the cancel"
    assert any(t >= t_cancel for t, _ in trajectories)  # it ran right up to the cancel
    ros_node.wait_for(lambda: any(e.kind == EpisodeEvent.FAILURE and e.episode_index == r.episode_index
                                  and "canceled" in e.detail for e in events), 10,
                      what="FAILURE event of the canceled episode")
    print(f"cancel: result {t_result - t_cancel:.3f} s after the cancel request; {len(after)} hold message(s) "
          "after the result")

    # Ctrl-C of the server while a goal runs: it disables the policy before it exits
    c.send("shutdown", time_limit=60.0)
    ros_node.wait_for(lambda: any(f.control_steps > 5 for _, f in c.feedback["shutdown"]), 60,
                      what="the policy running")
    t_sigint = time.monotonic()
    code = server.stop()  # SIGINT, then SIGKILL after 10 s (exit -9)
    t_stopped = time.monotonic()
    assert code == 0, f"run_policy_server did not exit by itself within 10 s of SIGINT (exit {code})"
    print(f"shutdown: the server exited {t_stopped - t_sigint:.2f} s after SIGINT")
    time.sleep(1.5)
    assert not [t for t, _ in trajectories if t > t_stopped + 0.5], "the policy still runs after the server exited"
    assert "ABORTED: the run_policy server is shutting down" in server.log()


def test_run_policy_server_parameters_and_graph_are_documented(start_node, ros_node):
    """As tests/test_interfaces_documented.py does for the other nodes; the action's hidden
    `_action/` topics and services are documented as the action `run_policy`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_interfaces_documented import check_node, documented_names

    start_node("soarm_act_policy", "run_policy_server")
    problems = [p for p in check_node(ros_node, "run_policy_server") if "/_action/" not in p]
    assert not problems, "\n".join(problems)
    assert {"run_policy", "soarm_msgs/action/RunPolicy"} <= documented_names()
