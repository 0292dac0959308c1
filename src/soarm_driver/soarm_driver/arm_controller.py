"""The driver's per-tick arm logic (ROS-free): trajectory playback, safety limits,
watchdog, enable state. The node feeds it commands and measured positions and sends
the goal it returns to the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soarm_driver.command_validation import TrajectoryCommand
from soarm_driver.joint_limits import JointLimits, LimitResult
from soarm_driver.trajectory_playback import TrajectoryPlayback
from soarm_driver.watchdog import CommandWatchdog

#: A goal closer than this to its target (rad, every joint) counts as reached.
REACHED_TOL = 1e-4


@dataclass
class StepResult:
    goal: np.ndarray
    limits: LimitResult
    watchdog_tripped: bool


class ArmController:
    def __init__(self, limits: JointLimits, command_timeout: float):
        self.limits = limits
        self.playback = TrajectoryPlayback()
        self.watchdog = CommandWatchdog(command_timeout)
        self.enabled = False
        self.goal: np.ndarray | None = None
        #: Driver time the goal was computed for (the last `step`); None after `sync`.
        self.goal_time: float | None = None
        #: Number of commands accepted so far (tells which command a step's clamping belongs to).
        self.command_seq = 0

    def sync(self, measured: np.ndarray) -> None:
        """Forget every command and hold where the arm is (connect, enable, disable)."""
        self.playback.clear()
        self.watchdog.reset()
        self.goal = self.limits.clamp(measured)
        self.goal_time = None

    def set_enabled(self, enabled: bool, measured: np.ndarray) -> None:
        self.enabled = bool(enabled)
        self.sync(measured)

    def command(self, cmd: TrajectoryCommand, now: float) -> float:
        """Accept a validated trajectory received at `now`; returns its start time. Received
        before the last `step` (taken after it), it counts as received at that step's time
        (trajectory_playback.py)."""
        self.watchdog.on_command(now)
        self.command_seq += 1
        return self.playback.submit(cmd, now, self.goal, self.goal_time)

    def move_to(self, target: np.ndarray, speed: float, now: float) -> float:
        """Move to `target` along a straight joint-space line at `speed` rad/s (the
        fastest joint); returns the planned duration in seconds. Not watched."""
        target = self.limits.clamp(target)
        duration = max(float(np.max(np.abs(target - self.goal))) / max(speed, 1e-6), 0.05)
        cmd = TrajectoryCommand(times=np.array([duration]), positions=target[None, :], velocities=None, stamp=None)
        self.playback.submit(cmd, now, self.goal, self.goal_time)
        self.watchdog.reset()
        return duration

    def hold(self) -> None:
        self.playback.clear()

    def motion_in_progress(self, now: float) -> bool:
        if not self.playback.finished(now):
            return True
        target = self.playback.final_position()
        return target is not None and not self.reached(target)

    def reached(self, target: np.ndarray, tol: float = REACHED_TOL) -> bool:
        return self.goal is not None and bool(np.all(np.abs(self.limits.clamp(target) - self.goal) <= tol))

    def step(self, now: float, dt: float) -> StepResult:
        """The goal to send at `now` (dt: seconds since the previous step)."""
        tripped = self.watchdog.check(now, self.motion_in_progress(now))
        if tripped:
            self.playback.clear()
        desired = self.playback.sample(now, self.goal)
        if desired is None:
            desired = self.goal
        res = self.limits.apply(self.goal, desired, dt)
        self.goal, self.goal_time = res.goal, now
        return StepResult(goal=res.goal, limits=res, watchdog_tripped=tripped)
