"""Inverse kinematics of the SO-101 arm: damped least squares on a tool point.

ROS-free. The solver owns its own MuJoCo model of the arm alone (the official MJCF,
no scene), so it can run anywhere the expert runs, e.g. in the teleop node on
another machine than the simulator.
"""

from __future__ import annotations

import mujoco
import numpy as np

from .scene import GRIPPER_SITE, load_kinematic_arm_spec

#: Number of arm joints the IK moves (shoulder_pan .. wrist_roll); the gripper is left alone.
N_ARM = 5


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that turns `current` into `target` (3x3 matrices)."""
    err = target @ current.T
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, err.flatten())
    vec = np.zeros(3)
    mujoco.mju_quat2Vel(vec, quat, 1.0)
    return vec


class ArmIK:
    """Damped-least-squares IK for a point fixed in the gripper-site frame.

    tool_offset: the controlled point, in the `gripperframe` site frame (metres);
    zero controls the site itself.
    """

    def __init__(self, tool_offset=(0.0, 0.0, 0.0), damping: float = 0.02, rot_weight: float = 0.3):
        self.model = load_kinematic_arm_spec().compile()
        self.data = mujoco.MjData(self.model)
        self.site = self.model.site(GRIPPER_SITE).id
        self.body = self.model.site_bodyid[self.site]
        self.tool_offset = np.asarray(tool_offset, float)
        self.damping = damping
        self.rot_weight = rot_weight
        self.lower = self.model.jnt_range[:, 0].copy()
        self.upper = self.model.jnt_range[:, 1].copy()
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def forward(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Tool point (world) and site rotation (3x3) at joint positions q (6,)."""
        self.data.qpos[:] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # mj_jac needs it
        rot = self.data.site_xmat[self.site].reshape(3, 3).copy()
        return self.data.site_xpos[self.site] + rot @ self.tool_offset, rot

    def solve(self, target_pos, target_rot=None, q0=None, iters: int = 50, tol: float = 1e-4):
        """Joint positions (6,) putting the tool point at target_pos, the site near target_rot.

        Position has priority: the orientation is tracked in the null space of the
        position task (a 5-joint arm cannot reach every pose; where target_rot is not
        reachable the closest one is taken). Starts from q0 (a warm start keeps
        successive solutions smooth); joint limits are respected; the gripper joint keeps
        its q0 value. Returns (q, position error in metres).
        """
        q = np.zeros(self.model.nq) if q0 is None else np.array(q0, float)
        target_pos = np.asarray(target_pos, float)
        err_norm = np.inf
        for it in range(iters):
            pos, rot = self.forward(q)
            err_p = target_pos - pos
            err_norm = float(np.linalg.norm(err_p))
            mujoco.mj_jac(self.model, self.data, self._jacp, self._jacr, pos, self.body)
            # The last iterations polish the position alone (the damped null-space
            # projection lets a little of the orientation task leak into it).
            polish = it >= iters - 10
            err_r = None if target_rot is None or polish else rotation_error(np.asarray(target_rot, float), rot)
            # Joints at a limit and pushed beyond it are frozen and the step re-solved
            # without them, so the remaining joints still meet the position task.
            free = np.ones(N_ARM, bool)
            for _attempt in range(N_ARM):
                dq = self._step(err_p, err_r, free)
                blocked = free & (
                    ((q[:N_ARM] <= self.lower[:N_ARM] + 1e-6) & (dq < 0))
                    | ((q[:N_ARM] >= self.upper[:N_ARM] - 1e-6) & (dq > 0))
                )
                if not blocked.any():
                    break
                free &= ~blocked
            step = np.linalg.norm(dq)
            if step > 0.3:  # keep the linearisation valid far from the target
                dq *= 0.3 / step
            q[:N_ARM] = np.clip(q[:N_ARM] + dq, self.lower[:N_ARM], self.upper[:N_ARM])
            if step < tol * 0.1 and err_norm < tol:
                break
        pos, _ = self.forward(q)
        return q, float(np.linalg.norm(target_pos - pos))

    def _step(self, err_p, err_r, free) -> np.ndarray:
        """One damped least-squares step; position first, orientation in its null space."""
        lam = self.damping**2
        mask = free.astype(float)
        jp = self._jacp[:, :N_ARM] * mask
        jp_pinv = jp.T @ np.linalg.inv(jp @ jp.T + lam * np.eye(3))
        dq = jp_pinv @ err_p
        if err_r is not None:
            null = np.diag(mask) - jp_pinv @ jp
            jr_full = self._jacr[:, :N_ARM] * mask
            jr = jr_full @ null
            dq2 = jr.T @ np.linalg.solve(jr @ jr.T + lam * np.eye(3), err_r - jr_full @ dq)
            dq = dq + null @ dq2
        return dq * mask
