"""Mock backend: kinematic first-order tracking of goals and synthetic camera images.

No physics, no hardware: fast enough for tests of everything downstream. Images are
cheap to draw and depend on the joint positions (one vertical bar per joint whose
height follows the joint angle), so a consumer can see them change as the arm moves.
A `cube` object sits in front of the arm; reset_scene(seed, randomize) moves it
deterministically from the seed.
"""

from __future__ import annotations

import math
import time

import numpy as np

from soarm_driver.backends.base import JOINT_NAMES, BackendError, CameraFrame, CameraSpec, RobotBackend
from soarm_driver.robot import LOWER_LIMITS, UPPER_LIMITS

_LOWER = np.array(LOWER_LIMITS)
_UPPER = np.array(UPPER_LIMITS)
_NOMINAL_CUBE = np.array([0.25, 0.0, 0.0125])


def pinhole_intrinsics(width: int, height: int, hfov_deg: float = 60.0) -> np.ndarray:
    """K for a pinhole camera with the given horizontal field of view."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


class MockBackend(RobotBackend):
    simulated_time = False
    enabled_on_start = True

    def __init__(self, params: dict | None = None):
        params = params or {}
        self.time_constant = float(params.get("time_constant", 0.05))
        #: Test hook: report task success this many seconds (mock time) after each
        #: reset_scene; <= 0: never (the mock has no real task).
        self.success_after = float(params.get("success_after", 0.0))
        self._since_reset: float | None = None
        #: Test hook for the driver's error path: the first read after `fail_at` s of
        #: mock time raises BackendError, then connect() fails for `fail_for` wall seconds.
        self.fail_at = float(params.get("fail_at", 0.0))
        self.fail_for = float(params.get("fail_for", 1.0))
        self._clock = 0.0
        self._down_until: float | None = None
        home = params.get("home_pose", [0.0] * len(JOINT_NAMES))
        self._q = np.asarray(home, dtype=float).copy()
        self._v = np.zeros(len(JOINT_NAMES))
        self._goal = self._q.copy()
        self._torque = self.enabled_on_start
        self._connected = False
        self._cube = _NOMINAL_CUBE.copy()
        self._backgrounds: dict[tuple, np.ndarray] = {}
        self._last_frames: dict[tuple, tuple] = {}

    def connect(self) -> None:
        if self._down_until is not None and time.monotonic() < self._down_until:
            raise BackendError("mock: simulated bus failure (still down)")
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def _check(self):
        if not self._connected:
            raise BackendError("mock backend not connected")

    def read_positions(self) -> np.ndarray:
        self._check()
        if self.fail_at > 0 and self._down_until is None and self._clock >= self.fail_at:
            self._down_until = time.monotonic() + self.fail_for
            self._connected = False
            raise BackendError("mock: simulated bus failure")
        return self._q.copy()

    def read_velocities(self) -> np.ndarray:
        return self._v.copy()

    def write_goal_positions(self, goal: np.ndarray) -> None:
        self._check()
        self._goal = np.asarray(goal, dtype=float).copy()

    def set_torque(self, enabled: bool) -> None:
        self._check()
        self._torque = bool(enabled)
        self._goal = self._q.copy()

    def advance(self, dt: float) -> None:
        self._clock += max(dt, 0.0)
        if self._since_reset is not None:
            self._since_reset += max(dt, 0.0)
        if not self._torque or dt <= 0:
            self._v[:] = 0.0
            return
        alpha = 1.0 - math.exp(-dt / self.time_constant) if self.time_constant > 0 else 1.0
        new_q = self._q + alpha * (self._goal - self._q)
        self._v = (new_q - self._q) / dt
        self._q = new_q

    def capture_frames(self, cameras: list[CameraSpec]) -> dict[str, CameraFrame]:
        self._check()
        return {cam.name: CameraFrame(self._draw(cam), pinhole_intrinsics(cam.width, cam.height)) for cam in cameras}

    def _background(self, cam: CameraSpec) -> np.ndarray:
        key = (cam.name, cam.width, cam.height)
        if key not in self._backgrounds:
            tint = (sum(map(ord, cam.name)) * 37) % 256
            rows = np.linspace(40, 200, cam.height, dtype=np.uint8)[:, None]
            bg = np.empty((cam.height, cam.width, 3), dtype=np.uint8)
            bg[:, :, 0] = rows
            bg[:, :, 1] = tint
            bg[:, :, 2] = rows[::-1]
            self._backgrounds[key] = bg
        return self._backgrounds[key]

    def _draw(self, cam: CameraSpec) -> np.ndarray:
        h, w = cam.height, cam.width
        level = np.clip((self._q - _LOWER) / (_UPPER - _LOWER), 0.0, 1.0)
        tops = tuple(int(round((1.0 - a) * (h - 1))) for a in level)
        key = (cam.name, w, h)
        cached = self._last_frames.get(key)
        if cached is not None and cached[0] == tops:
            return cached[1]  # arm did not move (in pixels): same image, no redraw
        img = self._background(cam).copy()
        band = max(1, w // (2 * len(JOINT_NAMES)))
        for i, top in enumerate(tops):
            x0 = (2 * i + 1) * w // (2 * len(JOINT_NAMES) + 1)
            img[top:, x0 : x0 + band] = (255, 255 - 40 * i, 40 * i)
        img.flags.writeable = False
        self._last_frames[key] = (tops, img)
        return img

    def reset_scene(self, seed: int, randomize: bool) -> None:
        self._since_reset = 0.0
        if randomize:
            rng = np.random.default_rng(seed)
            self._cube = _NOMINAL_CUBE + np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.1, 0.1), 0.0])
        else:
            self._cube = _NOMINAL_CUBE.copy()

    def object_poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {"cube": (self._cube.copy(), np.array([1.0, 0.0, 0.0, 0.0]))}

    def task_outcome(self) -> str | None:
        if self.success_after > 0 and self._since_reset is not None and self._since_reset >= self.success_after:
            return "success"
        return None
