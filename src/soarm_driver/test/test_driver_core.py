"""Unit tests of the driver's ROS-free core: limits, validation, trajectory playback,
watchdog, the per-tick arm controller."""

import math

import numpy as np
import pytest

from soarm_driver.arm_controller import ArmController
from soarm_driver.backends.base import JOINT_NAMES
from soarm_driver.command_validation import CommandError, TrajectoryCommand, validate_trajectory
from soarm_driver.joint_limits import JointLimits
from soarm_driver.path_tolerance import PathToleranceMonitor
from soarm_driver.robot import LOWER_LIMITS, UPPER_LIMITS
from soarm_driver.trajectory_playback import TrajectoryPlayback
from soarm_driver.watchdog import CommandWatchdog

N = len(JOINT_NAMES)


def traj(times, positions, velocities=None, stamp=None):
    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 1:
        positions = np.tile(positions, (len(times), 1))
    return TrajectoryCommand(
        np.asarray(times, dtype=float), positions, None if velocities is None else np.asarray(velocities, float), stamp
    )


# ---------------------------------------------------------------- joint limits
def test_limits_clamp_positions_to_urdf_range():
    lim = JointLimits()
    q = lim.clamp([10, -10, 0, 0, 5, -5])
    assert q[0] == pytest.approx(UPPER_LIMITS[0]) and q[1] == pytest.approx(LOWER_LIMITS[1])
    assert q[4] == pytest.approx(UPPER_LIMITS[4]) and q[5] == pytest.approx(LOWER_LIMITS[5])
    assert lim.contains(q) and not lim.contains([10, 0, 0, 0, 0, 0])


def test_velocity_limit_caps_step_per_tick():
    lim = JointLimits(max_velocity=[1.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    res = lim.apply(np.zeros(N), np.full(N, 0.5), dt=0.1)
    np.testing.assert_allclose(res.goal, [0.1, 0.2, 0.1, 0.1, 0.1, 0.1])
    assert res.velocity_limited.all() and not res.position_clamped.any()
    small = lim.apply(np.zeros(N), np.full(N, 0.01), dt=0.1)
    np.testing.assert_allclose(small.goal, 0.01)
    assert not small.velocity_limited.any()


def test_limits_reject_bad_configuration():
    with pytest.raises(ValueError, match="lower must be < upper"):
        JointLimits(lower=[1] * 6, upper=[0] * 6)
    with pytest.raises(ValueError, match="max_joint_velocity"):
        JointLimits(max_velocity=[1, 2])
    with pytest.raises(ValueError, match="> 0"):
        JointLimits(max_velocity=0.0)


# ---------------------------------------------------------------- validation
def pts(*rows):
    return [(t, p, v) for t, p, v in rows]


def test_validation_reorders_by_name_and_keeps_stamp():
    names = list(reversed(JOINT_NAMES))
    cmd = validate_trajectory(names, pts((0.5, [6, 5, 4, 3, 2, 1], [])), stamp=12.5)
    np.testing.assert_allclose(cmd.positions[0], [1, 2, 3, 4, 5, 6])
    assert cmd.stamp == 12.5 and cmd.velocities is None
    assert validate_trajectory(JOINT_NAMES, pts((0.0, [0] * 6, [])), stamp=0.0).stamp is None


@pytest.mark.parametrize(
    "names,points,match",
    [
        (list(JOINT_NAMES[:5]) + ["elbow"], [(0.1, [0] * 6, [])], "unknown joint names \\['elbow'\\]"),
        (list(JOINT_NAMES[:5]), [(0.1, [0] * 5, [])], "missing joints \\['gripper'\\]"),
        (list(JOINT_NAMES[:5]) + ["shoulder_pan"], [(0.1, [0] * 6, [])], "duplicate"),
        ([], [(0.1, [], [])], "no joint_names"),
        (JOINT_NAMES, [], "no points"),
        (JOINT_NAMES, [(0.1, [0, 0, math.nan, 0, 0, 0], [])], "NaN or inf"),
        (JOINT_NAMES, [(0.1, [0, 0, math.inf, 0, 0, 0], [])], "NaN or inf"),
        (JOINT_NAMES, [(0.1, [0] * 6, [0, 0, 0, 0, 0, math.nan])], "velocities contain NaN"),
        (JOINT_NAMES, [(0.2, [0] * 6, []), (0.2, [0] * 6, [])], "strictly increasing"),
        (JOINT_NAMES, [(0.3, [0] * 6, []), (0.1, [0] * 6, [])], "not after point 0"),
        (JOINT_NAMES, [(-0.1, [0] * 6, [])], "negative"),
        (JOINT_NAMES, [(0.1, [0] * 5, [])], "5 positions for 6"),
        (JOINT_NAMES, [(0.1, [0] * 6, [0] * 6), (0.2, [0] * 6, [])], "some points only"),
    ],
)
def test_validation_rejects_bad_commands(names, points, match):
    with pytest.raises(CommandError, match=match):
        validate_trajectory(names, points)


# ---------------------------------------------------------------- trajectory playback
def test_linear_interpolation_from_anchor_and_between_points():
    f = TrajectoryPlayback()
    f.submit(traj([1.0, 2.0], [[1.0] * 6, [3.0] * 6]), now=10.0, current_goal=np.zeros(N))
    assert f.sample(10.0, np.zeros(N)) == pytest.approx(np.zeros(N))
    assert f.sample(10.5, None) == pytest.approx(np.full(N, 0.5))  # anchor -> point 0
    assert f.sample(11.5, None) == pytest.approx(np.full(N, 2.0))  # between points
    assert f.sample(12.0, None) == pytest.approx(np.full(N, 3.0))
    assert f.sample(15.0, None) == pytest.approx(np.full(N, 3.0))  # hold after the last point
    assert f.finished(15.0) and not f.finished(11.9)


def test_stamped_trajectory_is_timed_from_its_stamp():
    f = TrajectoryPlayback()
    f.submit(traj([1.0, 2.0], [[1.0] * 6, [2.0] * 6], stamp=9.0), now=10.0, current_goal=np.zeros(N))
    # start 9.0: point 0 at 10.0 already passed, at 10.5 we are halfway to point 1
    assert f.sample(10.5, None) == pytest.approx(np.full(N, 1.5))


def test_cubic_interpolation_when_velocities_given():
    f = TrajectoryPlayback()
    cmd = traj([1.0, 2.0], [[0.0] * 6, [1.0] * 6], velocities=[[0.0] * 6, [0.0] * 6])
    f.submit(cmd, now=0.0, current_goal=np.zeros(N))
    # Hermite with zero end velocities: smoothstep 3s^2 - 2s^3
    for s in (0.25, 0.5, 0.75):
        assert f.sample(1.0 + s, None)[0] == pytest.approx(3 * s**2 - 2 * s**3)


def test_newer_trajectory_replaces_rest_from_its_start_time():
    f = TrajectoryPlayback()
    f.submit(traj([4.0], [4.0] * 6), now=0.0, current_goal=np.zeros(N))
    assert f.sample(1.0, None)[0] == pytest.approx(1.0)
    # a new trajectory stamped to start at t=2: the old one runs until then
    f.submit(traj([1.0], [-1.0] * 6, stamp=2.0), now=1.0, current_goal=np.full(N, 1.0))
    assert f.sample(1.5, None)[0] == pytest.approx(1.5)
    assert f.sample(2.0, np.full(N, 2.0))[0] == pytest.approx(2.0)  # takes over from here
    assert f.sample(2.5, None)[0] == pytest.approx(0.5)
    assert f.sample(3.0, None)[0] == pytest.approx(-1.0)


def test_receipt_time_trajectory_replaces_immediately():
    f = TrajectoryPlayback()
    f.submit(traj([4.0], [4.0] * 6), now=0.0, current_goal=np.zeros(N))
    f.sample(1.0, None)
    f.submit(traj([1.0], [0.0] * 6), now=1.0, current_goal=np.full(N, 1.0))
    assert f.sample(1.5, None)[0] == pytest.approx(0.5)
    assert f.end_time() == pytest.approx(2.0)


def test_trajectory_taken_after_a_later_tick_counts_as_received_at_that_tick():
    """Received at 10.00 but taken after the tick of 10.04 that produced the goal (the receiving
    thread was preempted): anchored at that goal at 10.04 and timed from there, so the arm moves
    at the trajectory's own speed. Anchored at 10.00, the tick of 10.04 itself stepped 0.04."""
    f = TrajectoryPlayback()
    assert f.submit(traj([1.0], [1.0] * 6), now=10.0, current_goal=np.zeros(N), goal_time=10.04) == 10.04
    assert f.sample(10.04, None) == pytest.approx(np.zeros(N))
    assert f.sample(10.54, None) == pytest.approx(np.full(N, 0.5))
    assert f.end_time() == pytest.approx(11.04)
    # a stamped one keeps its stamp; only its anchor moves to the goal's time
    g = TrajectoryPlayback()
    g.submit(traj([1.0], [1.0] * 6, stamp=9.9), now=10.0, current_goal=np.zeros(N), goal_time=10.04)
    assert g.sample(10.04, None) == pytest.approx(np.zeros(N)) and g.end_time() == pytest.approx(10.9)
    # a goal older than the receipt changes nothing: timed from the receipt
    h = TrajectoryPlayback()
    assert h.submit(traj([1.0], [1.0] * 6), now=10.0, current_goal=np.zeros(N), goal_time=9.99) == 10.0


def test_single_point_zero_time_is_a_position_command():
    f = TrajectoryPlayback()
    f.submit(traj([0.0], [0.7] * 6), now=5.0, current_goal=np.zeros(N))
    assert f.sample(5.0, None) == pytest.approx(np.full(N, 0.7))


# ---------------------------------------------------------------- watchdog
def test_watchdog_one_shot_commands_never_trip():
    w = CommandWatchdog(0.5)
    w.on_command(0.0)
    assert not w.check(10.0, motion_in_progress=True)
    w.on_command(20.0), w.on_command(20.0)  # two trajectories sent together are no stream
    assert not w.check(21.0, motion_in_progress=True)


def test_watchdog_trips_when_stream_stops_mid_motion():
    w = CommandWatchdog(0.5)
    for t in (0.0, 0.1, 0.2):
        w.on_command(t)
    assert w.streaming and not w.check(0.6, True)
    assert w.check(0.71, True) and w.trips == 1
    assert not w.check(0.8, True)  # trips once per stream


def test_watchdog_stream_end_without_motion_does_not_trip_and_disabled():
    w = CommandWatchdog(0.5)
    w.on_command(0.0), w.on_command(0.1), w.on_command(0.2)
    assert w.streaming
    assert not w.check(1.0, motion_in_progress=False) and not w.streaming
    off = CommandWatchdog(0.0)
    off.on_command(0.0), off.on_command(0.0), off.on_command(0.0)
    assert not off.check(5.0, True)


# ---------------------------------------------------------------- arm controller
def controller(timeout=0.5, vmax=1.0):
    arm = ArmController(JointLimits(max_velocity=vmax), timeout)
    arm.set_enabled(True, np.zeros(N))
    return arm


def run(arm, t0, t1, dt=0.01):
    t, out = t0, []
    while t < t1 - 1e-9:
        t += dt
        out.append(arm.step(t, dt))
    return t, out


def test_position_command_reached_under_velocity_limit():
    arm = controller(vmax=1.0)
    arm.command(traj([0.0], [0.5] * 6), 0.0)
    _, steps = run(arm, 0.0, 0.25)
    assert arm.goal[0] == pytest.approx(0.25)  # 1 rad/s for 0.25 s
    assert steps[-1].limits.velocity_limited.all()
    run(arm, 0.25, 0.6)
    assert arm.goal == pytest.approx(np.full(N, 0.5))


def test_goals_clamped_to_joint_limits():
    arm = controller(vmax=100.0)
    arm.command(traj([0.0], [5.0] * 6), 0.0)
    run(arm, 0.0, 0.2)
    np.testing.assert_allclose(arm.goal, UPPER_LIMITS)


def test_controller_watchdog_holds_streamed_far_goal():
    arm = controller(timeout=0.3, vmax=0.5)
    arm.command(traj([0.0], [0.01] * 6), 0.0)
    arm.command(traj([0.0], [0.02] * 6), 0.02)
    arm.command(traj([0.0], [1.0] * 6), 0.05)  # streaming; far goal, takes ~2 s
    _, steps = run(arm, 0.05, 1.0)
    tripped_at = [i for i, s in enumerate(steps) if s.watchdog_tripped]
    assert len(tripped_at) == 1
    held = arm.goal.copy()
    assert held[0] < 0.3  # stopped well before the goal
    run(arm, 1.0, 2.0)
    np.testing.assert_allclose(arm.goal, held)


def test_controller_one_shot_far_goal_is_completed():
    arm = controller(timeout=0.3, vmax=0.5)
    arm.command(traj([0.0], [1.0] * 6), 0.0)
    run(arm, 0.0, 2.5)
    np.testing.assert_allclose(arm.goal, 1.0)


def test_move_to_home_is_timed_by_speed():
    arm = controller(vmax=10.0)
    duration = arm.move_to(np.array([0.4, 0, 0, 0, 0, 0]), speed=0.8, now=0.0)
    assert duration == pytest.approx(0.5)
    run(arm, 0.0, 0.25)
    assert arm.goal[0] == pytest.approx(0.2, abs=1e-6)
    run(arm, 0.25, 0.6)
    assert arm.reached(np.array([0.4, 0, 0, 0, 0, 0]))


def test_waiting_trajectories_run_in_start_order_until_replaced():
    f = TrajectoryPlayback()
    f.submit(traj([2.0], [2.0] * 6, stamp=1.0), now=0.0, current_goal=np.zeros(N))
    f.submit(traj([1.0], [-1.0] * 6, stamp=2.0), now=0.0, current_goal=np.zeros(N))
    assert f.sample(0.5, np.zeros(N)) is None  # nothing started yet: the caller holds
    assert f.sample(1.0, np.zeros(N))[0] == pytest.approx(0.0)
    assert f.sample(1.5, np.zeros(N))[0] == pytest.approx(0.5)  # first one runs from t=1
    assert f.sample(2.0, np.full(N, 1.0))[0] == pytest.approx(1.0)  # second takes over at its start
    assert f.sample(3.0, None)[0] == pytest.approx(-1.0)
    # a newer trajectory starting earlier drops a waiting one that starts later
    g = TrajectoryPlayback()
    g.submit(traj([1.0], [5.0] * 6, stamp=3.0), now=0.0, current_goal=np.zeros(N))
    g.submit(traj([1.0], [1.0] * 6, stamp=1.0), now=0.0, current_goal=np.zeros(N))
    assert g.sample(10.0, np.zeros(N))[0] == pytest.approx(1.0)


# ---------------------------------------------------------------- time and size rules
P = [0.0] * 6


def test_stamped_trajectory_ending_in_the_past_is_rejected_like_jtc():
    with pytest.raises(CommandError, match=r"ends in the past: header.stamp 9.000 s \+ last time_from_start 0.500 s "
                                           r"ended 0.500 s before its receipt \(10.000 s"):
        validate_trajectory(JOINT_NAMES, pts((0.0, P, []), (0.5, P, [])), stamp=9.0, now=10.0)
    # ending now or later is fine; stamp 0 means "now" whatever the clock says
    assert validate_trajectory(JOINT_NAMES, pts((1.0, P, [])), stamp=9.0, now=10.0).stamp == 9.0
    assert validate_trajectory(JOINT_NAMES, pts((0.0, P, [])), stamp=0.0, now=1e9).stamp is None
    # without `now` (no driver clock) the time rules are off
    assert validate_trajectory(JOINT_NAMES, pts((0.0, P, [])), stamp=1.0).stamp == 1.0


def test_trajectory_size_limits():
    class Points(list):
        def __iter__(self):
            raise AssertionError("points read although there are too many")

    with pytest.raises(CommandError, match=r"has 1000001 points, more than max_trajectory_points \(100\)"):
        validate_trajectory(JOINT_NAMES, Points([(0.0, P, [])] * 1_000_001), max_points=100)
    many = pts(*[(i * 0.01, P, []) for i in range(100)])
    assert len(validate_trajectory(JOINT_NAMES, many, max_points=100).times) == 100
    with pytest.raises(CommandError, match=r"ends 30.000 s after its receipt \(start \+0.000 s, duration 30.000 s\), "
                                           r"more than max_trajectory_duration \(20 s\)"):
        validate_trajectory(JOINT_NAMES, pts((30.0, P, [])), now=5.0, max_duration=20.0)
    with pytest.raises(CommandError, match=r"ends 19.500 s after its receipt \(start \+19.000 s"):
        validate_trajectory(JOINT_NAMES, pts((0.5, P, [])), stamp=24.0, now=5.0, max_duration=10.0)
    assert validate_trajectory(JOINT_NAMES, pts((20.0, P, [])), now=5.0, max_duration=20.0) is not None
    assert validate_trajectory(JOINT_NAMES, pts((1e6, P, [])), now=5.0, max_duration=0.0) is not None  # 0: off


# ---------------------------------------------------------------- path tolerance
def test_path_tolerance_trips_after_the_duration_per_joint():
    m = PathToleranceMonitor([0.2, 0.2, 0.2, 0.2, 0.2, 0.0], duration=0.5)
    goal = np.zeros(N)
    far = np.array([0.0, 0.0, 0.3, 0.0, 0.0, 2.0])  # elbow 0.3 rad off, gripper unchecked
    assert m.check(0.0, goal, far) is None and m.check(0.25, goal, far) is None
    assert m.check(0.375, goal, np.zeros(N)) is None  # back in tolerance: the timer restarts
    assert m.check(0.5, goal, far) is None and m.check(1.0, goal, far) is None
    why = m.check(1.01, goal, far)
    assert why == "path tolerance: elbow_flex measured 0.300 rad from its goal for 0.51 s (tolerance 0.2 rad for 0.5 s)"
    assert m.check(1.2, goal, far) is None  # restarted after a violation
    # two joints: the one farthest out is named, the other listed
    both = np.array([0.25, 0.0, 0.3, 0.0, 0.0, 0.0])
    m.reset()
    m.check(0.0, goal, both)
    assert m.check(1.0, goal, both).endswith("(tolerance 0.2 rad for 0.5 s), also shoulder_pan")
    np.testing.assert_allclose(m.deviation, both)
    with pytest.raises(ValueError, match="path_tolerance"):
        PathToleranceMonitor([0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="path_tolerance_duration"):
        PathToleranceMonitor(0.1, -1.0)
    assert not PathToleranceMonitor(0.0, 0.5).active
