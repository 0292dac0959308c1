"""SO-101 driver node: joint states, cameras, safe trajectory execution, episode reset.

    ros2 run soarm_driver driver --ros-args --params-file config/driver.yaml -p backend:=mock

All backend calls happen in one control thread, paced at `control_rate_hz`
(simulated backends: stepped by 1/control_rate_hz of sim time per tick, paced by
`real_time_factor` against the wall clock, with /clock published). ROS callbacks only
validate and queue; the control thread applies. The per-tick arm logic lives in
ArmController (ROS-free); interfaces are documented in docs/interfaces.md ("driver").
"""

from __future__ import annotations

import importlib
import json
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from soarm_msgs.msg import EpisodeEvent
from soarm_msgs.srv import ResetEpisode
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from soarm_driver.arm_controller import ArmController
from soarm_driver.backends.base import JOINT_NAMES, BackendError, CameraSpec, RobotBackend
from soarm_driver.command_validation import CommandError, validate_trajectory
from soarm_driver.episodes import EpisodeBook, Event
from soarm_driver.joint_limits import URDF_LOWER, URDF_UPPER, JointLimits
from soarm_driver.messages import camera_msgs, from_time_msg, joint_state, object_markers, to_time_msg
from soarm_driver.schedule import RateSchedule
from soarm_driver.sim.stages import StageTracker

DEFAULT_TASK = "Put the cube in the target zone"
#: Gripper above the table in front of the arm, jaws half open (rad).
DEFAULT_HOME = (0.0, -1.2, 1.3, 1.0, 0.0, 0.3)
BACKENDS = {
    "sim": "soarm_driver.sim.backend:SimBackend",
    "mock": "soarm_driver.backends.mock:MockBackend",
    "feetech": "soarm_driver.backends.feetech:FeetechBackend",
}
#: Parameters under these prefixes are passed to the backend (prefix stripped).
BACKEND_PARAM_PREFIXES = ("sim.", "mock.", "feetech.")
#: Measured positions within this distance (rad) of home end a reset's move.
HOME_TOLERANCE = 0.05


def make_backend(name: str, params: dict) -> RobotBackend:
    """Import and build the backend `name` (lazily: sim pulls MuJoCo, feetech LeRobot)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}': choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        backend_cls = getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ValueError(f"backend '{name}' is not available ({module}): {e}") from e
    return backend_cls(params)


@dataclass
class _Request:
    """A service request handed to the control thread; the callback waits on `done`."""

    kind: str
    request: object
    response: object
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _ResetJob:
    req: _Request
    seed: int
    deadline: float
    randomize: bool = True


class DriverNode(Node):
    def __init__(self):
        super().__init__("driver")
        self._declare_parameters()
        p = self._params
        self.joint_names = list(JOINT_NAMES)
        self.limits = JointLimits(p["joint_lower_limits"], p["joint_upper_limits"], p["max_joint_velocity"])
        self.home_pose = np.asarray(p["home_pose"], dtype=float)
        if self.home_pose.shape != (6,) or not self.limits.contains(self.home_pose):
            raise ValueError(f"home_pose must be 6 values inside the joint limits, got {p['home_pose']}")
        self.arm = ArmController(self.limits, p["command_timeout"])
        self.cameras = self._camera_specs()
        self.period = 1.0 / p["control_rate_hz"]

        # state shared between threads (guarded by _lock)
        self._lock = threading.Lock()
        self._state = "CONNECTING"
        self._detail = ""
        self._resetting = False
        self._sim_time = 0.0
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._counters = {"accepted": 0, "rejected": 0, "watchdog_trips": 0, "reconnects": 0}
        self._last_reject_log = 0.0
        self._last_reject_why = ""
        self._last_error = ""
        self._reset_job: _ResetJob | None = None

        # The backend is built, used and closed by the control thread only (MuJoCo's
        # GL context and the serial port belong to one thread).
        self._running = True
        self._built = threading.Event()
        self._ready = threading.Event()
        self._build_error: BaseException | None = None
        self._thread = threading.Thread(target=self._control_thread, name="driver_control", daemon=True)
        self._thread.start()
        self._built.wait()
        if self._build_error is not None:
            self._thread.join()
            raise self._build_error
        self.simulated = bool(self.backend.simulated_time)
        # episode bookkeeping (control thread only)
        self.episodes = EpisodeBook(p["task"] or getattr(self.backend, "task_text", "") or DEFAULT_TASK)
        # task stages of the running episode (sim task only; None: EpisodeEvent.stages stays 0)
        self.stages = StageTracker(self.backend) if StageTracker.supports(self.backend) else None

        sensor = qos_profile_sensor_data
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_state = self.create_publisher(JointState, "joint_states", 10)
        self.pub_cmd = self.create_publisher(JointState, "joint_commands", 10)
        self.pub_events = self.create_publisher(EpisodeEvent, "episode_events", latched)
        self.pub_objects = self.create_publisher(MarkerArray, "scene/objects", 10)
        status_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_status = self.create_publisher(String, "~/status", status_qos)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if self.simulated else None
        self.pub_images = {c.name: self.create_publisher(Image, f"cameras/{c.name}/image_raw", sensor) for c in self.cameras}
        self.pub_infos = {c.name: self.create_publisher(CameraInfo, f"cameras/{c.name}/camera_info", sensor) for c in self.cameras}

        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.create_service(ResetEpisode, "reset_episode", self._on_reset, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=MutuallyExclusiveCallbackGroup())

        self._ready.set()
        self.get_logger().info(
            f"driver up: backend={p['backend']} control {p['control_rate_hz']:g} Hz, states {p['state_rate_hz']:g} Hz, "
            f"cameras {[f'{c.name} {c.width}x{c.height}@{c.fps:g}' for c in self.cameras]}"
            + (f", simulated time (real_time_factor {p['real_time_factor']:g}, /clock)" if self.simulated else "")
        )

    # ------------------------------------------------------------------ parameters
    def _number(self, name, default, description):
        """Declare a numeric parameter that accepts 30 as well as 30.0 (YAML, -p)."""
        value = self.declare_parameter(
            name, default, ParameterDescriptor(description=description, dynamic_typing=True)
        ).value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter {name} must be a number, got {value!r}")
        return type(default)(value)

    def _declare(self, name, default, description):
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            self._params[name] = self._number(name, default, description)
        else:
            self._params[name] = self.declare_parameter(name, default, ParameterDescriptor(description=description)).value

    def _declare_parameters(self):
        self._params: dict = {}
        d = self._declare
        d("backend", "sim", "Robot backend: 'sim' (MuJoCo, default), 'mock' (kinematic, synthetic images), 'feetech' (real SO-101).")
        d("port", "/dev/ttyACM0", "feetech: serial port of the follower arm's motor bus.")
        d("calibration_file", "", "feetech: LeRobot calibration JSON of the follower arm (from lerobot-calibrate).")
        d("camera_names", ["front", "wrist"], "Cameras to publish; each has cameras.<name>.{width,height,fps,source}.")
        d("state_rate_hz", 30.0, "Rate of joint_states (Hz).")
        d("control_rate_hz", 60.0, "Control loop rate (Hz): trajectory sampling, safety limits, joint_commands.")
        d("joint_lower_limits", list(URDF_LOWER), "Lower joint limits (rad), joint order shoulder_pan..gripper.")
        d("joint_upper_limits", list(URDF_UPPER), "Upper joint limits (rad), joint order shoulder_pan..gripper.")
        d("max_joint_velocity", [3.0] * 6, "Maximum joint speed (rad/s), one value or one per joint.")
        d("command_timeout", 0.5, "Watchdog (s): hold when a command stream stops this long mid-motion; 0 disables.")
        d("home_pose", list(DEFAULT_HOME), "Home pose (rad): start pose of sim/mock, reached on reset_episode.")
        d("home_speed", 0.8, "Speed (rad/s, fastest joint) of the move to home on reset_episode.")
        d("real_time_factor", 1.0, "Simulated backends: sim seconds per wall second (pacing of the simulation).")
        d("task", "", "Task text of episodes when reset_episode gives none; empty: the backend's task_text, else DEFAULT_TASK.")
        d("reconnect_period", 2.0, "Seconds between reconnection attempts after a backend error.")
        d("status_period", 1.0, "Seconds between ~/status messages (also published on every change).")
        if self._params["control_rate_hz"] <= 0 or self._params["state_rate_hz"] <= 0:
            raise ValueError("control_rate_hz and state_rate_hz must be > 0")
        if self._params["real_time_factor"] <= 0:
            raise ValueError("real_time_factor must be > 0")
        # Backend-specific parameters given in the params file / command line.
        overrides = getattr(self, "_parameter_overrides", {})
        self._backend_extra = {}
        for name in sorted(overrides):
            if name.startswith(BACKEND_PARAM_PREFIXES):
                value = self.declare_parameter(
                    name, overrides[name].value, ParameterDescriptor(description=f"Backend parameter '{name}'.", dynamic_typing=True)
                ).value
                backend, key = name.split(".", 1)
                if backend == self._params["backend"]:
                    self._backend_extra[key] = value

    def _camera_specs(self) -> list[CameraSpec]:
        specs = []
        for name in self._params["camera_names"]:
            if not name:
                continue
            pre = f"cameras.{name}."
            desc = ParameterDescriptor
            w = self._number(pre + "width", 640, f"Camera {name}: image width (px).")
            h = self._number(pre + "height", 480, f"Camera {name}: image height (px).")
            fps = self._number(pre + "fps", 30.0, f"Camera {name}: frame rate (Hz).")
            src = self.declare_parameter(
                pre + "source", "", desc(description=f"Camera {name}: MuJoCo camera name (sim) or OpenCV index/path (feetech).")
            ).value
            if w <= 0 or h <= 0 or fps <= 0:
                raise ValueError(f"camera {name}: width, height and fps must be > 0")
            specs.append(CameraSpec(name=name, width=int(w), height=int(h), fps=float(fps), source=str(src)))
        return specs

    def _backend_params(self) -> dict:
        p = self._params
        return {
            "cameras": list(self.cameras),
            "control_period": 1.0 / p["control_rate_hz"],
            "home_pose": list(p["home_pose"]),
            "joint_lower_limits": list(p["joint_lower_limits"]),
            "joint_upper_limits": list(p["joint_upper_limits"]),
            "port": p["port"],
            "calibration_file": p["calibration_file"],
            "real_time_factor": p["real_time_factor"],
            **self._backend_extra,
        }

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """The driver clock (s): sim time for simulated backends, else the node clock."""
        if self.simulated:
            with self._lock:
                return self._sim_time
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ ROS callbacks
    def _reject(self, why: str) -> None:
        with self._lock:
            self._counters["rejected"] += 1
        t = time.monotonic()
        # A 30 Hz stream of the same bad command must not flood the log: repeats once a second.
        if why != self._last_reject_why or t - self._last_reject_log > 1.0:
            self._last_reject_log, self._last_reject_why = t, why
            self.get_logger().error(f"joint_trajectory rejected, arm not moved: {why}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            stamp = from_time_msg(msg.header.stamp)
            cmd = validate_trajectory(
                msg.joint_names,
                [(from_time_msg(pt.time_from_start), list(pt.positions), list(pt.velocities)) for pt in msg.points],
                stamp=stamp,
            )
        except CommandError as e:
            self._reject(str(e))
            return
        with self._lock:
            state, detail, resetting = self._state, self._detail, self._resetting
        if state != "ENABLED":
            self._reject({"DISABLED": "arm disabled: call /driver/enable first"}.get(state, f"driver state is {state}: {detail}"))
            return
        if resetting:
            self._reject("reset_episode in progress")
            return
        self._commands.put((cmd, self.now()))

    def _submit(self, kind: str, request, response, timeout: float):
        job = _Request(kind, request, response)
        self._requests.put(job)
        if not job.done.wait(timeout):
            response.success = False
            response.message = f"{kind} did not complete within {timeout:.0f} s"
        return job.response

    def _on_enable(self, request, response):
        return self._submit("enable", request, response, 10.0)

    def _on_reset(self, request, response):
        return self._submit("reset", request, response, 180.0)

    # ------------------------------------------------------------------ control thread
    def _set_state(self, state: str, detail: str = "") -> None:
        with self._lock:
            changed = (state, detail) != (self._state, self._detail)
            self._state, self._detail = state, detail
        if changed:
            self._publish_status()

    def _publish_status(self) -> None:
        with self._lock:
            status = {
                "state": self._state,
                "detail": self._detail,
                "backend": self._params["backend"],
                "resetting": self._resetting,
                "episode_index": self.episodes.index,
                # task stages of the running episode (EpisodeEvent STAGE_* bits); null: the backend cannot tell
                "stages": None if self.stages is None else (self.stages.stages if self.episodes.running else 0),
                "last_error": self._last_error,
                **self._counters,
            }
        self.pub_status.publish(String(data=json.dumps(status)))

    def _control_thread(self) -> None:
        try:
            self.backend = make_backend(self._params["backend"], self._backend_params())
        except BaseException as e:
            self._build_error = e
            self._built.set()
            return
        self._built.set()
        self._ready.wait()  # publishers exist
        try:
            self._control_loop()
        finally:
            try:
                self.backend.disconnect()
            except Exception as e:
                self.get_logger().warning(f"backend disconnect: {e}")

    def _control_loop(self) -> None:
        period_wall = self.period / (self._params["real_time_factor"] if self.simulated else 1.0)
        next_wall = time.monotonic()
        last_now = None
        next_connect = 0.0
        next_status = 0.0
        self._state_schedule = RateSchedule(self._params["state_rate_hz"], slack=self.period)
        self._frame_schedules = {c.name: RateSchedule(c.fps, slack=self.period) for c in self.cameras}
        self._prev_q = None
        connected = False
        while self._running and self.context.ok():
            next_wall += period_wall
            delay = next_wall - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -5 * period_wall:
                next_wall = time.monotonic()  # fell far behind: do not burst
            wall = time.monotonic()
            if wall >= next_status:
                next_status = wall + self._params["status_period"]
                self._publish_status()
            if not connected:
                self._serve_requests(None)
                if wall >= next_connect:
                    next_connect = wall + self._params["reconnect_period"]
                    connected = self._connect()
                    last_now = None
                continue
            try:
                if self.simulated:
                    self.backend.advance(self.period)
                    with self._lock:
                        self._sim_time += self.period
                    now = self._sim_time
                    self.pub_clock.publish(Clock(clock=to_time_msg(now)))
                    dt = self.period
                else:
                    now = self.now()
                    dt = self.period if last_now is None else min(max(now - last_now, 0.0), 2 * self.period)
                    self.backend.advance(dt)
                last_now = now
                self._tick(now, dt)
            except BackendError as e:
                connected = False
                self._on_backend_error(str(e))
                next_connect = time.monotonic() + self._params["reconnect_period"]
            except Exception as e:  # never die: report, hold, reconnect
                if not (self._running and self.context.ok()):
                    break  # shutting down (Ctrl-C invalidates the context under us)
                connected = False
                self.get_logger().error(f"unexpected error in the control loop: {type(e).__name__}: {e}")
                self._on_backend_error(f"{type(e).__name__}: {e}")
                next_connect = time.monotonic() + self._params["reconnect_period"]

    def _connect(self) -> bool:
        try:
            self.backend.connect()
            q = self.backend.read_positions()
            enabled = bool(self.backend.enabled_on_start)
            self.backend.set_torque(enabled)
        except Exception as e:  # BackendError, or a backend bug: never let the control thread die
            if not isinstance(e, BackendError):
                e = f"{type(e).__name__}: {e}"
            self._set_state("ERROR", f"connect failed: {e}")
            self.get_logger().error(f"backend connect failed (retrying every {self._params['reconnect_period']:g} s): {e}")
            try:
                self.backend.disconnect()
            except Exception:
                pass
            return False
        self.arm.set_enabled(enabled, q)
        self._prev_q = None
        with self._lock:
            if self._counters["reconnects"] or self._state == "ERROR":
                self._counters["reconnects"] += 1
        self._set_state("ENABLED" if enabled else "DISABLED")
        self.get_logger().info(f"backend connected, torque {'on' if enabled else 'off (call /driver/enable)'}")
        return True

    def _on_backend_error(self, detail: str) -> None:
        self.get_logger().error(f"backend error, holding and reconnecting: {detail}")
        with self._lock:
            self._last_error = detail
        self.arm.hold()
        self._drain_commands()
        self._fail_reset(f"backend error: {detail}")
        self._set_state("ERROR", detail)
        try:
            self.backend.disconnect()
        except Exception:
            pass

    def _drain_commands(self) -> None:
        while True:
            try:
                self._commands.get_nowait()
            except queue.Empty:
                return

    def _tick(self, now: float, dt: float) -> None:
        q = self.backend.read_positions()
        v = self.backend.read_velocities()
        if v is None:
            v = np.zeros(6) if self._prev_q is None or dt <= 0 else (q - self._prev_q) / dt
        self._prev_q = q
        self._serve_requests(q, now)
        if self.arm.enabled:
            while True:
                try:
                    cmd, received = self._commands.get_nowait()
                except queue.Empty:
                    break
                if self._reset_job is None:
                    self.arm.command(cmd, received)
                    with self._lock:
                        self._counters["accepted"] += 1
            step = self.arm.step(now, dt)
            if step.watchdog_tripped:
                with self._lock:
                    self._counters["watchdog_trips"] += 1
                self.get_logger().warning(
                    f"watchdog: command stream stopped for > {self.arm.watchdog.timeout:g} s mid-motion; holding"
                )
            self.backend.write_goal_positions(step.goal)
            self.pub_cmd.publish(joint_state(self.joint_names, now, step.goal))
        else:
            self._drain_commands()
            self.arm.sync(q)
        self._advance_reset(q, now)
        if self.stages is not None and self.episodes.running:
            before = self.stages.stages
            if self.stages.update() != before:
                self._publish_status()
        if self._state_schedule.due(now):
            self.pub_state.publish(joint_state(self.joint_names, now, q, v))
            poses = self.backend.object_poses()
            if poses:
                self.pub_objects.publish(object_markers(poses, now))
            event = self.episodes.outcome(self.backend.task_outcome())
            if event is not None:
                self._event(event, now)
                self.get_logger().info(f"episode {event.episode_index}: {event.kind}")
        due = [c for c in self.cameras if self._frame_schedules[c.name].due(now)]
        if due:
            for name, frame in self.backend.capture_frames(due).items():
                image, info = camera_msgs(name, frame.image, frame.intrinsics, now)
                self.pub_images[name].publish(image)
                self.pub_infos[name].publish(info)

    def _event(self, event: Event, now: float) -> None:
        ev = EpisodeEvent()
        ev.header.stamp = to_time_msg(now)
        ev.episode_index = event.episode_index
        ev.task = event.task
        ev.kind = getattr(EpisodeEvent, event.kind)
        ev.detail = event.detail
        ev.seed = event.seed if self.simulated else -1  # a seeded scene only in simulation
        if self.stages is not None and event.kind in ("SUCCESS", "FAILURE", "ENDED"):
            ev.stages = self.stages.stages
        self.pub_events.publish(ev)

    # ------------------------------------------------------------------ services (control thread)
    def _serve_requests(self, q: np.ndarray | None, now: float = 0.0) -> None:
        while True:
            try:
                job: _Request = self._requests.get_nowait()
            except queue.Empty:
                return
            if job.kind == "enable":
                self._do_enable(job, q)
            else:
                self._start_reset(job, q, now)

    def _do_enable(self, job: _Request, q) -> None:
        want = bool(job.request.data)
        if q is None:
            job.response.success = False
            with self._lock:
                job.response.message = f"backend not connected ({self._detail})"
            job.done.set()
            return
        try:
            self.backend.set_torque(want)
        except BackendError as e:
            job.response.success, job.response.message = False, f"torque {'on' if want else 'off'} failed: {e}"
            job.done.set()
            raise
        self.arm.set_enabled(want, q)
        self._drain_commands()
        if not want:
            self._fail_reset("arm disabled during reset")
        self._set_state("ENABLED" if want else "DISABLED")
        job.response.success, job.response.message = True, "torque on" if want else "torque off"
        self.get_logger().info(f"/driver/enable: {job.response.message}")
        job.done.set()

    def _start_reset(self, job: _Request, q, now: float) -> None:
        resp = job.response
        if q is None or not self.arm.enabled or self._reset_job is not None:
            resp.success = False
            with self._lock:
                state, detail = self._state, self._detail
            if self._reset_job is not None:
                resp.message = "a reset is already in progress"
            elif state == "DISABLED":
                resp.message = "arm disabled: call /driver/enable first"
            else:
                resp.message = f"driver state {state}: {detail}"
            job.done.set()
            return
        req = job.request
        seed = int(req.seed) if req.seed >= 0 else int(np.random.default_rng().integers(0, 2**31 - 1))
        for event in self.episodes.begin_reset(req.task, seed):
            self._event(event, now)
        duration = self.arm.move_to(self.home_pose, self._params["home_speed"], now)
        self._drain_commands()
        with self._lock:
            self._resetting = True
        self._reset_job = _ResetJob(job, seed, deadline=now + duration + 10.0, randomize=bool(req.randomize))

    def _advance_reset(self, q: np.ndarray, now: float) -> None:
        job = self._reset_job
        if job is None:
            return
        home_reached = self.arm.reached(self.home_pose) and bool(np.all(np.abs(q - self.home_pose) <= HOME_TOLERANCE))
        if not home_reached and now < job.deadline:
            return
        if not home_reached:
            self.get_logger().warning(
                f"reset: measured pose still {np.max(np.abs(q - self.home_pose)):.3f} rad from home; starting anyway"
            )
        self.backend.reset_scene(job.seed, job.randomize)
        if self.stages is not None:
            self.stages.reset()
        self._reset_job = None
        with self._lock:
            self._resetting = False
        self._event(self.episodes.start(job.seed), now)
        resp = job.req.response
        resp.success, resp.message = True, f"episode {self.episodes.index} started (seed {job.seed})"
        resp.episode_index, resp.seed_used = self.episodes.index, job.seed
        self.get_logger().info(resp.message)
        job.req.done.set()

    def _fail_reset(self, why: str) -> None:
        job, self._reset_job = self._reset_job, None
        with self._lock:
            self._resetting = False
        if job is not None:
            job.req.response.success, job.req.response.message = False, why
            job.req.done.set()

    def shutdown(self) -> None:
        self._running = False
        self._ready.set()
        self._thread.join(timeout=5.0)


def main(argv=None):
    rclpy.init(args=argv)
    node = None
    try:
        node = DriverNode()
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as e:  # bad parameters: a clear message, no traceback
        print(f"driver: invalid configuration: {e}", flush=True)
        return 2
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
