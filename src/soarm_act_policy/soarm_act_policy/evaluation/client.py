"""The evaluation client: an rclpy node driving closed-loop episodes against running nodes.

Per episode: ``reset_episode`` (seed) -> ``policy/reset`` -> ``policy/enable`` true -> wait
for the task's SUCCESS event or ``episode_time`` (node clock: sim time with
``use_sim_time``) -> ``policy/enable`` false (the arm holds) -> FAILURE event on timeout.
Meanwhile it collects ``policy_status`` (inference latency, skipped steps),
``joint_states`` (trajectory for the plot) and the task stages the episode reached (the
sim driver's STAGE_* bits: ``stages`` of its ``~/status`` (DriverStatus) while the episode runs, of
its SUCCESS event, and of the episode's ENDED event at the next reset).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from soarm_msgs.msg import DriverStatus, EpisodeEvent, PolicyStatus
from soarm_msgs.srv import ResetEpisode

from ..joints import JOINT_NAMES
from ..ros_support import ServiceError, SpinThread, call_service, time_seconds
from .report import EpisodeResult, latency_stats

EVENTS_QOS = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
# Best effort subscriptions match both reliable and best-effort publishers.
STREAM_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
SKIP_FIELDS = ("skipped_stale", "skipped_missing", "skipped_no_action")


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
    policy_enable_service: str = "policy/enable"
    policy_reset_service: str = "policy/reset"
    driver_status_topic: str = "driver/status"


class EvalClient:
    """Owns an rclpy context and node spun in a background thread."""

    def __init__(self, settings: EvalSettings, node_name: str = "evaluate", args: list[str] | None = None):
        self.s = settings
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        self.node = Node(
            node_name, context=self.context,
            parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, settings.use_sim_time)],
        )
        self._lock = threading.Lock()
        self._events: list[tuple[float, EpisodeEvent]] = []  # (wall arrival, msg)
        self._recording = False
        self._latencies: list[float] = []
        self._last_latency: float | None = None
        self._status_first: PolicyStatus | None = None
        self._status_last: PolicyStatus | None = None
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
        self.cli_policy_enable = n.create_client(SetBool, settings.policy_enable_service)
        self.cli_policy_reset = n.create_client(Trigger, settings.policy_reset_service)
        self.executor = MultiThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._spin = SpinThread(self.executor)

    # ------------------------------------------------------------------ plumbing
    def close(self):
        try:
            self._spin.stop()
            self.executor.shutdown(timeout_sec=2)
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
            if self._status_first is None:
                self._status_first = msg
            self._status_last = msg
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

    def _find_event(self, episode_index: int, kind: int, since_wall: float):
        with self._lock:
            for arrival, ev in self._events:
                if arrival >= since_wall and ev.episode_index == episode_index and ev.kind == kind:
                    return ev
        return None

    def run_episode(self, index: int) -> EpisodeResult:
        s = self.s
        seed = s.seed + index
        result = EpisodeResult(index=index, seed=seed)
        since = time.monotonic()
        req = ResetEpisode.Request(task=s.task_description, seed=seed, randomize=s.randomize)
        resp = self._call(self.cli_reset, req, s.reset_time, f"reset for episode {index}")
        if not resp.success:
            result.error = f"reset failed: {resp.message}"
            return result
        result.episode_index = int(resp.episode_index)
        if resp.seed_used >= 0:
            result.seed = int(resp.seed_used)
        prev = self._previous
        if prev is not None and prev.episode_index >= 0:
            # the reset ended the previous episode: its ENDED event has the driver's final stages
            ended = self._find_event(prev.episode_index, EpisodeEvent.ENDED, 0.0)
            if ended is not None and ended.stages:
                prev.stages = (prev.stages or 0) | int(ended.stages)
        self._previous = result
        started = None
        deadline = time.monotonic() + 5.0
        while started is None and time.monotonic() < deadline:
            started = self._find_event(result.episode_index, EpisodeEvent.STARTED, since)
            time.sleep(0.01)
        result.task = started.task if started is not None else s.task_description

        r = self._call(self.cli_policy_reset, Trigger.Request(), s.service_timeout, "reset the policy")
        if not r.success:
            result.error = f"policy reset failed: {r.message}"
            return result
        with self._lock:
            self._latencies, self._last_latency = [], None
            self._status_first = self._status_last = None
            self._traj_t, self._traj_q = [], []
            self._recording = True
        t0 = self.now()
        r = self._call(self.cli_policy_enable, SetBool.Request(data=True), s.service_timeout, "enable the policy")
        if not r.success:
            with self._lock:
                self._recording = False
            result.error = f"policy refused enable: {r.message}"
            return result

        success_ev = None
        # Guard against a stalled sim clock: the episode never takes much longer in wall time.
        wall_deadline = time.monotonic() + 3.0 * s.episode_time + 30.0
        period = 1.0 / max(s.fps, 1.0)
        while True:
            success_ev = self._find_event(result.episode_index, EpisodeEvent.SUCCESS, since)
            elapsed = self.now() - t0
            if success_ev is not None or elapsed >= s.episode_time:
                break
            if time.monotonic() > wall_deadline:
                result.error = (f"node clock stalled: {elapsed:.1f} s of {s.episode_time:.1f} s after a "
                                "wall-clock timeout")
                break
            time.sleep(period)
        t_end = self.now()
        try:
            self._call(self.cli_policy_enable, SetBool.Request(data=False), s.service_timeout, "disable the policy")
        finally:
            with self._lock:
                self._recording = False
        result.duration = t_end - t0
        result.stages = self.episode_stages(result.episode_index, success_ev)
        if success_ev is not None:
            result.success = True
            result.time_to_success = max(0.0, time_seconds(success_ev.header.stamp) - t0)
        else:
            ev = EpisodeEvent(episode_index=result.episode_index, task=result.task, kind=EpisodeEvent.FAILURE,
                              detail=f"evaluate: timeout after {s.episode_time:.1f} s",
                              seed=result.seed if started is not None and started.seed >= 0 else -1,
                              stages=result.stages or 0)
            ev.header.stamp = self.node.get_clock().now().to_msg()
            self.pub_events.publish(ev)
        with self._lock:
            first, last = self._status_first, self._status_last
            result.latency = latency_stats(self._latencies)
            self.all_latencies.extend(self._latencies)
            result.trajectory_t, result.trajectory_q = list(self._traj_t), list(self._traj_q)
        if first is not None and last is not None:
            result.skipped = {f[len("skipped_"):]: int(getattr(last, f)) - int(getattr(first, f)) for f in SKIP_FIELDS}
            result.control_steps = int(last.steps) - int(first.steps)
        if s.hold_time > 0:
            time.sleep(s.hold_time)
        return result
