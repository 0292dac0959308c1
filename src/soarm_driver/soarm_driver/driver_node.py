"""SO-101 driver node: joint states, cameras, safe trajectory execution, episode reset.

    ros2 run soarm_driver driver --ros-args --params-file config/driver.yaml -p backend:=mock

Wiring only: parameters, publishers, subscriptions, services and a control thread
(`control_thread.ControlThread`) that calls `DriverCore.tick` (core.py: backend, arm
controller, episodes, reset, watchdog, enable, reconnection) once per control period and
publishes what it returns. The thread is paced at `control_rate_hz` on the wall clock
(simulated backends: scaled by `real_time_factor`, each tick one control period of sim
time, /clock published); it builds, uses and closes the backend (MuJoCo's GL context and
the serial port belong to one thread). Interfaces: docs/interfaces.md ("driver").
"""

from __future__ import annotations

import sys

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from diagnostic_msgs.msg import DiagnosticArray
from soarm_msgs.msg import CommandSource, DriverStatus, EpisodeEvent
from soarm_msgs.srv import ResetEpisode, SelectSource
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from soarm_driver.backends import make_backend
from soarm_driver.backends.base import JOINT_NAMES, CameraSpec
from soarm_driver.control_thread import ControlThread
from soarm_driver.command_arbiter import HANDOVER_SPEED, HANDOVER_TOLERANCE, HUMAN, POLICY
from soarm_driver.core import (
    BUS_ERROR_GRACE, MAX_TRAJECTORY_DURATION, MAX_TRAJECTORY_POINTS, PATH_TOLERANCE, PATH_TOLERANCE_DURATION,
    DriverConfig, DriverCore, TickOutput,
)
from soarm_driver.joint_limits import JointLimits
from soarm_driver.diagnostics import driver_diagnostics
from soarm_driver.messages import (
    TrajectoryPoints, camera_msgs, command_source, driver_status, episode_event, joint_state, object_markers,
)
from soarm_driver.ros_support import (
    EXIT_CONFIG, EXIT_OK, core_log, declare_parameter, declare_parameters, spin_until_shutdown, time_msg, time_seconds,
)
from soarm_driver.robot import HOME_POSE, LOWER_LIMITS, UPPER_LIMITS

#: Parameters under these prefixes are passed to the backend (prefix stripped).
BACKEND_PARAM_PREFIXES = ("sim.", "mock.", "feetech.")
#: How long a service callback waits for the control thread's answer (s).
ENABLE_TIMEOUT, RESET_TIMEOUT = 10.0, 180.0

PARAMETERS = [
    ("backend", "sim",
     "Robot backend: 'sim' (MuJoCo, default), 'mock' (kinematic, synthetic images), 'feetech' (real SO-101)."),
    ("port", "/dev/ttyACM0", "feetech: serial port of the follower arm's motor bus."),
    ("calibration_file", "", "feetech: LeRobot calibration JSON of the follower arm (from lerobot-calibrate)."),
    ("camera_names", ["front", "wrist"], "Cameras to publish; each has cameras.<name>.{width,height,fps,source}."),
    ("state_rate_hz", 30.0, "Rate of joint_states (Hz)."),
    ("control_rate_hz", 60.0, "Control loop rate (Hz): trajectory sampling, safety limits, joint_commands."),
    ("joint_lower_limits", list(LOWER_LIMITS), "Lower joint limits (rad), joint order shoulder_pan..gripper."),
    ("joint_upper_limits", list(UPPER_LIMITS), "Upper joint limits (rad), joint order shoulder_pan..gripper."),
    ("max_joint_velocity", [3.0] * 6, "Maximum joint speed (rad/s), one value or one per joint."),
    ("command_timeout", 0.5, "Watchdog (s): hold when a command stream stops this long mid-motion; 0 disables."),
    ("home_pose", list(HOME_POSE), "Home pose (rad): start pose of sim/mock, reached on reset_episode."),
    ("home_speed", 0.8, "Speed (rad/s, fastest joint) of the move to home on reset_episode."),
    ("real_time_factor", 1.0, "Simulated backends: sim seconds per wall second (pacing of the simulation)."),
    ("task", "",
     "Task text of episodes when reset_episode gives none; empty: the backend's task_text, else DEFAULT_TASK."),
    ("reconnect_period", 2.0, "Seconds between reconnection attempts after a backend error."),
    ("status_period", 1.0, "Seconds between ~/status messages (also published on every change) and /diagnostics."),
    ("path_tolerance", list(PATH_TOLERANCE),
     "Path tolerance (rad), 1 or 6 values shoulder_pan..gripper, 0 = joint not checked: a joint measured farther "
     "than this from its goal for longer than path_tolerance_duration makes the arm hold at its measured position "
     "(~/status.hold_reason) until /driver/enable true or reset_episode."),
    ("path_tolerance_duration", PATH_TOLERANCE_DURATION,
     "Seconds a joint may stay out of path_tolerance (tracking lag, a brief push) before the arm holds."),
    ("bus_error_grace", BUS_ERROR_GRACE,
     "Seconds of backend read/write errors ridden through with torque on and the goal unchanged; errors lasting "
     "longer put the driver in ERROR (0: every error does)."),
    ("max_trajectory_points", MAX_TRAJECTORY_POINTS,
     "Most points in one joint_trajectory; a longer one is rejected (0: no limit)."),
    ("max_trajectory_duration", MAX_TRAJECTORY_DURATION,
     "Latest end of a joint_trajectory, in seconds after its receipt (a far-future stamp or a long trajectory); "
     "a later one is rejected (0: no limit)."),
    ("command_source", POLICY,
     f"Command source followed at start: '{POLICY}' (joint_trajectory) or '{HUMAN}' (joint_trajectory/human); "
     "switched with ~/select_source."),
    ("handover_speed", HANDOVER_SPEED,
     "Take-over: speed (rad/s, every joint) at which the follower is brought to the leader's pose before the "
     "human's commands are followed as sent (also limited by max_joint_velocity)."),
    ("handover_tolerance", HANDOVER_TOLERANCE,
     "Take-over: the human's commands are followed as sent once the follower's goal is within this (rad, every "
     "joint) of the leader's pose."),
]
#: Per camera, `cameras.<name>.<key>`, in CameraSpec's field order.
CAMERA_PARAMETERS = [
    ("width", 640, "image width (px)."),
    ("height", 480, "image height (px)."),
    ("fps", 30.0, "frame rate (Hz)."),
    ("source", "", "MuJoCo camera name (sim) or OpenCV index/path (feetech)."),
]


class DriverNode(Node):
    """The `driver` node: PARAMETERS -> DriverConfig, topics and services -> DriverCore (module docstring)."""

    def __init__(self):
        super().__init__("driver")
        self.params = p = declare_parameters(self, PARAMETERS)
        self.cameras = self._camera_specs(p["camera_names"])
        self.config = DriverConfig(
            limits=JointLimits(p["joint_lower_limits"], p["joint_upper_limits"], p["max_joint_velocity"]),
            home_pose=p["home_pose"], command_timeout=p["command_timeout"], home_speed=p["home_speed"],
            control_rate_hz=p["control_rate_hz"], state_rate_hz=p["state_rate_hz"], cameras=self.cameras,
            task=p["task"], reconnect_period=p["reconnect_period"], backend=p["backend"],
            path_tolerance=p["path_tolerance"], path_tolerance_duration=p["path_tolerance_duration"],
            bus_error_grace=p["bus_error_grace"], max_trajectory_points=p["max_trajectory_points"],
            max_trajectory_duration=p["max_trajectory_duration"], status_period=p["status_period"],
            real_time_factor=p["real_time_factor"], command_source=p["command_source"],
            handover_speed=p["handover_speed"], handover_tolerance=p["handover_tolerance"],
        )
        backend_params = {
            "cameras": list(self.cameras), "control_period": self.config.period, "home_pose": list(p["home_pose"]),
            "joint_lower_limits": list(p["joint_lower_limits"]), "joint_upper_limits": list(p["joint_upper_limits"]),
            "port": p["port"], "calibration_file": p["calibration_file"], "real_time_factor": p["real_time_factor"],
            **self._backend_parameters(p["backend"]),
        }
        # The control thread builds the backend and the core, then waits for the publishers (run()).
        self._control = ControlThread(lambda: DriverCore(self.config, make_backend(p["backend"], backend_params),
                                                         core_log(self.get_logger())), name="driver_control")
        self.core: DriverCore = self._control.target
        simulated = self.core.simulated

        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        status_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sensor = qos_profile_sensor_data
        self.pub_state = self.create_publisher(JointState, "joint_states", 10)
        self.pub_cmd = self.create_publisher(JointState, "joint_commands", 10)
        self.pub_events = self.create_publisher(EpisodeEvent, "episode_events", latched)
        self.pub_objects = self.create_publisher(MarkerArray, "scene/objects", 10)
        self.pub_status = self.create_publisher(DriverStatus, "~/status", status_qos)
        self.pub_source = self.create_publisher(CommandSource, "~/command_source", status_qos)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if simulated else None
        self.pub_images = {c.name: self.create_publisher(Image, f"cameras/{c.name}/image_raw",
                                                         sensor) for c in self.cameras}
        self.pub_infos = {c.name: self.create_publisher(CameraInfo, f"cameras/{c.name}/camera_info",
                                                        sensor) for c in self.cameras}
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(JointTrajectory, "joint_trajectory/human", self._on_human_trajectory, 10)
        self.create_service(SelectSource, "~/select_source", self._on_select,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(ResetEpisode, "reset_episode", self._on_reset,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=MutuallyExclusiveCallbackGroup())
        self._control.run(self.core.wall_period, self._control_step)
        self.get_logger().info(
            f"driver up: backend={p['backend']} control {p['control_rate_hz']:g} Hz, states {p['state_rate_hz']:g} Hz, "
            f"cameras {[f'{c.name} {c.width}x{c.height}@{c.fps:g}' for c in self.cameras]}"
            + (f", simulated time (real_time_factor {p['real_time_factor']:g}, /clock)" if simulated else "")
        )

    # ------------------------------------------------------------------ parameters
    def _camera_specs(self, names) -> list[CameraSpec]:
        """One CameraSpec per name from its `cameras.<name>.*` parameters (CAMERA_PARAMETERS)."""
        return [CameraSpec(name, *(declare_parameter(self, f"cameras.{name}.{key}", default, f"Camera {name}: {desc}")
                                   for key, default, desc in CAMERA_PARAMETERS)) for name in filter(None, names)]

    def _backend_parameters(self, backend: str) -> dict:
        """The `<backend>.*` parameters given in the params file / command line, prefix stripped."""
        overrides = getattr(self, "_parameter_overrides", {})
        extra = {}
        for name in sorted(n for n in overrides if n.startswith(BACKEND_PARAM_PREFIXES)):
            value = self.declare_parameter(name, overrides[name].value, ParameterDescriptor(
                description=f"Backend parameter '{name}'.", dynamic_typing=True)).value
            prefix, key = name.split(".", 1)
            if prefix == backend:
                extra[key] = value
        return extra

    # ------------------------------------------------------------------ ROS callbacks
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self.core.command(msg.joint_names, TrajectoryPoints(msg.points), time_seconds(msg.header.stamp), self._now())

    def _on_human_trajectory(self, msg: JointTrajectory) -> None:
        self.core.command(msg.joint_names, TrajectoryPoints(msg.points), time_seconds(msg.header.stamp), self._now(),
                          source=HUMAN)

    def _on_select(self, request, response):
        answer = self.core.request_select(request.source, request.reason)
        answer.wait(ENABLE_TIMEOUT)
        response.success, response.message, response.previous = answer.success, answer.message, answer.previous
        return response

    def _on_enable(self, request, response):
        answer = self.core.request_enable(request.data)
        answer.wait(ENABLE_TIMEOUT)
        response.success, response.message = answer.success, answer.message
        return response

    def _on_reset(self, request, response):
        answer = self.core.request_reset(request.task, request.seed, request.randomize)
        answer.wait(RESET_TIMEOUT)
        response.success, response.message = answer.success, answer.message
        response.episode_index, response.seed_used = answer.episode_index, answer.seed_used
        return response

    # ------------------------------------------------------------------ control thread
    def _control_step(self, wall: float) -> bool:
        """One tick of the core, its output published; False once the context is down (Ctrl-C)."""
        out = self.core.tick(wall, self._now())
        try:
            self._publish(out)
        except Exception as e:
            if not self.context.ok():
                return False  # shutting down (Ctrl-C invalidates the context under us)
            self.get_logger().error(f"publishing failed: {type(e).__name__}: {e}")
        return self.context.ok()

    def _publish(self, out: TickOutput) -> None:
        if out.clock is not None:
            self.pub_clock.publish(Clock(clock=time_msg(out.clock)))
        for event in out.events:
            self.pub_events.publish(episode_event(event, out.now))
        if out.command is not None:
            self.pub_cmd.publish(joint_state(JOINT_NAMES, out.now, out.command))
        if out.joint_state is not None:
            self.pub_state.publish(joint_state(JOINT_NAMES, out.now, *out.joint_state))
        if out.objects:
            self.pub_objects.publish(object_markers(out.objects, out.now))
        for name, frame in out.frames.items():
            image, info = camera_msgs(name, frame.image, frame.intrinsics, out.now)
            self.pub_images[name].publish(image)
            self.pub_infos[name].publish(info)
        if out.status is not None:
            self.pub_status.publish(driver_status(out.status, out.now))
        if out.command_source is not None:
            self.pub_source.publish(command_source(out.command_source, out.now))
        if out.tick_rate is not None:
            self.pub_diagnostics.publish(driver_diagnostics(self.get_name(), out.status, self.config.control_rate_hz,
                                                            1.0 / self.core.wall_period, out.tick_rate, out.now))

    def destroy_node(self):
        if hasattr(self, "_control"):
            self._control.stop(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> int:
    """Run the driver until Ctrl-C. Exit codes: 0 stopped, 2 refused configuration (on stderr)."""
    try:
        with rclpy.init(args=args):
            try:
                node = DriverNode()
            except (ValueError, ParameterException) as e:  # bad parameters: a clear message, no traceback
                print(f"driver: invalid configuration: {e}", file=sys.stderr, flush=True)
                return EXIT_CONFIG
            executor = MultiThreadedExecutor(num_threads=3)
            executor.add_node(node)
            try:
                spin_until_shutdown(executor)
            finally:
                executor.shutdown(timeout_sec=2.0)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
