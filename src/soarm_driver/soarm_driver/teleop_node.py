"""Teleop node: streams single-point `joint_trajectory` position commands.

    ros2 run soarm_driver teleop --ros-args --params-file config/teleop.yaml -p source:=scripted
    ros2 run soarm_driver teleop --ros-args -p source:=scripted -p episodes:=20 -p seed:=100 -p use_sim_time:=true
    ros2 run soarm_driver teleop --ros-args -p source:=leader -p leader.port:=/dev/ttyACM1

source `scripted`: the scripted expert of the sim task (soarm_driver.sim.expert) starts on
each EpisodeEvent STARTED, reads the cube and target-zone poses from `scene/objects` and the arm from
`joint_states`, and streams its goals until the task reports SUCCESS (plus
`post_success_time`) or `episode_timeout` passes. With `episodes:=N` it drives a whole
recording session itself: `reset_episode` with seeds seed, seed+1, ... waiting for each
episode to finish, then exits. source `leader`: an SO-101 leader arm read through LeRobot,
mapped to radians, streamed at `rate_hz`. Interfaces: docs/interfaces.md ("sim backend
and teleop").

With `take_over:=true` teleop is the `human` command source of a policy run: it publishes on
`joint_trajectory/human` (the driver follows it only while `human` is selected) and offers the
toggle `~/take_over` (std_srvs/SetBool, a pedal or key binds to it): true selects `human`
(the driver first brings the follower to the leader's pose), false hands back to `policy`,
both through `/driver/select_source` (docs/interfaces.md, "Take-over and hand-back").
With `source:=scripted take_over:=true take_over_after:=S` the scripted expert plays the human of
a DAgger rollout (soarm_driver.sim.corrector): it watches the episode's stages on `driver/status`,
takes over when none was reached for S seconds, finishes the task from the current state and
hands back.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from soarm_msgs.msg import DriverStatus, EpisodeEvent
from soarm_msgs.srv import ResetEpisode, SelectSource
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import MarkerArray

from soarm_driver.robot import JOINT_NAMES
from soarm_driver.ros_support import (
    EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigurationError, ServiceError, SpinThread, call_service, core_log,
    declare_parameters, duration_msg, time_seconds,
)

PARAMETERS = [
    ("source", "scripted", "Command source: 'scripted' (sim expert) or 'leader' (SO-101 leader arm via LeRobot)."),
    ("rate_hz", 30.0, "Rate of joint_trajectory commands (Hz)."),
    ("episodes", 0,
     "scripted: >0 drives a session of N episodes itself through reset_episode; 0 follows episodes started by others."),
    ("seed", 0, "scripted session: seed of the first episode (episode i uses seed + i)."),
    ("randomize", True, "scripted session: randomize the scene from the seed."),
    ("task", "", "scripted session: task text for reset_episode (empty: the driver's default)."),
    ("episode_timeout", 20.0, "scripted: give up on an episode this long after it started (s, node clock)."),
    ("post_success_time", 1.0,
     "scripted: keep streaming (the arm above the placed cube) this long after SUCCESS before stopping (s)."),
    ("reset_timeout", 60.0, "scripted session: wall-clock limit for a reset_episode call (s)."),
    ("leader.port", "/dev/ttyACM0", "leader: serial port of the SO-101 leader arm."),
    ("leader.id", "soarm_leader", "leader: LeRobot robot id (names the calibration file)."),
    ("leader.calibration_dir", "", "leader: LeRobot calibration directory (empty: LeRobot's default)."),
    ("take_over", False,
     "true: be the 'human' command source (publish on joint_trajectory/human, toggle with ~/take_over); false: "
     "publish on joint_trajectory (plain teleoperation)."),
    ("select_timeout", 5.0, "take_over: wall-clock limit for a /driver/select_source call (s)."),
    ("take_over_after", 0.0,
     "scripted + take_over: >0: stay silent while the policy drives and take over (select human, finish the task "
     "from the current state, hand back) when no new task stage was reached for this long (s, node clock); 0: "
     "stream the expert from each STARTED (the ~/take_over toggle decides when it is followed)."),
]


class TeleopNode(Node):
    def __init__(self, **node_kwargs):
        """`node_kwargs` go to rclpy's Node (e.g. `context` for an in-process test)."""
        super().__init__("teleop", **node_kwargs)
        p = declare_parameters(self, PARAMETERS)
        self.source, self.rate_hz, self.episodes, self.seed = p["source"], p["rate_hz"], p["episodes"], p["seed"]
        self.randomize, self.task, self.reset_timeout = p["randomize"], p["task"], p["reset_timeout"]
        self.episode_timeout, self.post_success_time = p["episode_timeout"], p["post_success_time"]
        self.leader_port, self.leader_id = p["leader.port"], p["leader.id"]
        self.leader_calibration_dir = p["leader.calibration_dir"]
        if self.source not in ("scripted", "leader"):
            raise ConfigurationError(f"source must be 'scripted' or 'leader', got '{self.source}'")
        if self.rate_hz <= 0 or self.episode_timeout <= 0 or self.episodes < 0:
            raise ConfigurationError("rate_hz and episode_timeout must be > 0 and episodes >= 0")

        self.take_over, self.select_timeout = p["take_over"], p["select_timeout"]
        self.take_over_after = p["take_over_after"]
        corrector = self.take_over and self.source == "scripted"
        if self.take_over_after < 0 or (self.take_over_after > 0 and not corrector):
            raise ConfigurationError("take_over_after must be >= 0, and > 0 only with source:=scripted take_over:=true")
        self.pub = self.create_publisher(JointTrajectory, "joint_trajectory/human" if self.take_over
                                         else "joint_trajectory", 10)
        if self.take_over:
            toggle = ReentrantCallbackGroup()  # the callback waits for the driver's answer
            self.select_client = self.create_client(SelectSource, "driver/select_source", callback_group=toggle)
            self.create_service(SetBool, "~/take_over", self._on_take_over, callback_group=toggle)
        timer_group = MutuallyExclusiveCallbackGroup()
        if self.source == "scripted":
            self._setup_scripted()
        else:
            self._setup_leader()
        self.timer = self.create_timer(1.0 / self.rate_hz, self._tick, callback_group=timer_group)

    # ------------------------------------------------------------------ output
    def publish_goal(self, q: np.ndarray) -> None:
        msg = JointTrajectory()
        msg.joint_names = list(JOINT_NAMES)  # header.stamp zero: execute on receipt
        point = JointTrajectoryPoint()
        point.positions = [float(x) for x in q]
        point.time_from_start = duration_msg(1.0 / self.rate_hz)
        msg.points = [point]
        self.pub.publish(msg)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_take_over(self, request, response):
        """true: the human (this node) drives; false: hand back to the policy."""
        reason = f"teleop ~/take_over {str(request.data).lower()}"
        response.success, response.message = self._select(request.data, reason)
        return response

    def _select(self, human: bool, reason: str) -> tuple[bool, str]:
        """Ask the driver for the command source (`~/take_over`, the corrector): (success, message)."""
        source = SelectSource.Request.HUMAN if human else SelectSource.Request.POLICY
        try:
            answer = call_service(self.select_client, SelectSource.Request(source=source, reason=reason),
                                  self.select_timeout, f"select_source {source}")
        except ServiceError as e:
            self.get_logger().warning(f"select_source {source} ({reason}) failed: {e}")
            return False, str(e)
        self.get_logger().info(f"select_source {source} ({reason}): {answer.message}")
        return bool(answer.success), answer.message

    # ------------------------------------------------------------------ scripted
    def _setup_scripted(self):
        from soarm_driver.sim.episode_runner import EpisodeRunner
        from soarm_driver.sim.expert import ScriptedExpert

        # Each subscription in a mutually exclusive group of its own: a topic's messages are handled one
        # at a time, in the order they arrived, beside the other topics and the timer. (One reentrant
        # group for all ran a topic's callbacks side by side: a RESET handled after the STARTED that
        # followed it ended the episode just started, and teleop sat idle.)
        def in_order():
            return MutuallyExclusiveCallbackGroup()

        events_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        if self.take_over_after > 0:
            from soarm_driver.sim.corrector import CorrectingRunner

            self.episode_runner = CorrectingRunner(ScriptedExpert(), self.episode_timeout, self.post_success_time,
                                                   self.take_over_after,
                                                   lambda human, reason: self._select(human, reason)[0],
                                                   core_log(self.get_logger()))
            status_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(DriverStatus, "driver/status", self._on_status, status_qos,
                                     callback_group=in_order())
        else:
            self.episode_runner = EpisodeRunner(ScriptedExpert(), self.episode_timeout, self.post_success_time,
                                                core_log(self.get_logger()))
        self.create_subscription(JointState, "joint_states", self._on_joint_state, qos_profile_sensor_data,
                                 callback_group=in_order())
        self.create_subscription(MarkerArray, "scene/objects", self._on_objects, qos_profile_sensor_data,
                                 callback_group=in_order())
        self.create_subscription(EpisodeEvent, "episode_events", self._on_event, events_qos,
                                 callback_group=in_order())
        self.reset_client = self.create_client(ResetEpisode, "reset_episode", callback_group=ReentrantCallbackGroup())

    def _on_status(self, msg: DriverStatus):
        self.episode_runner.on_stages(msg.episode_index, msg.stages, self.now_s())

    def _on_joint_state(self, msg: JointState):
        index = {n: i for i, n in enumerate(msg.name)}
        if all(n in index for n in JOINT_NAMES):
            self.episode_runner.on_joints([msg.position[index[n]] for n in JOINT_NAMES])

    def _on_objects(self, msg: MarkerArray):
        for m in msg.markers:
            p, o = m.pose.position, m.pose.orientation
            stamp = time_seconds(m.header.stamp)
            self.episode_runner.on_object(m.ns, stamp, [p.x, p.y, p.z], [o.w, o.x, o.y, o.z])

    def _on_event(self, ev: EpisodeEvent):
        if ev.kind == EpisodeEvent.STARTED:
            self.episode_runner.on_started(ev.episode_index, time_seconds(ev.header.stamp))
        elif ev.kind == EpisodeEvent.SUCCESS:
            self.episode_runner.on_success(ev.episode_index, self.now_s(), f"({ev.detail})")
        elif ev.kind in (EpisodeEvent.ENDED, EpisodeEvent.RESET):
            self.episode_runner.on_end(ev.episode_index, "ended")
        elif ev.kind == EpisodeEvent.FAILURE:
            self.episode_runner.on_end(ev.episode_index, "failure")

    def _tick(self):
        if self.source == "leader":
            self._tick_leader()
            return
        goal = self.episode_runner.tick(self.now_s())
        if goal is not None:
            self.publish_goal(goal)

    def run_session(self) -> int:
        """Drive `episodes` episodes through reset_episode; returns the number of successes."""
        successes = 0
        settled: set = set()
        for i in range(self.episodes):
            seed = self.seed + i
            req = ResetEpisode.Request(task=self.task, seed=seed, randomize=self.randomize)
            resp = call_service(self.reset_client, req, self.reset_timeout, f"reset_episode (seed {seed})", settled)
            if not resp.success:
                raise RuntimeError(f"reset_episode (seed {seed}) failed: {resp.message}")
            index = resp.episode_index
            # Wait for this episode's result (the timer decides: success or timeout, on
            # the node clock); the wall-clock guard only catches a dead driver/clock.
            guard = time.monotonic() + self.reset_timeout + 10 * self.episode_timeout
            result = None
            while rclpy.ok() and result is None:
                if time.monotonic() > guard:
                    raise RuntimeError(
                        f"episode {index} (seed {seed}) never finished: is the driver (and /clock) alive?")
                time.sleep(0.02)
                result = self.episode_runner.result(index)
            if result is None:
                raise KeyboardInterrupt  # shut down (Ctrl-C) while the episode ran
            successes += result == "success"
            self.get_logger().info(f"session episode {i + 1}/{self.episodes} (index {index}, seed {seed}): "
                                   f"{result}; {successes} successes so far")
        return successes

    # ------------------------------------------------------------------ leader
    def _setup_leader(self):
        from soarm_driver.teleop_leader import LeaderArm

        self.leader = LeaderArm(self.leader_port, self.leader_id, self.leader_calibration_dir or None)
        self.leader.connect()
        self.get_logger().info(f"leader arm connected on {self.leader_port}")

    def _tick_leader(self):
        try:
            q = self.leader.read_radians()
        except Exception as exc:  # bus errors: log and keep trying; never publish garbage
            self.get_logger().error(f"leader read failed: {exc}", throttle_duration_sec=2.0)
            return
        self.publish_goal(q)

    def destroy_node(self):
        if hasattr(self, "leader"):
            self.leader.disconnect()
        return super().destroy_node()


def main(args=None) -> int:
    """Run teleop until Ctrl-C, or the session of `episodes` episodes. Exit codes: 0 done or
    stopped, 1 failure (a session that could not finish: driver gone, reset refused; a leader arm
    that cannot be opened; message on stderr), 2 refused configuration (message on stderr)."""
    try:
        with rclpy.init(args=args):
            try:
                node = TeleopNode()
            except (ValueError, ParameterException) as e:  # bad parameters: a clear message, no traceback
                print(f"teleop: invalid configuration: {e}", file=sys.stderr, flush=True)
                return EXIT_CONFIG
            except RuntimeError as e:  # the leader arm cannot be opened
                print(f"teleop: error: {e}", file=sys.stderr, flush=True)
                return EXIT_FAILURE
            executor = MultiThreadedExecutor(num_threads=3)
            executor.add_node(node)
            try:
                if node.source != "scripted" or node.episodes == 0:
                    executor.spin()
                    return EXIT_OK
                spin = SpinThread(executor)
                try:
                    successes = node.run_session()
                except (ServiceError, RuntimeError) as e:
                    if not rclpy.ok():
                        return EXIT_OK  # Ctrl-C shut the context down under the session
                    print(f"teleop: error: {e}", file=sys.stderr, flush=True)
                    return EXIT_FAILURE
                finally:
                    spin.stop()
                print(f"teleop: session done: {successes}/{node.episodes} episodes succeeded", flush=True)
            finally:
                executor.shutdown(timeout_sec=2.0)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
