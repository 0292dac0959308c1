"""Scripted expert for the sim task "Pick up the cube and lift it" (ROS-free).

Given the cube pose (world frame, as published on `scene/objects`) and the arm's
joint positions when the episode starts, it produces a joint-position goal for any
time t since the start, through five phases:

1. approach  -- joint-space minimum-jerk move to a pre-grasp pose `approach_height`
   above the grasp point, jaws opening to `open_angle`;
2. descend   -- straight vertical line down to the grasp point (IK every tick);
3. close     -- jaws close to `close_angle` (beyond the cube: it squeezes);
4. lift      -- straight vertical line up by `lift_distance` (IK every tick);
5. hold      -- keep the last goal.

The gripper points straight down with its jaws across two opposite cube faces (the
pair that needs the least wrist roll). All trajectories are minimum-jerk in time,
so demonstrations are smooth and, for a given scene, identical from run to run:
ACT learns best from consistent demonstrations.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from .ik import ArmIK
from .scene import JAW_PADS

#: x of the shoulder-pan axis in the world (base) frame, m (official MJCF).
PAN_AXIS_X = 0.0388
#: A comfortable arm configuration from which every pre-grasp IK starts, so the
#: solution does not depend on where the arm happens to be (rad).
IK_SEED = np.array([0.0, -0.6, 0.9, 1.2, 0.0, 0.0])


@dataclass(frozen=True)
class ExpertConfig:
    approach_height: float = 0.06  #: pre-grasp height above the grasp point, m
    grasp_z_offset: float = 0.004  #: grasp point above the cube centre, m (jaw tips clear the table)
    lift_distance: float = 0.10  #: how far the grasped cube is raised, m
    open_angle: float = 0.8  #: jaw angle while approaching, rad
    close_angle: float = -0.15  #: jaw goal when closing, rad (inside the joint range)
    t_approach: float = 2.0  #: s
    t_descend: float = 1.2  #: s
    t_close: float = 1.0  #: s (closing takes the first 70 %, the rest lets the grip settle)
    t_lift: float = 1.5  #: s
    cube_size: float = 0.025  #: m


def min_jerk(s: float) -> float:
    """Minimum-jerk time scaling: 0 -> 1 with zero velocity and acceleration at both ends."""
    s = min(max(s, 0.0), 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def yaw_of(quat_wxyz) -> float:
    """Yaw (rotation about world z) of a quaternion (w, x, y, z)."""
    w, x, y, z = quat_wxyz
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def grasp_tool_offset(ik_model: mujoco.MjModel, cube_size: float) -> np.ndarray:
    """Point between the jaws where the cube centre sits, in the gripper-site frame.

    The fixed jaw's pad face plus half the cube along the jaw axis (site z), level
    with the pad centre along the jaws (site x).
    """
    data = mujoco.MjData(ik_model)
    mujoco.mj_kinematics(ik_model, data)
    site = ik_model.site("gripperframe").id
    rot = data.site_xmat[site].reshape(3, 3)
    pad = ik_model.geom(JAW_PADS[0]).id
    centre = rot.T @ (data.geom_xpos[pad] - data.site_xpos[site])
    pad_rot = rot.T @ data.geom_xmat[pad].reshape(3, 3)
    # Half thickness of the pad along the site's z axis.
    half_thickness = float(np.abs(pad_rot[2]) @ ik_model.geom_size[pad])
    return np.array([centre[0], 0.0, centre[2] + half_thickness + cube_size / 2])


class ScriptedExpert:
    """Pick-and-lift expert: call start() once per episode, then command(t) every tick."""

    PHASES = ("approach", "descend", "close", "lift", "hold")

    def __init__(self, config: ExpertConfig = ExpertConfig()):
        self.config = config
        self.ik = ArmIK()
        self.ik.tool_offset = grasp_tool_offset(self.ik.model, config.cube_size)
        self._plan = None

    # ------------------------------------------------------------------ planning
    def grasp_rotation(self, cube_pos, cube_quat) -> np.ndarray:
        """Gripper-site rotation: approach (site x) down, jaw axis (site z) normal to a cube face.

        Of the cube's two horizontal face normals (and their opposites), the one closest
        to the radial direction from the shoulder -- the jaw axis of an unrolled wrist
        pointing down -- needs the least wrist roll.
        """
        radial = np.arctan2(cube_pos[1], cube_pos[0] - PAN_AXIS_X)
        yaw = yaw_of(cube_quat)
        k = np.round((radial - yaw) / (np.pi / 2))
        jaw = yaw + k * np.pi / 2
        z_axis = np.array([np.cos(jaw), np.sin(jaw), 0.0])
        x_axis = np.array([0.0, 0.0, -1.0])
        return np.column_stack([x_axis, np.cross(z_axis, x_axis), z_axis])

    def start(self, cube_pos, cube_quat, q_start) -> None:
        """Plan the episode from the cube pose (world) and the arm's joint positions (6,)."""
        c = self.config
        cube_pos = np.asarray(cube_pos, float)
        q_start = np.asarray(q_start, float)
        rot = self.grasp_rotation(cube_pos, cube_quat)
        grasp = cube_pos + [0.0, 0.0, c.grasp_z_offset]
        pre = grasp + [0.0, 0.0, c.approach_height]
        seed = IK_SEED.copy()
        # Solve the grasp first from the fixed seed, then climb to the pre-grasp from it:
        # the descent then retraces a continuous IK branch.
        q_grasp, err = self.ik.solve(grasp, rot, seed, iters=200)
        q_pre, err_pre = self.ik.solve(pre, rot, q_grasp, iters=200)
        q_pre[5] = c.open_angle
        t1 = c.t_approach
        t2 = t1 + c.t_descend
        t3 = t2 + c.t_close
        t4 = t3 + c.t_lift
        self._plan = dict(
            q_start=q_start, q_pre=q_pre, rot=rot, grasp=grasp, pre=pre,
            times=(t1, t2, t3, t4), reach_error=max(err, err_pre),
        )
        self._q_last = q_pre.copy()
        self._q_lift = None

    @property
    def reach_error(self) -> float:
        """IK position error (m) of the planned grasp; > 1 mm means the cube is out of reach."""
        return self._plan["reach_error"]

    @property
    def duration(self) -> float:
        """Time (s) at which the lift ends."""
        return self._plan["times"][-1]

    def phase(self, t: float) -> str:
        for name, end in zip(self.PHASES, self._plan["times"]):
            if t < end:
                return name
        return "hold"

    # ------------------------------------------------------------------ execution
    def _tool_goal(self, target, grip: float) -> np.ndarray:
        q, _ = self.ik.solve(target, self._plan["rot"], self._q_last, iters=30)
        q[5] = grip
        self._q_last = q
        return q.copy()

    def command(self, t: float) -> np.ndarray:
        """Joint goal (6,) in radians at time t (s) since start(). Call with increasing t."""
        if self._plan is None:
            raise RuntimeError("ScriptedExpert.command() before start()")
        p, c = self._plan, self.config
        t1, t2, t3, t4 = p["times"]
        if t < t1:
            s = min_jerk(t / t1)
            return p["q_start"] + s * (p["q_pre"] - p["q_start"])
        if t < t2:
            s = min_jerk((t - t1) / (t2 - t1))
            return self._tool_goal(p["pre"] + s * (p["grasp"] - p["pre"]), c.open_angle)
        if t < t3:
            s = min_jerk((t - t2) / (0.7 * (t3 - t2)))
            q = self._tool_goal(p["grasp"], c.open_angle + s * (c.close_angle - c.open_angle))
            return q
        s = min_jerk((t - t3) / (t4 - t3))
        return self._tool_goal(p["grasp"] + [0.0, 0.0, s * c.lift_distance], c.close_angle)
