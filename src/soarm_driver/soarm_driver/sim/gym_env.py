"""The sim task "Put the cube in the target zone" as a Gymnasium environment (ROS-free).

    gymnasium.make("soarm/PickPlace-v0", fps=30, image_size=(128, 96))

Built on the driver's own sim core, so an episode here plays like one through the driver
(docs/interfaces.md, "driver" and "sim backend"), only in-process and as fast as the CPU
allows (no pacing, no DDS):

- Scene: ``reset(seed=s)`` puts the arm at rest at ``home_pose`` (the driver moves it there
  on reset_episode) and places cube and zone with ``SimBackend.reset_scene(s, randomize)``:
  the same scene as the driver's reset_episode with seed s. ``seed=None`` draws a scene
  seed from the env's generator. ``options={"arm_pose": q}`` instead puts the arm at rest at
  joint positions q (rad, clamped to the limits) and skips the settling: a still scene for
  rendering labelled images (e.g. to pretrain a vision backbone), not an episode to play.
- Action: 6 joint position goals (rad, joint order shoulder_pan, shoulder_lift, elbow_flex,
  wrist_flex, wrist_roll, gripper), executed like a one-point ``joint_trajectory`` with
  ``time_from_start`` = 1/fps (what the policy node and teleop send): the driver's
  ArmController interpolates the goal at ``control_rate_hz`` (60) and applies the driver's
  limits every control tick (clamp to ``joint_lower_limits``/``joint_upper_limits``, at most
  ``max_joint_velocity`` x dt per tick); each tick advances the physics by 1/control_rate_hz.
- Observation (dataset keys): ``observation.state`` (6 joint positions, rad, float32) and
  ``observation.images.<camera>`` (HxWx3 uint8, ``image_size`` = (width, height), default
  128x96), taken at the end of the step, like the driver's joint_states and images.
- ``info``: ``stages`` (EpisodeEvent STAGE_* bits reached so far, sim/stages.py),
  ``is_success`` (the task's success = STAGE_RELEASED), ``seed`` (scene seed), ``time``
  (s of sim time since reset = steps / fps), ``cube_position`` (x, y, z, m), ``cube_yaw``
  (rad, about the vertical), ``zone_position`` (x, y, z of the zone's centre) and
  ``jaw_point`` (x, y, z of the point between the jaws), all in the world frame (the sim
  knows them; a policy must not use them: they are labels, e.g. for pretraining).
- Reward 1 on success, else 0. ``terminated`` on success (``terminate_on_success``),
  ``truncated`` once ``episode_time`` s have passed.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..arm_controller import ArmController
from ..backends.base import CameraSpec
from ..command_validation import TrajectoryCommand
from ..joint_limits import JointLimits
from ..robot import HOME_POSE, JOINT_NAMES, LOWER_LIMITS, UPPER_LIMITS
from .backend import SimBackend
from .scene import CUBE, TARGET
from .stages import STAGE_RELEASED, StageTracker, stage_names

STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."


class PickPlaceEnv(gym.Env):
    """See the module docstring. Keyword arguments (all optional):

    fps (30): env steps per second of sim time; control_rate_hz (60): the driver's control
    rate; image_size ((128, 96)): (width, height) of every camera; cameras (("front",
    "wrist")): MuJoCo camera names; episode_time (30 s); home_pose (robot.HOME_POSE, the driver's
    default); randomize (True); joint_lower_limits / joint_upper_limits (robot.py: the URDF's) and max_joint_velocity
    (3.0 rad/s, one or 6 values): the driver's limits; sim (dict): SimBackend parameters
    (timestep, cube_size, mesh_cell); settle_time (0.5 s): physics run with the arm held at
    home before the scene is placed on reset; terminate_on_success (True); render_mode
    (None or "rgb_array": the first camera).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        fps: float = 30.0,
        control_rate_hz: float = 60.0,
        image_size: tuple[int, int] = (128, 96),
        cameras: tuple[str, ...] = ("front", "wrist"),
        episode_time: float = 30.0,
        home_pose=HOME_POSE,
        randomize: bool = True,
        joint_lower_limits=LOWER_LIMITS,
        joint_upper_limits=UPPER_LIMITS,
        max_joint_velocity=3.0,
        sim: dict | None = None,
        settle_time: float = 0.5,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
    ):
        if not fps > 0 or not control_rate_hz > 0 or not episode_time > 0:
            raise ValueError("fps, control_rate_hz and episode_time must be > 0")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.fps = float(fps)
        self.control_period = 1.0 / float(control_rate_hz)
        self.episode_time = float(episode_time)
        self.randomize = bool(randomize)
        self.settle_time = float(settle_time)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.fps}
        width, height = (int(v) for v in image_size)
        self.cameras = [CameraSpec(name=c, width=width, height=height, fps=self.fps) for c in cameras]
        self.limits = JointLimits(joint_lower_limits, joint_upper_limits, max_joint_velocity)
        self.home = np.asarray(home_pose, float)
        if self.home.shape != (len(JOINT_NAMES),) or not self.limits.contains(self.home):
            raise ValueError(f"home_pose must be {len(JOINT_NAMES)} values inside the joint limits, got {home_pose!r}")
        self.sim = SimBackend({**(sim or {}), "home_pose": list(self.home), "cameras": self.cameras})
        self.sim.connect()
        self.arm = ArmController(self.limits, command_timeout=0.0)
        self.stages = StageTracker(self.sim)

        obs = {STATE_KEY: spaces.Box(-np.inf, np.inf, shape=(len(JOINT_NAMES),), dtype=np.float32)}
        for c in self.cameras:
            obs[IMAGE_PREFIX + c.name] = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(
            self.limits.lower.astype(np.float32), self.limits.upper.astype(np.float32), dtype=np.float32
        )
        self.scene_seed = -1
        self._steps = 0
        self._ticks = 0
        self._now = 0.0

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        scene_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        sim = self.sim
        sim.set_torque(True)
        pose = (options or {}).get("arm_pose")
        start = self.home if pose is None else self.limits.clamp(np.asarray(pose, float).reshape(-1))
        sim.reset_physics(start)  # exactly repeatable: same seed, same episode
        if self.settle_time > 0 and pose is None:  # the arm settles under gravity, as after the driver's move
            sim.advance(self.settle_time)
        sim.reset_scene(scene_seed, self.randomize)
        self.scene_seed = scene_seed
        self.arm.set_enabled(True, start)  # the goal is where the arm rests, as after the driver's reset
        sim.write_goal_positions(self.arm.goal)
        self.stages.reset()
        self._steps = 0
        self._ticks = 0
        self._now = 0.0
        return self._observation(), self._info()

    def step(self, action):
        goal = np.asarray(action, dtype=float).reshape(-1)
        if goal.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(goal)):
            raise ValueError(f"action must be {len(JOINT_NAMES)} finite joint positions (rad), got {action!r}")
        if self._ticks == 0 and self._steps == 0 and self.scene_seed < 0:
            raise RuntimeError("call reset() before step()")
        # a one-point trajectory reached 1/fps from now (the policy's and teleop's commands)
        cmd = TrajectoryCommand(times=np.array([1.0 / self.fps]), positions=goal[None, :], velocities=None, stamp=None)
        self.arm.command(cmd, self._now)
        self._steps += 1
        end = self._steps / self.fps
        # control ticks up to the end of this step (the driver: advance, then the new goal)
        while (self._ticks + 1) * self.control_period <= end + 1e-9:
            self._ticks += 1
            self.sim.advance(self.control_period)
            self._now = self._ticks * self.control_period
            self.sim.write_goal_positions(self.arm.step(self._now, self.control_period).goal)
            self.stages.update()
        self._now = end
        success = bool(self.stages.stages & STAGE_RELEASED)
        terminated = success and self.terminate_on_success
        truncated = not terminated and end >= self.episode_time - 1e-9
        return self._observation(), float(success), terminated, truncated, self._info()

    def render(self):
        if self.render_mode != "rgb_array" or not self.cameras:
            return None
        return self.sim.capture_frames(self.cameras[:1])[self.cameras[0].name].image

    def close(self):
        if self.sim is not None:
            self.sim.disconnect()
            self.sim = None

    # ------------------------------------------------------------------ helpers
    @property
    def time(self) -> float:
        """Sim time since reset (s) = steps / fps."""
        return self._steps / self.fps

    @property
    def max_episode_steps(self) -> int:
        return math.ceil(self.episode_time * self.fps - 1e-9)

    def object_poses(self) -> dict:
        """Cube and zone poses (world frame), as on `scene/objects` (for the scripted expert)."""
        return self.sim.object_poses()

    def _observation(self) -> dict:
        obs = {STATE_KEY: self.sim.read_positions().astype(np.float32)}
        for name, frame in self.sim.capture_frames(self.cameras).items():
            obs[IMAGE_PREFIX + name] = frame.image
        return obs

    def _info(self) -> dict:
        bits = int(self.stages.stages)
        return {
            "stages": bits,
            "stage_names": stage_names(bits),
            "is_success": bool(bits & STAGE_RELEASED),
            "seed": self.scene_seed,
            "time": self.time,
            **self._object_labels(),
        }

    def _object_labels(self) -> dict:
        poses = self.sim.object_poses()
        cube, quat = poses[CUBE]
        w, z = float(quat[0]), float(quat[3])
        return {
            "cube_position": cube.astype(float),
            "cube_yaw": 2.0 * math.atan2(z, w),  # exact for a cube lying flat (rotation about z only)
            "zone_position": np.asarray(poses[TARGET][0], float),
            "jaw_point": self.sim.jaw_point().astype(float),
        }
