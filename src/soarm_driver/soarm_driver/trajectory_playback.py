"""Joint trajectory playback with the semantics of ros2_control's
joint_trajectory_controller (JTC), ROS-free: `TrajectoryPlayback` samples the accepted
trajectories at the control rate. (Not a "follower": in this project that is the arm,
LeRobot's so101_follower, as opposed to the leader arm.)

- A trajectory's points are timed from its start time: `header.stamp`, or the time
  of receipt when the stamp is zero.
- A newer trajectory replaces the rest of the current one from its own start time:
  until then the current one keeps running (a start time in the past or now replaces
  it immediately). Trajectories waiting for their start time are kept in start
  order; a newer one drops those waiting ones that would start at or after it.
- Before its first point the arm moves from where it was commanded to be when the
  trajectory took over (the "anchor") to the first point, reaching it at the first
  point's time; between points positions are interpolated at the control rate:
  linearly, or with cubic Hermite splines when the points carry velocities.
- A trajectory received before the control tick that produced the arm's current goal,
  but taken only after that tick (the receiving thread was preempted while the tick
  ran), counts as received at that tick: it is anchored at the goal at the goal's time
  (and, with stamp zero, timed from there). Anchored at its receipt instead, the goal
  would be credited with motion the arm never made: the next tick stepped farther than
  the trajectory's own speed by the gap.
- After the last point the playback holds the last point's positions.
- A single point with time_from_start 0 is a plain position command; the velocity
  limit applied downstream (JointLimits) then decides how fast it is reached.

Times are float seconds on the driver's clock (sim time in simulation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soarm_driver.command_validation import TrajectoryCommand


@dataclass
class _TimedTrajectory:
    """An accepted trajectory on the driver clock (absolute point times)."""

    start: float
    times: np.ndarray  # absolute, seconds
    positions: np.ndarray  # (N, 6)
    velocities: np.ndarray | None  # (N, 6)
    anchor_time: float = 0.0
    anchor_position: np.ndarray | None = None
    anchor_velocity: np.ndarray | None = None


def _hermite(t0, q0, v0, t1, q1, v1, t):
    """Cubic Hermite interpolation between (t0, q0, v0) and (t1, q1, v1); returns (q, v)."""
    h = t1 - t0
    s = (t - t0) / h
    s2, s3 = s * s, s * s * s
    h00 = 2 * s3 - 3 * s2 + 1
    h10 = s3 - 2 * s2 + s
    h01 = -2 * s3 + 3 * s2
    h11 = s3 - s2
    q = h00 * q0 + h10 * h * v0 + h01 * q1 + h11 * h * v1
    dh00 = (6 * s2 - 6 * s) / h
    dh10 = 3 * s2 - 4 * s + 1
    dh01 = (-6 * s2 + 6 * s) / h
    dh11 = 3 * s2 - 2 * s
    v = dh00 * q0 + dh10 * v0 + dh01 * q1 + dh11 * v1
    return q, v


def _linear(t0, q0, t1, q1, t):
    a = (t - t0) / (t1 - t0)
    return q0 + a * (q1 - q0), (q1 - q0) / (t1 - t0)


class TrajectoryPlayback:
    """Samples the active trajectory at the control rate."""

    def __init__(self):
        self._active: _TimedTrajectory | None = None
        self._pending: list[_TimedTrajectory] = []  # not started yet, sorted by start
        self._last_velocity: np.ndarray | None = None

    # ------------------------------------------------------------------ commands
    def submit(self, cmd: TrajectoryCommand, now: float, current_goal: np.ndarray,
               goal_time: float | None = None) -> float:
        """Take a validated trajectory received at `now`; returns its start time.

        `current_goal` is the position the arm is commanded to right now (the
        anchor when the trajectory takes over immediately), `goal_time` the driver
        time it was commanded for (None: unknown). A `goal_time` later than `now`
        is taken as the time of receipt (module docstring).
        """
        if goal_time is not None and goal_time > now:
            now = goal_time
        start = cmd.stamp if cmd.stamp is not None else now
        traj = _TimedTrajectory(
            start=start,
            times=start + cmd.times,
            positions=cmd.positions.copy(),
            velocities=None if cmd.velocities is None else cmd.velocities.copy(),
        )
        # A newer trajectory supersedes everything that would start at or after it.
        self._pending = [p for p in self._pending if p.start < start]
        if start <= now:
            self._pending.clear()
            self._activate(traj, now, current_goal)
        else:
            self._pending.append(traj)
        return start

    def clear(self) -> None:
        """Drop the active and pending trajectories (the caller then holds)."""
        self._active = None
        self._pending = []
        self._last_velocity = None

    def _activate(self, traj: _TimedTrajectory, now: float, current_goal: np.ndarray) -> None:
        traj.anchor_time = now
        traj.anchor_position = np.asarray(current_goal, dtype=float).copy()
        v = self._last_velocity if self._active is not None and self._last_velocity is not None else None
        traj.anchor_velocity = np.zeros_like(traj.anchor_position) if v is None else v.copy()
        self._active = traj

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        """True while a trajectory (active or pending) exists."""
        return self._active is not None or bool(self._pending)

    def end_time(self) -> float | None:
        """Time of the last point of the newest trajectory, None when idle."""
        traj = self._pending[-1] if self._pending else self._active
        return None if traj is None else float(traj.times[-1])

    def final_position(self) -> np.ndarray | None:
        """Last point of the newest trajectory, None when idle."""
        traj = self._pending[-1] if self._pending else self._active
        return None if traj is None else traj.positions[-1].copy()

    def finished(self, now: float) -> bool:
        """True when idle or when `now` is past the last point (holding it)."""
        end = self.end_time()
        return end is None or (not self._pending and now >= end)

    # ------------------------------------------------------------------ sampling
    def sample(self, now: float, current_goal: np.ndarray) -> np.ndarray | None:
        """Desired positions at `now`, or None when there is no trajectory (hold)."""
        due = [p for p in self._pending if p.start <= now]
        if due:
            self._activate(due[-1], now, current_goal)
            self._pending = [p for p in self._pending if p.start > now]
        traj = self._active
        if traj is None:
            return None
        times, pos, vel = traj.times, traj.positions, traj.velocities
        if now >= times[-1]:
            self._last_velocity = np.zeros(pos.shape[1])
            return pos[-1].copy()
        i = int(np.searchsorted(times, now, side="right"))  # times[i-1] <= now < times[i]
        if i == 0:
            t0, q0, v0 = traj.anchor_time, traj.anchor_position, traj.anchor_velocity
            if now <= t0 or times[0] <= t0:
                self._last_velocity = np.zeros(pos.shape[1])
                return q0.copy()
            t1, q1 = times[0], pos[0]
            v1 = None if vel is None else vel[0]
        else:
            t0, q0 = times[i - 1], pos[i - 1]
            v0 = None if vel is None else vel[i - 1]
            t1, q1 = times[i], pos[i]
            v1 = None if vel is None else vel[i]
        if vel is None:
            q, v = _linear(t0, q0, t1, q1, now)
        else:
            q, v = _hermite(t0, q0, v0, t1, q1, v1, now)
        self._last_velocity = v
        return q
