"""The evaluation client: an rclpy node driving closed-loop episodes against running nodes.

Per episode one goal of the ``run_policy`` action (soarm_msgs/action/RunPolicy: reset_episode
with the seed -> policy reset -> enable -> SUCCESS or the time limit -> disable, the arm
holds; `run_policy_node`), served by a `RunPolicyServer` this process hosts (action
``evaluate/run_policy``) or by a running ``run_policy_server`` (`EvalSettings.action`).
The result gives the outcome, the counters (control steps, skipped steps) and the task stages
(the sim driver's STAGE_* bits); while the goal runs the client collects ``policy_status``
(inference latency) and ``joint_states`` (trajectory for the plot), and the episode's ENDED
event (at the next reset) may add stages. `ReplayClient` reuses the plumbing (services,
/clock wait, events, joint states, driver status) without the action.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from soarm_msgs.action import RunPolicy
from soarm_msgs.msg import DriverStatus, EpisodeEvent, PolicyStatus
from soarm_msgs.srv import ResetEpisode

from ..joints import JOINT_NAMES
from ..ros_support import ServiceError, SpinThread, call_service, time_seconds
from ..run_policy_node import EVENTS_QOS, STREAM_QOS, RunPolicyServer
from .report import EpisodeResult, latency_stats

#: The action `evaluate` hosts in its own process (unless EvalSettings.action names a running one).
HOSTED_ACTION = "evaluate/run_policy"
#: RunPolicy.Result outcome -> its name (EpisodeResult.outcome, the dataset's soarm/outcome).
OUTCOMES = {RunPolicy.Result.SUCCESS: "success", RunPolicy.Result.FAILURE: "failure",
            RunPolicy.Result.TIMEOUT: "timeout", RunPolicy.Result.CANCELED: "canceled",
            RunPolicy.Result.ABORTED: "aborted", RunPolicy.Result.REJECTED: "rejected"}
#: Services the run_policy goals need (checked before the first episode).
POLICY_SERVICES = (("policy/enable", SetBool), ("policy/reset", Trigger))


def interrupt_on_sigint() -> None:
    """SIGINT raises KeyboardInterrupt in the main thread, whatever this process inherited.

    Python keeps SIGINT ignored when its parent ignored it (a background job of a shell script,
    `nohup ... &`, a test run started so): a Ctrl-C or `ros2 launch`'s SIGINT then never reached
    evaluate, which ran its episode to the end and exited 0. rclpy's own handler (off here) would
    have been installed regardless; so is this one. No-op outside the main thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


class EvaluationError(RuntimeError):
    """The evaluation cannot go on (a node or service is missing, the clock does not run)."""


@dataclass
class EvalSettings:
    num_episodes: int = 10
    episode_time: float = 60.0
    reset_time: float = 60.0
    hold_time: float = 1.0
    task_description: str = ""
    fps: float = 30.0
    seed: int = 1000
    randomize: bool = True
    use_sim_time: bool = True
    enable_driver: bool = True
    service_timeout: float = 30.0
    reset_service: str = "reset_episode"
    driver_enable_service: str = "driver/enable"
    driver_status_topic: str = "driver/status"
    #: "" = host a run_policy server in this process; else the action name of a running one
    action: str = ""


class EvalClient:
    """Owns an rclpy context and node spun in a background thread. `run_policy`: episodes run as
    goals of the run_policy action (`run_episode`), hosted here unless `settings.action` is set."""

    def __init__(self, settings: EvalSettings, node_name: str = "evaluate", args: list[str] | None = None,
                 run_policy: bool = False):
        self.s = settings
        self.context = rclpy.Context()
        # no rclpy SIGINT handler: it would shut the context down before a Ctrl-C could cancel the
        # running goal (KeyboardInterrupt reaches the main thread, which waits in Python)
        rclpy.init(args=args, context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        interrupt_on_sigint()
        self.node = Node(
            node_name, context=self.context,
            parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, settings.use_sim_time)],
        )
        self._lock = threading.Lock()
        self._events: list[tuple[float, EpisodeEvent]] = []  # (wall arrival, msg)
        self._recording = False
        self._latencies: list[float] = []
        self._last_latency: float | None = None
        self._traj_t: list[float] = []
        self._traj_q: list[list[float]] = []
        self.all_latencies: list[float] = []
        self._settled: set = set()
        self._stage_bits: dict[int, int] = {}  # driver episode index -> STAGE_* bits seen in its status
        self._previous: EpisodeResult | None = None

        n = self.node
        n.create_subscription(EpisodeEvent, "episode_events", self._on_event, EVENTS_QOS)
        n.create_subscription(PolicyStatus, "policy_status", self._on_status, STREAM_QOS)
        n.create_subscription(JointState, "joint_states", self._on_joints, STREAM_QOS)
        n.create_subscription(DriverStatus, settings.driver_status_topic, self._on_driver_status, EVENTS_QOS)
        self.pub_events = n.create_publisher(EpisodeEvent, "episode_events", EVENTS_QOS)
        self.cli_reset = n.create_client(ResetEpisode, settings.reset_service)
        self.cli_driver_enable = n.create_client(SetBool, settings.driver_enable_service)
        self.executor = MultiThreadedExecutor(context=self.context, num_threads=4)
        self.executor.add_node(n)
        self.server: RunPolicyServer | None = None
        self.action: ActionClient | None = None
        if run_policy:
            if not settings.action:
                self.server = RunPolicyServer(
                    node_name=f"{node_name}_run_policy", action_name=HOSTED_ACTION, context=self.context,
                    parameter_overrides=[
                        Parameter("use_sim_time", Parameter.Type.BOOL, settings.use_sim_time),
                        Parameter("check_rate_hz", Parameter.Type.DOUBLE, float(settings.fps)),
                        Parameter("service_timeout", Parameter.Type.DOUBLE, float(settings.service_timeout)),
                        Parameter("reset_timeout", Parameter.Type.DOUBLE, float(settings.reset_time)),
                    ])
                self.executor.add_node(self.server)
            self.action = ActionClient(n, RunPolicy, settings.action or HOSTED_ACTION)
        self._spin = SpinThread(self.executor)

    # ------------------------------------------------------------------ plumbing
    def close(self):
        try:
            self._spin.stop()
            self.executor.shutdown(timeout_sec=2)
            if self.action is not None:
                self.action.destroy()
            if self.server is not None:
                self.server.destroy_node()
            self.node.destroy_node()
        finally:
            if self.context.ok():
                rclpy.shutdown(context=self.context)

    def log(self, text: str):
        print(f"[evaluate] {text}", flush=True)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _call(self, client, request, timeout: float, what: str):
        """`ros_support.call_service` (waits for the server once per client); EvaluationError on failure."""
        try:
            return call_service(client, request, timeout, what, self._settled,
                                wait_timeout=max(timeout, self.s.service_timeout))
        except ServiceError as e:
            raise EvaluationError(str(e)) from e

    # ------------------------------------------------------------------ callbacks
    def _on_event(self, msg: EpisodeEvent):
        with self._lock:
            self._events.append((time.monotonic(), msg))

    def _on_status(self, msg: PolicyStatus):
        with self._lock:
            if not self._recording:
                return
            lat = msg.inference_latency
            if math.isfinite(lat) and lat != self._last_latency:
                self._latencies.append(lat)
                self._last_latency = lat

    def _on_driver_status(self, msg: DriverStatus):
        if msg.stages >= 0:  # -1: the backend cannot tell
            with self._lock:
                self._stage_bits[msg.episode_index] = self._stage_bits.get(msg.episode_index, 0) | int(msg.stages)

    def episode_stages(self, episode_index: int, *events) -> int | None:
        """STAGE_* bits the driver episode reached: its status and the given events OR-ed;
        None when nothing tells (a backend without task stages)."""
        with self._lock:
            bits = self._stage_bits.get(episode_index)
        for ev in events:
            if ev is not None and ev.stages:
                bits = (bits or 0) | int(ev.stages)
        return bits

    def _on_joints(self, msg: JointState):
        with self._lock:
            if not self._recording:
                return
            pos = dict(zip(msg.name, msg.position))
            if all(j in pos for j in JOINT_NAMES):
                self._traj_t.append(time_seconds(msg.header.stamp))
                self._traj_q.append([float(pos[j]) for j in JOINT_NAMES])

    # ------------------------------------------------------------------ steps
    def wait_for_clock(self, timeout: float = 30.0):
        """With use_sim_time, wait until /clock runs (the node clock is 0 before)."""
        if not self.s.use_sim_time:
            return
        deadline = time.monotonic() + timeout
        while self.now() <= 0.0:
            if time.monotonic() > deadline:
                raise EvaluationError(
                    f"no /clock after {timeout:.0f} s: start the driver with the sim backend, or pass "
                    "--no-use-sim-time on real hardware"
                )
            time.sleep(0.05)

    def prepare(self):
        self.wait_for_clock(self.s.service_timeout)
        if self.s.enable_driver:
            r = self._call(self.cli_driver_enable, SetBool.Request(data=True), self.s.service_timeout,
                           "enable the driver")
            if not r.success:
                raise EvaluationError(f"driver refused enable: {r.message}")
        if self.action is None:
            return
        for name, srv_type in ((self.s.reset_service, ResetEpisode), *POLICY_SERVICES):
            client = self.node.create_client(srv_type, name)
            try:
                if not client.wait_for_service(timeout_sec=self.s.service_timeout):
                    raise EvaluationError(f"service {client.srv_name} not available: is the "
                                          f"{'driver' if name == self.s.reset_service else 'policy'} node running?")
            finally:
                self.node.destroy_client(client)
        if not self.action.wait_for_server(timeout_sec=self.s.service_timeout):
            raise EvaluationError(f"action {self.s.action} not available: start `ros2 run soarm_act_policy "
                                  "run_policy_server`, or leave --action out (evaluate then hosts one)")

    def _find_event(self, episode_index: int, kind: int, since_wall: float):
        with self._lock:
            for arrival, ev in self._events:
                if arrival >= since_wall and ev.episode_index == episode_index and ev.kind == kind:
                    return ev
        return None

    def run_episode(self, index: int) -> EpisodeResult:
        """One episode as a run_policy goal (seed = settings.seed + index); Ctrl-C cancels it (the
        arm holds) and is raised again."""
        s = self.s
        seed = s.seed + index
        result = EpisodeResult(index=index, seed=seed)
        with self._lock:
            self._latencies, self._last_latency = [], None
            self._traj_t, self._traj_q = [], []
        goal = RunPolicy.Goal(task=s.task_description, time_limit=float(s.episode_time), seed=seed,
                              randomize=s.randomize, record=False)
        try:
            wrapped = self._run_goal(goal)
        finally:
            with self._lock:
                self._recording = False
        if wrapped is None:
            result.error = "no result from the run_policy action in time (is its server alive?)"
            return result
        r = wrapped.result
        result.episode_index = int(r.episode_index)
        if r.seed >= 0:
            result.seed = int(r.seed)
        result.task = r.task or s.task_description
        result.duration = float(r.duration)
        result.stages = None if r.stages < 0 else int(r.stages)
        result.interventions, result.human_time = int(r.interventions), float(r.human_time)
        result.outcome = OUTCOMES.get(r.outcome, "")
        if r.duration > 0 or r.control_steps > 0:  # the policy ran
            result.control_steps = int(r.control_steps)
            result.skipped = {"stale": int(r.skipped_stale), "missing": int(r.skipped_missing),
                              "no_action": int(r.skipped_no_action)}
        if r.outcome == RunPolicy.Result.SUCCESS:
            result.success = True
            result.time_to_success = float(r.time_to_success)
        elif r.outcome not in (RunPolicy.Result.TIMEOUT, RunPolicy.Result.FAILURE):
            result.error = r.message  # aborted (reset refused, policy error, ...), rejected, canceled
        prev = self._previous
        if prev is not None and prev.episode_index >= 0:
            # this episode's reset ended the previous one: its ENDED event has the driver's final stages
            ended = self._find_event(prev.episode_index, EpisodeEvent.ENDED, 0.0)
            if ended is not None and ended.stages:
                prev.stages = (prev.stages or 0) | int(ended.stages)
        self._previous = result
        with self._lock:
            result.latency = latency_stats(self._latencies)
            self.all_latencies.extend(self._latencies)
            result.trajectory_t, result.trajectory_q = list(self._traj_t), list(self._traj_q)
        if s.hold_time > 0:
            time.sleep(s.hold_time)
        return result

    def _on_feedback(self, msg) -> None:
        # latency and trajectory are collected while the policy runs (not during the reset)
        if msg.feedback.state == RunPolicy.Feedback.RUNNING:
            with self._lock:
                self._recording = True

    def _run_goal(self, goal):
        """Send `goal` and wait for its result (RunPolicy GetResult response), None when the server
        does not answer within its own deadlines plus a margin."""
        s = self.s
        margin = s.reset_time + 3.0 * s.episode_time + 4 * s.service_timeout + 60.0
        future = self.action.send_goal_async(goal, feedback_callback=self._on_feedback)
        handle = None
        try:
            self._wait(future, s.service_timeout, "the run_policy goal response")
            handle = future.result()
            if not handle.accepted:
                raise EvaluationError("the run_policy server rejected the goal (see its log)")
            result = handle.get_result_async()
            if not self._wait(result, margin, None):
                handle.cancel_goal_async()
                return None
            return result.result()
        except KeyboardInterrupt:
            if handle is None and self._wait(future, s.service_timeout, None):
                handle = future.result()  # interrupted while the goal response was on its way
            if handle is not None and handle.accepted:
                self.log("interrupted: canceling the episode (the arm holds)")
                handle.cancel_goal_async()
                self._wait(handle.get_result_async(), 10.0, None)
            raise

    def _wait(self, future, timeout: float, what: str | None) -> bool:
        """Wait for `future`; False on timeout, or EvaluationError naming `what` when given."""
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                if what is not None:
                    raise EvaluationError(f"no answer for {what} within {timeout:.0f} s")
                return False
            time.sleep(0.01)
        return True
