"""policy: run a LeRobot ACT checkpoint as joint trajectory commands.

Thin ROS layer over `control_loop.ControlLoop` (tick logic), `checkpoint` (loading and
feature checks) and `observation` (ROS -> features, actions -> radians). Topics,
services and parameters: docs/interfaces.md, section "policy".
"""

from __future__ import annotations

import math
import os
import sys
import threading
from dataclasses import replace

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rcl_interfaces.msg import ParameterType
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from soarm_msgs.msg import CommandSource, EpisodeEvent, PolicyStatus
from soarm_msgs.srv import SelectSource
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from .checkpoint import (
    CheckpointError, LoadedPolicy, check_compatible, read_spec, resolve_checkpoint,
)
from .control_loop import ERROR, IDLE, RUNNING, LoopConfig, ControlLoop, Snapshot, resolve_mode
from .diagnostics import TickRate, policy_diagnostics
from .events import kind_names
from .observation import ObservationBuilder, ObservationMapping, image_topic, parse_camera_keys
from .ros_support import (
    EXIT_CONFIG,
    EXIT_OK,
    declare_parameters,
    duration_msg,
    spin_until_shutdown,
    time_msg,
    time_seconds,
)
from .units import JOINT_NAMES, UNITS

JOINT_TOPIC = "joint_states"
#: {EpisodeEvent kind: name}, from the message's constants.
EVENT_KINDS = kind_names(EpisodeEvent)

SENSOR_QOS = QoSProfile(
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
    history=HistoryPolicy.KEEP_LAST, depth=1,
)
#: Reliable, transient local, depth 1: a late joiner gets the newest message.
LATCHED_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST, depth=1,
)
#: The driver's latched ~/command_source.
SOURCE_QOS = LATCHED_QOS
EVENTS_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST, depth=10,
)
#: policy_status: the newest status is kept for late joiners (a transient local subscriber that
#: matches during the checkpoint load still sees IDLE); volatile subscribers, reliable or best
#: effort, match it too and get the live stream.
STATUS_QOS = LATCHED_QOS

P = ParameterType
PARAMETERS = [
    # name, default, type, description
    ("checkpoint", "", P.PARAMETER_STRING,
     "LeRobot ACT checkpoint: a pretrained_model directory (or a training output / checkpoints/<step> "
     "directory holding one), or a Hugging Face hub id already in the local cache. Safetensors only."),
    ("device", "auto", P.PARAMETER_STRING, "Torch device: auto (cuda, then mps, then cpu), cpu, cuda[:N], mps."),
    ("mode", "auto", P.PARAMETER_STRING,
     "auto: ensemble when the warm-up inference fits in half a control period, else async; ensemble: "
     "predict every control step in the tick, temporal ensembling; chunk: predict when the chunk is used up "
     "and play n_action_steps of it; async: temporal ensembling with inference on a worker thread (slow CPU, "
     "remote GPU). Every mode plays the step due at the current time (see skipped_late)."),
    ("control_rate_hz", 30.0, P.PARAMETER_DOUBLE, "Control tick rate, Hz (the dataset's fps)."),
    ("ensemble_coeff", 0.01, P.PARAMETER_DOUBLE,
     "Temporal ensembling m: weights w_i = exp(-m*i), w_0 the oldest prediction (ensemble, async)."),
    ("n_action_steps", 0, P.PARAMETER_INTEGER,
     "chunk mode: actions played per prediction; 0 = the checkpoint's n_action_steps."),
    ("max_observation_age", 0.25, P.PARAMETER_DOUBLE,
     "Hold (and count a skip) when the newest joint state or camera frame is older than this, s."),
    ("future_stamp_tolerance", 0.1, P.PARAMETER_DOUBLE,
     "Hold (and count a stale skip) when a joint state or camera frame is stamped more than this after the "
     "node clock, s: clocks out of sync (synchronise them with chrony) or mixed sim/wall time."),
    ("cameras", ["front", "wrist"], P.PARAMETER_STRING_ARRAY,
     "Camera names: topic cameras/<name>/image_raw feeds observation.images.<name>."),
    ("camera_keys", [], P.PARAMETER_STRING_ARRAY,
     "Optional renames '<camera>:<feature suffix>', e.g. 'front:top' feeds observation.images.top."),
    ("joint_names", list(JOINT_NAMES), P.PARAMETER_STRING_ARRAY,
     "Order of the checkpoint's state/action vectors; joint states are matched by name."),
    ("units", "radians", P.PARAMETER_STRING,
     "Checkpoint joint units: radians (our datasets), lerobot_degrees (LeRobot SO-101: degrees, gripper "
     "0..100), lerobot_range100 (legacy: -100..100, gripper 0..100)."),
    ("joint_ranges", [], P.PARAMETER_DOUBLE_ARRAY,
     "Calibrated [min, max] radians per joint (2 values per joint, joint_names order) for the lerobot_* "
     "units; empty = SO-101 URDF limits."),
    ("resize_images", False, P.PARAMETER_BOOL, "Resize camera frames to the checkpoint's image size."),
    ("image_size", [], P.PARAMETER_INTEGER_ARRAY,
     "[width, height] the cameras publish, checked against the checkpoint at start; empty = checked per frame."),
    ("trajectory_points", 10, P.PARAMETER_INTEGER,
     "Least number of points per published JointTrajectory (the current step and the next planned ones); "
     "more are sent when needed to reach past the next expected publication."),
    ("plan_margin", 0.1, P.PARAMETER_DOUBLE,
     "s every published plan outlives the next expected publication (at least one control period): a late "
     "tick, the transport, a loaded machine. Raise it across a slow network if the driver reports "
     "'ends in the past'."),
    ("warmup", True, P.PARAMETER_BOOL,
     "Run two inferences on zeros before the first tick (their latency chooses the auto mode; without "
     "warm-up, auto means async)."),
    ("torch_threads", 1, P.PARAMETER_INTEGER,
     "torch.set_num_threads; 0 = torch's default (all cores). 1 avoids OpenMP oversubscription when the "
     "driver/sim share the CPU (2 threads were 13x slower on a loaded 2-core machine); raise it on a "
     "dedicated multi-core CPU."),
    ("publish_planned_path", True, P.PARAMETER_BOOL,
     "Publish policy/planned_path (end-effector path of the plan, needs soarm_act_policy.kinematics)."),
    ("planned_path_frame", "base_link", P.PARAMETER_STRING, "Frame of policy/planned_path."),
]


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy")
        self.params = p = declare_parameters(self, PARAMETERS)

        joints = list(p["joint_names"])
        ranges = list(p["joint_ranges"])
        if ranges and len(ranges) != 2 * len(joints):
            raise CheckpointError(f"joint_ranges needs 2 values per joint ({2 * len(joints)}), got {len(ranges)}")
        if p["units"] not in UNITS:
            raise CheckpointError(f"units must be one of {', '.join(UNITS)}; got {p['units']!r}")
        self.mapping = ObservationMapping(
            cameras=tuple(p["cameras"]), joint_names=tuple(joints), units=p["units"],
            camera_keys=parse_camera_keys(p["camera_keys"]), resize=p["resize_images"],
            joint_ranges={j: (ranges[2 * i], ranges[2 * i + 1]) for i, j in enumerate(joints)} if ranges else {},
        )
        # IDLE while the checkpoint loads and warms up (seconds): the publisher exists first
        self.status_pub = self.create_publisher(PolicyStatus, "policy_status", STATUS_QOS)
        path = resolve_checkpoint(p["checkpoint"])
        self._publish_idle(f"loading checkpoint {path}")
        if p["torch_threads"] > 0:
            import torch

            torch.set_num_threads(int(p["torch_threads"]))
        spec = read_spec(path)  # checked before torch and LeRobot load: a mismatch fails fast
        check_compatible(spec, self.mapping, tuple(p["image_size"]) if p["image_size"] else None)
        self.get_logger().info(f"loading checkpoint {path}")
        self.model = LoadedPolicy(path, p["device"])
        self.builder = ObservationBuilder(self.mapping, spec.image_shapes)
        self.period = 1.0 / float(p["control_rate_hz"])
        latency = float("inf")
        if p["warmup"]:
            self._publish_idle(f"warming up: two inferences on {self.model.device}")
            latency = self.model.warmup(runs=2)
            self.get_logger().info(f"warm-up inference on {self.model.device}: {latency * 1000:.0f} ms")
        mode, warning = resolve_mode(p["mode"], latency, self.period)
        if warning:
            self.get_logger().warning(warning)
        if p["mode"] == "auto":
            self.get_logger().info(
                f"mode auto -> {mode} (inference {latency * 1000:.0f} ms, control period {self.period * 1000:.0f} ms)")
        self.loop = ControlLoop(
            LoopConfig(
                mode=mode, period=self.period, chunk_size=spec.chunk_size,
                n_action_steps=int(p["n_action_steps"]) or spec.n_action_steps,
                ensemble_coeff=float(p["ensemble_coeff"]), max_observation_age=float(p["max_observation_age"]),
                future_stamp_tolerance=float(p["future_stamp_tolerance"]),
                trajectory_points=int(p["trajectory_points"]), plan_margin=float(p["plan_margin"]),
                action_dim=len(joints),
            ),
            self._predict,
        )
        self._lock = threading.Lock()
        self._joint_msg = None
        self._joint_stamp = None
        self._images = {c: None for c in self.mapping.cameras}
        self._image_stamps = {c: None for c in self.mapping.cameras}

        inputs = MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointState, JOINT_TOPIC, self._on_joints, SENSOR_QOS, callback_group=inputs)
        for cam in self.mapping.cameras:
            self.create_subscription(
                Image, image_topic(cam), lambda m, c=cam: self._on_image(c, m), SENSOR_QOS, callback_group=inputs
            )
        # events and services wait for the tick's lock: their own group keeps sensor callbacks flowing
        commands = MutuallyExclusiveCallbackGroup()
        self.create_subscription(EpisodeEvent, "episode_events", self._on_event, EVENTS_QOS, callback_group=commands)
        # take-over: hold while the driver follows another source, restart the plan on hand-back
        self.create_subscription(CommandSource, "driver/command_source", self._on_command_source, SOURCE_QOS,
                                 callback_group=commands)
        self.traj_pub = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.path_pub = self.create_publisher(MarkerArray, "policy/planned_path", 1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._tick_rate = TickRate(window=1.0)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=commands)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=commands)
        # The tick runs on its own thread, paced by the node clock (sim time included), not as
        # an executor timer: measured on a 2-core CPU, rclpy's Python executor spends most of
        # its time rebuilding wait sets for the /clock, joint and camera messages, and a timer
        # callback then waits behind them (5-17 ticks/s instead of 30). The timeline follows the
        # clock either way (ControlLoop); this keeps the ticks close to their due time.
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick_forever, name="policy-tick", daemon=True)
        self._ticker.start()
        self._kinematics = None
        self._kinematics_warned = False
        self.get_logger().info(
            f"policy ready: mode {mode}, {p['control_rate_hz']:.1f} Hz, chunk {spec.chunk_size}, "
            f"cameras {dict(self.mapping.image_keys)}, units {p['units']}, device {self.model.device}; "
            f"holding until ~/enable true"
        )

    # ---- inputs ---------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _msg_time(self, header) -> float:
        t = time_seconds(header.stamp)
        return t if t > 0 else self._now()  # unstamped publishers: arrival time

    def _on_joints(self, msg: JointState):
        self._joint_msg, self._joint_stamp = msg, self._msg_time(msg.header)

    def _on_image(self, camera: str, msg: Image):
        self._images[camera], self._image_stamps[camera] = msg, self._msg_time(msg.header)

    def _on_event(self, msg: EpisodeEvent):
        with self._lock:
            if msg.kind == EpisodeEvent.STARTED:
                self.loop.episode_started()
                self.get_logger().info(f"episode {msg.episode_index} started: policy state cleared")
            elif msg.kind in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.ENDED, EpisodeEvent.RESET):
                kind = EVENT_KINDS[msg.kind]
                self.loop.episode_over(f"episode {msg.episode_index} {kind}: waiting for the next STARTED")

    def _on_command_source(self, msg: CommandSource):
        reason = "" if msg.source == SelectSource.Request.POLICY else (
            f"{msg.source} in control (driver command source): observing; the plan restarts on hand-back")
        with self._lock:
            changed = bool(reason) != bool(self.loop.human_hold)
            self.loop.set_human_control(reason)
        if changed:
            self.get_logger().info(reason or "handed back to the policy: planning from the current state")

    def _on_enable(self, request, response):
        with self._lock:
            self.loop.set_enabled(request.data)
        response.success = True
        response.message = "running" if request.data else "holding"
        self.get_logger().info(f"enable {request.data}: {response.message}")
        return response

    def _on_reset(self, request, response):
        with self._lock:
            self.loop.reset()
        response.success = True
        response.message = "policy state cleared"
        return response

    def _predict(self, payload):
        joint_msg, images = payload
        obs = self.builder.build(joint_msg, images)
        return self.builder.actions_to_radians(self.model.predict_chunk(obs))

    # ---- the tick -------------------------------------------------------------------
    def _tick_forever(self):
        """Tick at every multiple of the control period on the node clock; a late tick goes to
        the next due time (the control loop counts the steps that passed)."""
        from rclpy.duration import Duration as RosDuration

        clock = self.get_clock()
        period = RosDuration(nanoseconds=int(round(self.period * 1e9)))
        due = clock.now()
        while not self._stopping.is_set() and self.context.ok():
            due = due + period
            now = clock.now()
            if due < now:  # late: skip to the next due time after now
                missed = (now - due).nanoseconds // period.nanoseconds + 1
                due = due + RosDuration(nanoseconds=missed * period.nanoseconds)
            try:
                if not clock.sleep_until(due, context=self.context):
                    return  # context shut down
            except Exception:  # clock type changed (use_sim_time toggled) or shutdown
                if self._stopping.is_set() or not self.context.ok():
                    return
                due = clock.now()
                continue
            if self._stopping.is_set():
                return
            try:
                self._tick()
            except Exception as e:  # a tick must never kill the control thread
                if self._stopping.is_set() or not self.context.ok():
                    return
                self.get_logger().error(f"control tick failed: {type(e).__name__}: {e}")

    def _tick(self):
        stamps = {JOINT_TOPIC: self._joint_stamp}
        stamps.update({image_topic(c): self._image_stamps[c] for c in self.mapping.cameras})
        payload = (self._joint_msg, dict(self._images))
        with self._lock:
            now = self._now()
            result = self.loop.tick(now, Snapshot(stamps, payload))
            counters = replace(self.loop.counters)
        stamp = self.get_clock().now().to_msg()
        if result.state == RUNNING:
            self._publish_plan(time_msg(result.plan_time), result.plan)
        elif result.hold_started and self._joint_msg is not None and not self.loop.human_hold:
            self._publish_hold()  # (not under human control: the driver would ignore it)
        if result.state == ERROR and result.hold_started:
            self.get_logger().error(result.hold_reason)
        self._publish_status(stamp, result, counters)

    def _publish_plan(self, stamp, plan):
        """Point j is the action due at stamp + j periods (stamp = the time step k is due)."""
        msg = JointTrajectory()
        msg.header.stamp = stamp
        msg.joint_names = list(self.mapping.joint_names)
        for k, q in enumerate(plan):
            msg.points.append(
                JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=duration_msg(k * self.period))
            )
        self.traj_pub.publish(msg)
        if self.params["publish_planned_path"]:
            self._publish_path(stamp, plan)

    def _publish_hold(self):
        """One point at the measured position: the arm stops where it is. Stamped 0 (execute on
        receipt, as joint_trajectory_controller reads it): a hold must not depend on the clocks of
        two machines agreeing, and the driver rejects a stamped trajectory that ends in the past."""
        try:
            q = self.builder.state(self._joint_msg)
        except KeyError:
            return
        msg = JointTrajectory()
        msg.joint_names = list(self.mapping.joint_names)
        msg.points.append(
            JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=duration_msg(self.period)))
        self.traj_pub.publish(msg)

    def _publish_path(self, stamp, plan):
        if self._kinematics is None:
            try:
                from . import kinematics

                self._kinematics = kinematics
            except ImportError as e:
                if not self._kinematics_warned:
                    self._kinematics_warned = True
                    self.get_logger().warning(f"policy/planned_path not published: {e}")
                return
        try:
            xyz = self._kinematics.end_effector_positions(plan)
        except Exception as e:  # visualisation must never stop control
            if not self._kinematics_warned:
                self._kinematics_warned = True
                self.get_logger().warning(f"policy/planned_path not published: {type(e).__name__}: {e}")
            return
        m = Marker()
        m.header.stamp = stamp
        m.header.frame_id = self.params["planned_path_frame"]
        m.ns = "planned_path"
        m.id = 0
        m.type = Marker.LINE_STRIP
        m.action = Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x = 0.005
        m.color.r, m.color.g, m.color.b, m.color.a = 0.1, 0.8, 0.2, 1.0
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in xyz]
        self.path_pub.publish(MarkerArray(markers=[m]))

    def _publish_idle(self, reason: str):
        """An IDLE status (no checkpoint loaded yet / warming up): no mode, NaN latency and age, zero counters."""
        s = PolicyStatus(state=IDLE, hold_reason=reason, inference_latency=math.nan, observation_age=math.nan)
        s.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(s)

    def _publish_status(self, stamp, result, c):
        s = PolicyStatus()
        s.header.stamp = stamp
        s.state = result.state
        s.hold_reason = result.hold_reason
        s.mode = self.loop.cfg.mode
        s.inference_latency = float(self.loop.last_latency)
        s.observation_age = float(result.observation_age)
        s.num_blended = int(result.num_blended)
        s.chunk_index = int(result.chunk_index)
        s.steps = c.steps
        s.skipped_stale = c.skipped_stale
        s.skipped_missing = c.skipped_missing
        s.skipped_no_action = c.skipped_no_action
        s.skipped_late = c.skipped_late
        self.status_pub.publish(s)
        if self._tick_rate.tick(time_seconds(stamp)):  # about once a second: /diagnostics
            self.diagnostics_pub.publish(policy_diagnostics(
                self.get_name(), s, self._tick_rate.rate, float(self.params["control_rate_hz"])))

    def destroy_node(self):
        if hasattr(self, "_stopping"):
            self._stopping.set()
            self._ticker.join(timeout=2.0)
        if hasattr(self, "loop"):
            self.loop.close()
        return super().destroy_node()


def run(args=None) -> int:
    """Run the policy node until Ctrl-C; returns the exit code (see main)."""
    try:
        with rclpy.init(args=args):
            try:
                node = PolicyNode()
            except (CheckpointError, ValueError, ParameterException) as e:  # a clear message, no traceback
                print(f"policy: refusing to start: {e}", file=sys.stderr, flush=True)
                return EXIT_CONFIG
            executor = MultiThreadedExecutor(num_threads=2)
            executor.add_node(node)
            try:
                spin_until_shutdown(executor)
            finally:
                executor.shutdown(timeout_sec=2.0)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return EXIT_OK


def main(args=None):
    """Exit codes: 0 stopped (Ctrl-C included), 2 refused configuration (checkpoint or parameters,
    message on stderr). Ends with os._exit: everything is closed by then, and the interpreter's
    finalization of torch/LeRobot takes seconds (5-10 s on a loaded 2-core machine), which makes
    Ctrl-C feel hung."""
    code = run(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
