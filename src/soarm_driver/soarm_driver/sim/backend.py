"""MuJoCo simulation of the SO-101 as a driver backend, with the cube-to-target-zone task.

Parameters (the `params` dict the driver builds; every key optional, unknown keys
ignored; the driver passes its `sim.<key>` parameters here without the prefix):

====================  ============================================================
key                   meaning (default)
====================  ============================================================
``home_pose``         6 joint positions (rad) the arm starts in (``DEFAULT_HOME``)
``cameras``           list of CameraSpec: sizes the offscreen buffer (640x480 min)
``seed``              seed of the first scene (0); later scenes come from reset_scene
``randomize``         randomize the first scene (true)
``timestep``          physics step, s (0.002)
``cube_size``         cube edge, m (0.025)
``mesh_cell``         mesh simplification cell, m (0.005; 0 = the full 322k-triangle meshes)
====================  ============================================================

Task ("Put the cube in the target zone"): a red cube (edge ``cube_size``) and a flat
green square target zone (side 0.07 m) lie on the table in front of the arm; both
centres are drawn from the seed in x 0.15..0.27 m, y -0.12..0.12 m (base frame), at
least 0.10 m apart, cube yaw +-0.6 rad. Success (task_outcome() == 'success'): the cube
rests in the zone -- its centre within the zone's square, its bottom less than 5 mm
above the table, no contact with the arm (released) and slower than 2 cm/s. Once reached
it stays 'success' until the next reset_scene. The sim never reports 'failure'
(timeouts belong to the caller).

Rendering is headless (``MUJOCO_GL=egl``) without shadows or multisampling; one
mujoco.Renderer per image size. Time is simulated: advance(dt) steps the physics.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import math

import mujoco
import numpy as np

from ..backends.base import JOINT_NAMES, BackendError, CameraFrame, CameraSpec, RobotBackend
from ..robot import HOME_POSE
from .expert import grasp_tool_offset
from .scene import CUBE, GRIPPER_SITE, TARGET, SceneConfig, build_scene

TASK = "Put the cube in the target zone"
#: Arm start pose (rad) when the driver gives none: the robot's home pose.
DEFAULT_HOME = HOME_POSE
#: Success: the cube's bottom is at most this high above the table (m), and slower than this (m/s).
RESTING_HEIGHT = 0.005
RESTING_SPEED = 0.02
#: Where reset_physics leaves the cube (world x, y, m): on the table, beyond the arm's reach.
PARKED_CUBE_XY = (0.5, 0.4)


def intrinsics_from_fovy(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole K of a MuJoCo camera: square pixels, principal point at the image centre."""
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def scene_from_seed(seed: int, randomize: bool, config: SceneConfig) -> tuple[np.ndarray, float, np.ndarray]:
    """Cube centre (x, y, z), cube yaw and target-zone centre (x, y, 0) of scene `seed`.

    Deterministic: the same seed always gives the same scene.
    """
    if not randomize:
        cube_xy, target_xy, yaw = np.array(config.cube_nominal), np.array(config.target_nominal), 0.0
    else:
        rng = np.random.default_rng(int(seed))
        spread = config.scene_spread
        lo = np.array([config.region_x[0], config.region_y[0]])
        hi = np.array([config.region_x[1], config.region_y[1]])

        def draw(nominal):
            if spread >= 1.0:
                return rng.uniform(lo, hi)
            half = 0.5 * spread * (hi - lo)
            return np.clip(rng.uniform(np.asarray(nominal) - half, np.asarray(nominal) + half), lo, hi)

        cube_xy = draw(config.cube_nominal)
        yaw = rng.uniform(-spread * config.cube_yaw, spread * config.cube_yaw)
        target_xy = draw(config.target_nominal)
        while np.linalg.norm(target_xy - cube_xy) < config.min_separation:
            target_xy = draw(config.target_nominal)
    cube = np.array([cube_xy[0], cube_xy[1], config.cube_size / 2])
    return cube, float(yaw), np.array([target_xy[0], target_xy[1], 0.0])


class SimBackend(RobotBackend):
    """The SO-101 in MuJoCo (official model), a cube on a table, front and wrist cameras."""

    simulated_time = True
    enabled_on_start = True
    #: The driver's default episode task text with this backend.
    task_text = TASK

    def __init__(self, params: dict | None = None):
        params = dict(params or {})
        self.config = SceneConfig(
            timestep=float(params.get("timestep", SceneConfig.timestep)),
            cube_size=float(params.get("cube_size", SceneConfig.cube_size)),
            mesh_cell=float(params.get("mesh_cell", SceneConfig.mesh_cell)),
            scene_spread=float(params.get("scene_spread", SceneConfig.scene_spread)),
        )
        if not 0 < self.config.scene_spread <= 1:
            raise ValueError(f"sim: scene_spread must be in (0, 1], got {self.config.scene_spread}")
        if not (0 < self.config.timestep <= 0.01 and 0.01 <= self.config.cube_size <= 0.04):
            raise ValueError("sim: timestep must be in (0, 0.01] s and cube_size in [0.01, 0.04] m")
        if not 0 <= self.config.mesh_cell <= 0.02:
            raise ValueError("sim: mesh_cell must be in [0, 0.02] m (0 = full meshes)")
        home = params.get("home_pose", DEFAULT_HOME)
        self.home = np.asarray(home if home is not None and len(home) else DEFAULT_HOME, float)
        if self.home.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(self.home)):
            raise ValueError(f"home_pose must be {len(JOINT_NAMES)} finite radians, got {home!r}")
        self.seed = int(params.get("seed", 0))
        self.randomize = bool(params.get("randomize", True))
        cameras = list(params.get("cameras") or [])
        self._offscreen = (
            max([640] + [int(c.width) for c in cameras]),
            max([480] + [int(c.height) for c in cameras]),
        )
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._residual = 0.0
        self._success = False

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        if self.model is not None:
            return
        try:
            self.model, _ = build_scene(self.config, self._offscreen)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"cannot build the simulation: {exc}") from exc
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qadr = np.array([m.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._vadr = np.array([m.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._act = np.array([m.actuator(n).id for n in JOINT_NAMES])
        self._ctrl_lo = m.actuator_ctrlrange[self._act, 0].copy()
        self._ctrl_hi = m.actuator_ctrlrange[self._act, 1].copy()
        self._cube_qadr = m.joint(CUBE).qposadr[0]
        self._cube_vadr = m.joint(CUBE).dofadr[0]
        self._cube_body = m.body(CUBE).id
        self._target_mocap = m.body(TARGET).mocapid[0]
        self._gripper_site = m.site(GRIPPER_SITE).id
        # Where a grasped cube's centre sits, in the gripper-site frame (the expert's grasp point).
        self._jaw_offset = grasp_tool_offset(m, self.config.cube_size)
        # Every body of the arm: a cube touching one of them is not released.
        self._arm_bodies = {i for i in range(m.nbody) if i not in (0, self._cube_body, m.body(TARGET).id)}
        self.data.qpos[self._qadr] = self.home
        self.data.ctrl[self._act] = np.clip(self.home, self._ctrl_lo, self._ctrl_hi)
        self.reset_scene(self.seed, self.randomize)

    def disconnect(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self.model = None
        self.data = None

    def _require(self):
        if self.model is None:
            raise BackendError("sim backend not connected: call connect() first")

    # ------------------------------------------------------------------ joints
    def read_positions(self) -> np.ndarray:
        self._require()
        return self.data.qpos[self._qadr].copy()

    def read_velocities(self) -> np.ndarray:
        self._require()
        return self.data.qvel[self._vadr].copy()

    def write_goal_positions(self, goal: np.ndarray) -> None:
        self._require()
        goal = np.asarray(goal, float)
        if goal.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(goal)):
            raise ValueError(f"goal must be {len(JOINT_NAMES)} finite radians, got {goal!r}")
        self.data.ctrl[self._act] = np.clip(goal, self._ctrl_lo, self._ctrl_hi)

    def reset_physics(self, q) -> None:
        """Reset the whole physics state (time 0, no motion, solver warm-start cleared) with
        the arm at rest at `q` (rad) and its goals there; the cube waits at PARKED_CUBE_XY,
        out of the arm's reach, until reset_scene places it. For the Gymnasium environment's
        reset, which must be exactly repeatable; the driver never calls it (it moves the arm
        home instead)."""
        self._require()
        q = np.asarray(q, float)
        if q.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(q)):
            raise ValueError(f"arm state must be {len(JOINT_NAMES)} finite radians, got {q!r}")
        mujoco.mj_resetData(self.model, self.data)
        self._residual = 0.0
        self.data.qpos[self._qadr] = q
        self.data.ctrl[self._act] = np.clip(q, self._ctrl_lo, self._ctrl_hi)
        adr = self._cube_qadr
        self.data.qpos[adr : adr + 3] = [*PARKED_CUBE_XY, self.config.cube_size / 2]
        mujoco.mj_forward(self.model, self.data)

    def goal_positions(self) -> np.ndarray:
        """The goals the actuators currently track (rad)."""
        self._require()
        return self.data.ctrl[self._act].copy()

    def set_torque(self, enabled: bool) -> None:
        """Torque off disables the actuators: the arm goes limp under gravity."""
        self._require()
        if enabled:
            self.model.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        else:
            self.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)

    # ------------------------------------------------------------------ time
    @property
    def time(self) -> float:
        """Simulated time, s."""
        return float(self.data.time) if self.data is not None else 0.0

    def advance(self, dt: float) -> None:
        """Step the physics by dt seconds (whole timesteps; the remainder carries over)."""
        self._require()
        if not dt > 0:
            return
        step = self.model.opt.timestep
        self._residual += dt
        n = int(self._residual / step + 1e-9)
        self._residual -= n * step
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)

    # ------------------------------------------------------------------ cameras
    def camera_names(self) -> list[str]:
        self._require()
        return [self.model.camera(i).name for i in range(self.model.ncam)]

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            vis = self.model.vis.global_
            vis.offwidth = max(vis.offwidth, width)
            vis.offheight = max(vis.offheight, height)
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return self._renderers[key]

    def capture_frames(self, cameras: list[CameraSpec]) -> dict[str, CameraFrame]:
        """Render each camera (CameraSpec.source names the MuJoCo camera; default its name)."""
        self._require()
        frames = {}
        for spec in cameras:
            cam_name = spec.source or spec.name
            cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, cam_name)
            if cam_id < 0:
                raise ValueError(
                    f"camera {spec.name!r}: no MuJoCo camera {cam_name!r} in the sim "
                    f"(available: {', '.join(self.camera_names())})"
                )
            renderer = self._renderer(int(spec.width), int(spec.height))
            renderer.update_scene(self.data, camera=cam_id)
            image = renderer.render().copy()
            frames[spec.name] = CameraFrame(
                image=image,
                intrinsics=intrinsics_from_fovy(self.model.cam_fovy[cam_id], spec.width, spec.height),
            )
        return frames

    # ------------------------------------------------------------------ task
    def reset_scene(self, seed: int, randomize: bool) -> None:
        """Place cube and target zone from `seed` (same seed, same scene); the arm is left alone."""
        self._require()
        cube, yaw, target = scene_from_seed(seed, randomize, self.config)
        adr, vadr = self._cube_qadr, self._cube_vadr
        self.data.qpos[adr : adr + 3] = cube
        self.data.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        self.data.qvel[vadr : vadr + 6] = 0.0
        self.data.mocap_pos[self._target_mocap] = target
        self.data.mocap_quat[self._target_mocap] = [1.0, 0.0, 0.0, 0.0]
        mujoco.mj_forward(self.model, self.data)
        self.seed, self.randomize = int(seed), bool(randomize)
        self._success = False

    def object_poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{'cube': centre, 'target': centre of the zone on the table}, world frame, quat wxyz."""
        self._require()
        d = self.data
        return {
            CUBE: (d.xpos[self._cube_body].copy(), d.xquat[self._cube_body].copy()),
            TARGET: (d.mocap_pos[self._target_mocap].copy(), d.mocap_quat[self._target_mocap].copy()),
        }

    def cube_position(self) -> np.ndarray:
        """Centre of the cube in the world frame, m."""
        return self.data.xpos[self._cube_body].copy()

    def jaw_point(self) -> np.ndarray:
        """World position (m) of the point between the jaws where a grasped cube's centre sits.

        Fixed in the gripper: half a cube off the fixed jaw's pad, level with the pad
        centre (the scripted expert's grasp point), whatever the jaw opening.
        """
        d, site = self.data, self._gripper_site
        return d.site_xpos[site] + d.site_xmat[site].reshape(3, 3) @ self._jaw_offset

    def cube_height(self) -> float:
        """Height of the cube's bottom above the table top, m (for a flat-lying cube)."""
        return float(self.data.xpos[self._cube_body][2] - self.config.cube_size / 2)

    def cube_touches_arm(self) -> bool:
        d, m = self.data, self.model
        for c in d.contact[: d.ncon]:
            bodies = {m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]}
            if self._cube_body in bodies and bodies & self._arm_bodies:
                return True
        return False

    def cube_in_target(self) -> bool:
        """The cube's centre lies within the target zone's square (any height)."""
        offset = self.data.xpos[self._cube_body][:2] - self.data.mocap_pos[self._target_mocap][:2]
        return bool(np.all(np.abs(offset) <= self.config.target_size / 2))

    def task_outcome(self) -> str | None:
        self._require()
        if not self._success:
            speed = np.linalg.norm(self.data.qvel[self._cube_vadr : self._cube_vadr + 3])
            self._success = (
                self.cube_in_target()
                and self.cube_height() < RESTING_HEIGHT
                and speed < RESTING_SPEED
                and not self.cube_touches_arm()
            )
        return "success" if self._success else None
