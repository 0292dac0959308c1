"""The contract between the driver and a robot backend.

A backend owns the robot (or its simulation) and nothing else: it knows no ROS.
The driver core (soarm_driver.core) calls it from one thread only: `connect()` (again
after a failure), then once per control tick, in this order::

    backend.advance(dt)                      # sim/mock: integrate dt seconds
    q = backend.read_positions()             # radians, JOINT_NAMES order
    v = backend.read_velocities()            # rad/s, or None (the driver differentiates q)
    backend.set_torque(on)                   # only when /driver/enable is called
    backend.write_goal_positions(goal)       # radians, already safety-limited (torque on only)
    backend.reset_scene(seed, randomize)     # only when a reset_episode reaches home
    poses = backend.object_poses()           # when joint_states are due
    outcome = backend.task_outcome()         # when joint_states are due
    frames = backend.capture_frames(due)     # the CameraSpecs whose frame is due this tick

All joint values are SI: radians for every joint, the gripper included (the
angle of the moving jaw, as in the SO-101 URDF; closed at its lower limit, larger is open).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from soarm_driver.robot import JOINT_NAMES  # noqa: F401 - re-exported: the backends' joint order


class BackendError(RuntimeError):
    """The robot cannot be read or commanded right now (port gone, motor silent...).

    The driver catches it, reports an error state, holds and retries `connect()`.
    """


@dataclass
class CameraSpec:
    """One configured camera."""

    name: str
    width: int = 640
    height: int = 480
    fps: float = 30.0
    #: Backend-specific source: a MuJoCo camera name (sim), an OpenCV index or
    #: device path (feetech); unused by mock.
    source: str = ""

    def __post_init__(self):
        if not (self.width > 0 and self.height > 0 and self.fps > 0):
            raise ValueError(f"camera {self.name}: width, height and fps must be > 0 "
                             f"(cameras.{self.name}.width/height/fps), got {self.width}x{self.height} at {self.fps}")


@dataclass
class CameraFrame:
    """One captured frame: HxWx3 uint8 RGB and its intrinsics."""

    image: np.ndarray
    #: 3x3 pinhole intrinsic matrix K (row-major), pixels.
    intrinsics: np.ndarray = field(default_factory=lambda: np.eye(3))


class RobotBackend(abc.ABC):
    """Abstract robot: position-controlled joints, cameras, optional task."""

    #: True when the backend's time is simulated: the driver then advances it by exactly
    #: one control period per tick, publishes that time on /clock, and paces the ticks at
    #: `real_time_factor` sim seconds per wall second (slower when the backend cannot keep up).
    simulated_time: bool = False
    #: Whether torque is on right after connect() (real hardware: False).
    enabled_on_start: bool = True
    #: Natural-language task of the backend's scene (sim), used for episodes when the
    #: driver's `task` parameter is empty; "" = the driver's default task text.
    task_text: str = ""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the robot. Raises BackendError when it cannot."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the robot; safe to call twice."""

    @abc.abstractmethod
    def read_positions(self) -> np.ndarray:
        """Measured joint positions (radians), shape (6,), JOINT_NAMES order."""

    def read_velocities(self) -> np.ndarray | None:
        """Measured joint velocities (rad/s) or None when the robot has none."""
        return None

    @abc.abstractmethod
    def write_goal_positions(self, goal: np.ndarray) -> None:
        """Send goal positions (radians). The caller has applied every limit."""

    @abc.abstractmethod
    def set_torque(self, enabled: bool) -> None:
        """Torque on (the arm holds/moves) or off (limp)."""

    def advance(self, dt: float) -> None:
        """Advance the world by dt seconds (sim and mock); real robots ignore it."""

    def capture_frames(self, cameras: list[CameraSpec]) -> dict[str, CameraFrame]:
        """One frame of each of `cameras` (those due this tick), {camera name: frame}."""
        return {}

    def reset_scene(self, seed: int, randomize: bool) -> None:
        """Rebuild the scene from `seed` (sim); a no-op on real hardware."""

    def object_poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Poses of task objects in the world frame, {name: (xyz, quat_wxyz)} (sim only).

        The driver publishes them on `scene/objects` (visualization_msgs/MarkerArray,
        marker ns = name) for rviz and for the scripted expert.
        """
        return {}

    def task_outcome(self) -> str | None:
        """'success', 'failure' or None while undecided (sim task only)."""
        return None
