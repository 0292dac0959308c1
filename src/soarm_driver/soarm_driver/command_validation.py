"""Validation of incoming joint trajectories (ROS-free).

The driver converts a trajectory_msgs/JointTrajectory into plain Python values and
calls `validate_trajectory`; any problem raises `CommandError` with a message that
says what is wrong and how to fix it, and the command is dropped as a whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from soarm_driver.backends.base import JOINT_NAMES


class CommandError(ValueError):
    """A command that must not be executed (the arm does not move on it)."""


@dataclass(frozen=True)
class TrajectoryCommand:
    """A validated trajectory, reordered to JOINT_NAMES order."""

    #: time_from_start of each point, seconds, strictly increasing, >= 0.
    times: np.ndarray
    #: (N, 6) positions, rad.
    positions: np.ndarray
    #: (N, 6) velocities, rad/s, or None when the message gave none.
    velocities: np.ndarray | None
    #: header.stamp in seconds, or None when it was zero ("start on receipt").
    stamp: float | None


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def validate_trajectory(
    joint_names: Sequence[str],
    points: Sequence[tuple[float, Sequence[float], Sequence[float]]],
    stamp: float | None = None,
    expected_names: Sequence[str] = JOINT_NAMES,
    now: float | None = None,
    max_points: int = 0,
    max_duration: float = 0.0,
) -> TrajectoryCommand:
    """Check a trajectory and return it in `expected_names` order.

    points: (time_from_start seconds, positions, velocities (may be empty)) per point; a
    sequence with len() (checked against `max_points` before any point is read).
    stamp: header.stamp in seconds (0 or None: start on receipt).
    now: time of receipt on the driver's clock (s); None skips the time rules.
    Raises CommandError on: empty or duplicate joint names, unknown or missing joints,
    no points, more than `max_points` points (> 0), wrong value counts, NaN/inf values,
    negative or non-increasing times; with `now`: a stamped trajectory whose last point
    ends before `now` (as joint_trajectory_controller; a zero stamp means "now"), and one
    whose last point ends more than `max_duration` s (> 0) after `now`.
    """
    names = list(joint_names)
    if not names:
        raise CommandError("trajectory has no joint_names; expected " + ", ".join(expected_names))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CommandError(f"duplicate joint names {dupes}")
    unknown = [n for n in names if n not in expected_names]
    if unknown:
        raise CommandError(f"unknown joint names {unknown}; valid names: {', '.join(expected_names)}")
    missing = [n for n in expected_names if n not in names]
    if missing:
        raise CommandError(f"missing joints {missing}: every command must name all of {', '.join(expected_names)}")
    if not points:
        raise CommandError("trajectory has no points")
    if max_points > 0 and len(points) > max_points:
        raise CommandError(f"trajectory has {len(points)} points, more than max_trajectory_points ({max_points}): "
                           "send it in shorter pieces or raise the driver's max_trajectory_points")
    order = [names.index(n) for n in expected_names]
    times, positions, velocities = [], [], []
    have_vel = None
    for i, (tfs, pos, vel) in enumerate(points):
        if not math.isfinite(tfs):
            raise CommandError(f"point {i}: time_from_start is not finite ({tfs})")
        if tfs < 0:
            raise CommandError(f"point {i}: negative time_from_start {tfs:.6f} s")
        if times and tfs <= times[-1]:
            raise CommandError(
                f"point {i}: time_from_start {tfs:.6f} s is not after point {i - 1} ({times[-1]:.6f} s); "
                "points must be strictly increasing in time"
            )
        if len(pos) != len(names):
            raise CommandError(f"point {i}: {len(pos)} positions for {len(names)} joint names")
        if not _finite(pos):
            raise CommandError(f"point {i}: positions contain NaN or inf: {list(pos)}")
        if len(vel) not in (0, len(names)):
            raise CommandError(f"point {i}: {len(vel)} velocities for {len(names)} joint names (give none or all)")
        if not _finite(vel):
            raise CommandError(f"point {i}: velocities contain NaN or inf: {list(vel)}")
        if have_vel is None:
            have_vel = len(vel) > 0
        elif have_vel != (len(vel) > 0):
            raise CommandError(f"point {i}: velocities given for some points only (give them for all or none)")
        times.append(float(tfs))
        positions.append([float(pos[j]) for j in order])
        if vel:
            velocities.append([float(vel[j]) for j in order])
    if stamp is not None and not math.isfinite(stamp):
        raise CommandError(f"header.stamp is not finite ({stamp})")
    if now is not None:
        _check_times(stamp or None, times[-1], now, max_duration)
    return TrajectoryCommand(
        times=np.asarray(times),
        positions=np.asarray(positions),
        velocities=np.asarray(velocities) if have_vel else None,
        stamp=stamp if stamp else None,
    )


def _check_times(stamp: float | None, duration: float, now: float, max_duration: float) -> None:
    """The time rules of `validate_trajectory` (stamp None: starts at `now`)."""
    end = (now if stamp is None else stamp) + duration
    if stamp is not None and end < now:
        raise CommandError(
            f"trajectory ends in the past: header.stamp {stamp:.3f} s + last time_from_start {duration:.3f} s "
            f"ended {now - end:.3f} s before its receipt ({now:.3f} s, driver clock); stamp it with the driver's "
            "clock (sim time when the driver runs the sim) or 0 for 'start on receipt'; across machines, "
            "synchronise the clocks (chrony; ~/status.stamp_offset shows the offset)")
    if max_duration > 0 and end - now > max_duration:
        raise CommandError(
            f"trajectory ends {end - now:.3f} s after its receipt (start {end - duration - now:+.3f} s, duration "
            f"{duration:.3f} s), more than max_trajectory_duration ({max_duration:g} s): send it in shorter pieces, "
            "check its header.stamp, or raise the driver's max_trajectory_duration")
