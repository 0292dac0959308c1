"""Scripted expert for the sim task "Put the cube in the target zone" (ROS-free).

Given the cube pose and the target-zone centre (world frame, as published on
`scene/objects`) and the arm's joint positions when the episode starts, it produces a
joint-position goal for any time t since the start, through these segments:

1. approach -- joint-space minimum-jerk move to `approach_height` above the cube, jaws
   opening to `open_angle`;
2. descend  -- straight down to the grasp point;
3. close    -- jaws close to `close_angle` (beyond the cube: it squeezes);
4. lift     -- straight up by `carry_height`;
5. carry    -- straight line at that height to above the zone's centre;
6. lower    -- straight down until the cube is `place_clearance` above the table;
7. release  -- jaws open;
8. retreat  -- straight up by `carry_height`; then hold.

Cartesian segments are solved by IK every tick (warm-started from the previous
solution). The gripper points down with its jaws across the pair of cube faces that
needs the least wrist roll, and keeps that orientation while carrying. Every segment is
minimum-jerk in time, so demonstrations are smooth and, for a given scene and start
pose, identical from run to run: ACT learns best from consistent demonstrations.

`start_from()` plans the rest of the task from any state (a correction, issue 13: the expert
takes over from a policy wherever the arm and the cube are): with the cube held between
closed jaws it lifts, carries, lowers and releases it keeping the current grip; otherwise
it first raises the jaws straight up when they are low (so the joint-space approach does
not sweep the cube), then approaches the cube where it lies now and does the whole task.
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
    carry_height: float = 0.06  #: lift height while carrying, m
    place_clearance: float = 0.003  #: cube bottom above the table when the jaws open, m
    open_angle: float = 0.8  #: jaw angle while approaching / after release, rad
    close_angle: float = -0.15  #: jaw goal when closing, rad (inside the joint range)
    #: Segment durations, s.
    t_approach: float = 2.0
    t_descend: float = 1.2
    t_close: float = 1.0  #: closing takes the first 70 %, the rest lets the grip settle
    t_lift: float = 1.0
    t_carry: float = 2.0
    t_lower: float = 1.0
    t_release: float = 0.8
    t_retreat: float = 1.0
    cube_size: float = 0.025  #: m
    #: start_from(): the cube counts as held when its centre is this close to the jaw point (m;
    #: = stages.REACH_DISTANCE) and the jaw angle is below held_jaw_angle (rad).
    held_distance: float = 0.02
    held_jaw_angle: float = 0.4
    #: start_from(): joint-space approach duration at least the largest joint move over this speed (rad/s).
    approach_speed: float = 1.2
    t_raise: float = 0.8  #: start_from(): raising the jaws clear before the approach, s


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
    """Pick-and-place expert: call start() once per episode, then command(t) every tick."""

    PHASES = ("raise", "approach", "descend", "close", "lift", "carry", "lower", "release", "retreat")

    def __init__(self, config: ExpertConfig = ExpertConfig()):
        self.config = config
        self.ik = ArmIK()
        self.ik.tool_offset = grasp_tool_offset(self.ik.model, config.cube_size)
        self._segments = None

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

    def start(self, cube_pos, cube_quat, target_pos, q_start) -> None:
        """Plan the episode from the cube pose, the zone centre (world) and the joints (6,)."""
        self.held = False
        self._plan_full(np.asarray(cube_pos, float), cube_quat, np.asarray(target_pos, float),
                        np.asarray(q_start, float), [], self.config.t_approach)

    def holds_cube(self, q, cube_pos) -> bool:
        """Whether the cube is between the jaws (jaw point within held_distance) and they are closed."""
        tool, _ = self.ik.forward(np.asarray(q, float))
        return (float(np.linalg.norm(tool - np.asarray(cube_pos, float))) <= self.config.held_distance
                and float(q[5]) < self.config.held_jaw_angle)

    def start_from(self, cube_pos, cube_quat, target_pos, q_now) -> None:
        """Plan the rest of the task from the current state (see the module docstring).

        cube_pos/cube_quat: the cube's pose now, target_pos: the zone centre (world), q_now: the
        measured joints (6,). Sets `held` (the plan starts with the cube in the jaws) and
        `reach_error`; command(t) then counts t from this call.
        """
        c = self.config
        cube_pos = np.asarray(cube_pos, float)
        target_pos = np.asarray(target_pos, float)
        q_now = np.asarray(q_now, float)
        tool, rot = self.ik.forward(q_now)
        self.held = self.holds_cube(q_now, cube_pos)
        if self.held:
            self._plan_held(tool, rot, cube_pos, target_pos, q_now)
            return
        prefix, q_approach = [], q_now
        pre_z = cube_pos[2] + c.grasp_z_offset + c.approach_height
        if tool[2] < pre_z - 0.01:  # jaws low: straight up first, keeping the wrist as it is
            self._raise_rot = rot
            raised = np.array([tool[0], tool[1], pre_z])
            prefix = [("raise", c.t_raise, tool, raised, q_now[5], q_now[5], 1.0)]
            q_approach, _ = self.ik.solve(raised, rot, q_now, iters=200)
            q_approach[5] = q_now[5]
        self._q_last = q_now.copy()  # the raise's IK warm start
        self._plan_full(cube_pos, cube_quat, target_pos, q_approach, prefix, None)

    def _plan_held(self, tool, rot, cube_pos, target_pos, q_now) -> None:
        """Lift, carry, lower, release, retreat with the cube in the jaws, keeping the grip."""
        c = self.config
        self._rot = rot
        grip = tool - cube_pos  # where the cube sits in the jaws (world-frame offset, kept while carrying)
        place = np.array([target_pos[0] + grip[0], target_pos[1] + grip[1], c.cube_size / 2 + c.place_clearance
                          + grip[2]])
        lift_z = max(tool[2], place[2]) + c.carry_height
        lifted = np.array([tool[0], tool[1], lift_z])
        above = np.array([place[0], place[1], lift_z])
        _, err_place = self.ik.solve(place, rot, q_now, iters=200)
        self.reach_error = err_place
        o, x = c.open_angle, c.close_angle
        self._segments = [
            ("lift", c.t_lift, tool, lifted, x, x, 1.0),
            ("carry", c.t_carry, lifted, above, x, x, 1.0),
            ("lower", c.t_lower, above, place, x, x, 1.0),
            ("release", c.t_release, place, place, x, o, 1.0),
            ("retreat", c.t_retreat, place, place + [0.0, 0.0, c.carry_height], o, o, 1.0),
        ]
        self._q_last = q_now.copy()

    def _plan_full(self, cube_pos, cube_quat, target_pos, q_start, prefix, t_approach) -> None:
        """The whole task from joints q_start (after the `prefix` segments); t_approach None:
        long enough for the largest joint move at approach_speed."""
        c = self.config
        self._rot = self.grasp_rotation(cube_pos, cube_quat)
        up = np.array([0.0, 0.0, c.carry_height])
        grasp = cube_pos + [0.0, 0.0, c.grasp_z_offset]
        pre = grasp + [0.0, 0.0, c.approach_height]
        place = np.array([target_pos[0], target_pos[1], c.cube_size / 2 + c.place_clearance + c.grasp_z_offset])
        # Solve the grasp from a fixed seed, then the pre-grasp from it: the descent then
        # retraces one continuous IK branch, whatever the arm's start pose.
        q_grasp, err = self.ik.solve(grasp, self._rot, IK_SEED, iters=200)
        q_pre, err_pre = self.ik.solve(pre, self._rot, q_grasp, iters=200)
        _, err_place = self.ik.solve(place, self._rot, q_grasp, iters=200)
        q_pre[5] = c.open_angle
        self.reach_error = max(err, err_pre, err_place)
        if t_approach is None:
            t_approach = max(c.t_approach, float(np.max(np.abs(q_pre - q_start))) / c.approach_speed)
        o, x = c.open_angle, c.close_angle
        # (name, duration, start point, end point, gripper start, gripper end, gripper share of the time)
        self._segments = [
            *prefix,
            ("approach", t_approach, q_start, q_pre, None, None, 1.0),
            ("descend", c.t_descend, pre, grasp, o, o, 1.0),
            ("close", c.t_close, grasp, grasp, o, x, 0.7),
            ("lift", c.t_lift, grasp, grasp + up, x, x, 1.0),
            ("carry", c.t_carry, grasp + up, place + up, x, x, 1.0),
            ("lower", c.t_lower, place + up, place, x, x, 1.0),
            ("release", c.t_release, place, place, x, o, 1.0),
            ("retreat", c.t_retreat, place, place + up, o, o, 1.0),
        ]
        if not prefix:
            self._q_last = q_pre.copy()

    @property
    def duration(self) -> float:
        """Time (s) at which the last segment ends."""
        return sum(seg[1] for seg in self._segments)

    def phase(self, t: float) -> str:
        end = 0.0
        for seg in self._segments:
            end += seg[1]
            if t < end:
                return seg[0]
        return "hold"

    # ------------------------------------------------------------------ execution
    def command(self, t: float) -> np.ndarray:
        """Joint goal (6,) in radians at time t (s) since start(). Call with increasing t."""
        if self._segments is None:
            raise RuntimeError("ScriptedExpert.command() before start()")
        t0 = 0.0
        for seg in self._segments:
            if t < t0 + seg[1] or seg is self._segments[-1]:
                break
            t0 += seg[1]
        name, duration, a, b, g0, g1, g_share = seg
        s = min_jerk((t - t0) / duration)
        if name == "approach":
            self._q_last = b.copy()  # the Cartesian segments after it start from its end
            return a + s * (b - a)
        rot = self._raise_rot if name == "raise" else self._rot
        q, _ = self.ik.solve(a + s * (b - a), rot, self._q_last, iters=30)
        self._q_last = q
        q = q.copy()
        q[5] = g0 + min_jerk((t - t0) / (g_share * duration)) * (g1 - g0)
        return q
