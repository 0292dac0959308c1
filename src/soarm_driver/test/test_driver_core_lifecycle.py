"""DriverCore without ROS or DDS: enable, reset, reconnection, counters, with the mock backend.

The mock is a real-time backend: the tests drive the driver clock (`now`) and the wall clock
(`wall`, reconnection pacing) themselves, one control period per tick; only the mock's
outage (`fail_for`) runs on the real monotonic clock.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES, BackendError, CameraSpec
from soarm_driver.backends.mock import MockBackend
from soarm_driver.core import DISABLED, ENABLED, ERROR, DriverConfig, DriverCore
from soarm_driver.joint_limits import JointLimits

HOME = np.array([0.0, -1.2, 1.3, 1.0, 0.0, 0.3])
RATE = 60.0


class Harness:
    """A core on the mock backend and a virtual clock; keeps every output and log line."""

    def __init__(self, reconnect_period=0.5, backend_cls=MockBackend, config=None, **mock):
        backend = backend_cls({"home_pose": [0.0] * 6, **mock})
        config = DriverConfig(limits=JointLimits(max_velocity=3.0), home_pose=HOME, control_rate_hz=RATE,
                              state_rate_hz=30.0, cameras=[CameraSpec("front", 16, 12, 30.0)],
                              reconnect_period=reconnect_period, backend="mock", **(config or {}))
        self.logs: list[tuple[str, str]] = []
        self.core = DriverCore(config, backend, lambda level, text: self.logs.append((level, text)))
        self.t = 100.0
        self.outputs = []

    def tick(self, n=1):
        for _ in range(n):
            self.t += 1.0 / RATE
            self.outputs.append(self.core.tick(wall=self.t, now=self.t))
        return self.outputs[-1]

    def until(self, pred, max_ticks=2000, what="condition"):
        for _ in range(max_ticks):
            self.tick()
            if pred():
                return
        raise AssertionError(f"{what} not reached in {max_ticks} ticks; logs: {self.logs[-5:]}")

    def events(self):
        return [(e.kind, e.episode_index) for o in self.outputs for e in o.events]

    def send(self, positions, t_from_start=0.0):
        return self.core.command(JOINT_NAMES, [(t_from_start, list(positions), [])], None, self.t)


def test_connects_enabled_and_publishes_states_commands_frames():
    h = Harness()
    assert h.core.status().state == "CONNECTING"
    out = h.tick()
    assert out.status_changed and h.core.status().state == ENABLED
    h.tick(10)
    assert any(o.joint_state is not None for o in h.outputs) and any(o.frames for o in h.outputs)
    np.testing.assert_allclose(h.outputs[-1].command, 0.0)  # holds where it is
    assert all(o.clock is None for o in h.outputs)  # real-time backend: no /clock


def test_disable_rejects_commands_and_enable_resumes_without_a_jump():
    h = Harness()
    h.tick(2)
    assert h.send([0.4] * 6) is None
    h.until(lambda: h.outputs[-1].command[0] > 0.2, what="moving")
    off = h.core.request_enable(False)
    h.tick()
    assert off.done.is_set() and off.success and off.message == "torque off"
    assert h.core.status().state == DISABLED and h.tick().command is None
    assert "call /driver/enable first" in h.send([0.0] * 6)
    held = h.core.backend.read_positions()
    on = h.core.request_enable(True)
    out = h.tick()
    assert on.success and h.core.status().state == ENABLED
    np.testing.assert_allclose(out.command, held, atol=1e-9)  # goal = measured pose, no jump
    st = h.core.status()
    assert (st.accepted, st.rejected) == (1, 1)


def test_reset_moves_home_then_starts_the_episode():
    h = Harness()
    h.tick(2)
    reset = h.core.request_reset(task="stack it", seed=7, randomize=True)
    h.tick()
    assert h.events() == [("RESET", 0)] and h.core.status().resetting
    assert h.send([0.1] * 6) == "reset_episode in progress"
    second = h.core.request_reset(seed=8)
    h.tick()
    assert not second.success and second.message == "a reset is already in progress"
    h.until(reset.done.is_set, what="reset answered")
    assert reset.success and (reset.episode_index, reset.seed_used) == (0, 7)
    np.testing.assert_allclose(h.core.backend.read_positions(), HOME, atol=0.05)
    started = [e for o in h.outputs for e in o.events if e.kind == "STARTED"]
    assert [(e.episode_index, e.task, e.seed) for e in started] == [(0, "stack it", -1)]  # seed: sim only
    st = h.core.status()
    assert not st.resetting and st.episode_index == 0 and st.stages is None  # mock: no task stages
    # the next reset ends the running episode first; a fresh seed when none is given
    again = h.core.request_reset()
    h.until(again.done.is_set, what="second reset answered")
    assert again.success and again.seed_used >= 0
    assert h.events() == [("RESET", 0), ("STARTED", 0), ("ENDED", 0), ("RESET", 1), ("STARTED", 1)]


def test_disable_during_reset_fails_it_and_a_disabled_arm_refuses_reset():
    h = Harness()
    h.tick(2)
    reset = h.core.request_reset(seed=1)
    h.tick(3)
    h.core.request_enable(False)
    h.tick()
    assert reset.done.is_set() and not reset.success and reset.message == "arm disabled during reset"
    assert not h.core.status().resetting
    refused = h.core.request_reset(seed=2)
    h.tick()
    assert not refused.success and "call /driver/enable first" in refused.message


def test_bus_failure_error_state_then_reconnection():
    h = Harness(reconnect_period=0.1, fail_at=0.5, fail_for=0.3)
    h.until(lambda: h.core.status().state == ERROR, what="ERROR after the mock bus failure")
    st = h.core.status()
    assert "simulated bus failure" in st.detail and "simulated bus failure" in st.last_error
    # while in error: no output, commands and services refused
    assert h.outputs[-1].joint_state is None and h.outputs[-1].command is None
    assert "driver state is ERROR" in h.send([0.1] * 6)
    enable = h.core.request_enable(True)
    reset = h.core.request_reset(seed=1)
    h.tick()
    assert not enable.success and "not connected" in enable.message
    assert not reset.success and "ERROR" in reset.message
    # retried every reconnect_period (virtual wall) while the bus stays down (0.3 s real time)
    h.tick(int(0.25 * RATE))
    assert sum("backend connect failed" in text for _, text in h.logs) >= 2
    assert h.core.status().detail.startswith("connect failed")
    time.sleep(0.35)
    h.until(lambda: h.core.status().state == ENABLED, what="reconnected")
    assert h.core.status().reconnects == 1 and "simulated bus failure" in h.core.status().last_error
    h.tick(5)
    assert any(o.joint_state is not None for o in h.outputs[-5:])


def test_clamped_commands_and_watchdog_trips_are_counted():
    h = Harness()
    h.tick(2)
    h.send([5.0] * 6)  # beyond every upper limit: executed clamped
    h.until(lambda: np.allclose(h.outputs[-1].command, h.core.config.limits.upper), what="at the limits")
    assert h.core.status().clamped == 1
    assert h.core.config.limits.contains(h.outputs[-1].command)
    h.send([0.1] * 6)  # inside the limits: not counted
    h.tick(5)
    assert h.core.status().clamped == 1
    # a stream (3 commands 1/30 s apart) of a slow motion that stops: the watchdog holds
    for _ in range(3):
        h.send([-0.5] * 6, t_from_start=2.0)
        h.tick(2)
    h.tick(int(0.6 * RATE))
    st = h.core.status()
    assert st.watchdog_trips == 1 and st.accepted == 5
    assert any("watchdog" in text for level, text in h.logs if level == "warning")


def test_invalid_commands_are_rejected_with_the_reason():
    h = Harness()
    h.tick()
    why = h.core.command(JOINT_NAMES[:5], [(0.0, [0.0] * 5, [])], None, h.t)
    assert why.startswith("missing joints")
    assert h.core.status().rejected == 1
    assert [text for level, text in h.logs if level == "error"] == [
        "joint_trajectory rejected, arm not moved: " + why]


def test_config_refuses_a_home_pose_outside_the_limits():
    with pytest.raises(ValueError, match="home_pose"):
        DriverConfig(limits=JointLimits(), home_pose=[0, 0, 0, 0, 0, 9.0])


@pytest.mark.parametrize("field", ["real_time_factor", "status_period", "control_rate_hz"])
def test_config_refuses_rates_and_periods_that_are_not_positive(field):
    with pytest.raises(ValueError, match=f"{field} must be > 0"):
        DriverConfig(limits=JointLimits(), home_pose=[0.0] * 6, **{field: 0.0})


def test_camera_spec_refuses_an_empty_image_naming_the_parameters():
    with pytest.raises(ValueError, match=r"cameras\.front\.width/height/fps"):
        CameraSpec("front", 0, 480)


def test_status_on_change_and_every_status_period_with_the_tick_rate():
    h = Harness(config={"status_period": 0.5})
    first = h.tick()  # connects: status changed, and the first report
    assert first.status.state == ENABLED and first.tick_rate == pytest.approx(RATE)
    h.until(lambda: h.outputs[-1].tick_rate is not None, what="the periodic report")
    between = h.outputs[1:-1]
    assert len(between) in (28, 29, 30) and all(o.status is None and o.tick_rate is None for o in between)
    assert h.outputs[-1].status.state == ENABLED and h.outputs[-1].tick_rate == pytest.approx(RATE, rel=0.05)
    h.core.request_enable(False)
    off = h.tick()  # a change between reports is sent at once, without a tick rate
    assert off.status.state == DISABLED and off.tick_rate is None
    assert h.core.wall_period == pytest.approx(1.0 / RATE)  # real-time backend: real_time_factor ignored


# ---------------------------------------------------------------- path tolerance (stall detection)
class FrozenJointMock(MockBackend):
    """The mock with joints that stop following their goal (a stalled servo, an obstacle)."""

    frozen: set[int] = set()

    def advance(self, dt):
        kept = {j: self._q[j] for j in self.frozen}
        super().advance(dt)
        for j, v in kept.items():
            self._q[j] = v


def test_default_tolerance_does_not_trip_on_fast_moves():
    h = Harness()  # default path tolerance; the mock lags 0.126 rad behind at 3 rad/s
    h.tick(2)
    for target in ([1.0, -1.0, 1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, 1.0, -1.0, 0.0]):
        h.send(target)
        h.tick(int(1.5 * RATE))
    st = h.core.status()
    assert st.tolerance_trips == 0 and st.hold_reason == ""
    assert h.core.path.deviation.max() < 0.01  # arrived


def test_stalled_joint_makes_the_arm_hold_at_its_measured_position():
    h = Harness(backend_cls=FrozenJointMock, config={"path_tolerance": [0.2] * 6, "path_tolerance_duration": 0.3})
    h.tick(2)
    h.core.backend.frozen = {2}  # elbow_flex stops following
    assert h.send([0.5] * 6, t_from_start=1.0) is None
    h.until(lambda: h.core.status().hold_reason != "", what="hold after the path tolerance")
    st = h.core.status()
    assert st.tolerance_trips == 1 and st.state == ENABLED
    # 0.5 rad/s: out of tolerance 0.4 s into the move, tripped 0.33 s later, ~0.36 rad from the goal
    assert re.fullmatch(r"path tolerance: elbow_flex measured 0\.3[4-7]\d rad from its goal for 0\.3\d s "
                        r"\(tolerance 0\.2 rad for 0\.3 s\)", st.hold_reason), st.hold_reason
    assert any(level == "error" and "path tolerance" in text for level, text in h.logs)
    q_trip = h.core.backend.read_positions()  # the other joints stop where they are
    assert 0.3 < q_trip[0] < 0.37 and q_trip[2] == 0.0
    h.tick(30)
    np.testing.assert_allclose(h.outputs[-1].command, q_trip, atol=1e-3)  # holds the measured position
    np.testing.assert_allclose(h.core.backend.read_positions(), q_trip, atol=1e-3)
    why = h.send([0.6] * 6)
    assert why.startswith("holding after path tolerance: elbow_flex") and "/driver/enable true" in why
    assert h.core.status().last_rejection == why
    # an explicit enable resumes; the still frozen joint trips again (counted again)
    assert h.core.request_enable(True) and h.tick() is not None and h.core.status().hold_reason == ""
    assert h.send([0.6] * 6) is None
    h.until(lambda: h.core.status().tolerance_trips == 2, what="second trip")


def test_stall_during_reset_fails_the_reset_and_reset_clears_the_hold():
    h = Harness(backend_cls=FrozenJointMock, config={"path_tolerance": 0.2, "path_tolerance_duration": 0.2})
    h.tick(2)
    h.core.backend.frozen = {1}
    reset = h.core.request_reset(seed=1)
    h.until(reset.done.is_set, what="reset answered")
    assert not reset.success and reset.message.startswith("reset stopped: path tolerance: shoulder_lift")
    assert h.core.status().hold_reason and not h.core.status().resetting
    h.core.backend.frozen = set()
    again = h.core.request_reset(seed=2)
    h.tick()
    assert h.core.status().hold_reason == ""
    h.until(again.done.is_set, what="second reset answered")
    assert again.success


def test_gripper_is_not_checked_by_default_and_tolerance_zero_disables():
    h = Harness(backend_cls=FrozenJointMock)
    h.tick(2)
    h.core.backend.frozen = {5}  # a grasped object keeps the jaw away from its goal
    h.send([0, 0, 0, 0, 0, 1.0])
    h.tick(int(2 * RATE))
    assert h.core.status().tolerance_trips == 0 and h.core.path.deviation[5] > 0.9
    off = Harness(backend_cls=FrozenJointMock, config={"path_tolerance": [0.0]})
    off.tick(2)
    off.core.backend.frozen = {0}
    off.send([1.0] * 6)
    off.tick(int(2 * RATE))
    assert off.core.status().tolerance_trips == 0


# ---------------------------------------------------------------- bus errors within the grace period
class GlitchyMock(MockBackend):
    """The mock whose reads (and writes, when `fail_writes`) raise BackendError while `silent`."""

    silent = False
    fail_writes = False
    disconnects = 0

    def read_positions(self):
        if self.silent:
            raise BackendError("mock: no answer from servo 3")
        return super().read_positions()

    def write_goal_positions(self, goal):
        if self.silent and self.fail_writes:
            raise BackendError("mock: write failed")
        super().write_goal_positions(goal)

    def disconnect(self):
        self.disconnects += 1
        super().disconnect()


def silence(h: Harness, seconds: float, moving_to=None) -> list:
    """Make the bus silent for `seconds` of (virtual) wall time; returns the outputs meanwhile."""
    h.core.backend.silent = True
    start = len(h.outputs)
    h.tick(round(seconds * RATE))
    h.core.backend.silent = False
    return h.outputs[start:]


def test_bus_silent_150ms_keeps_torque_and_goal():
    h = Harness(backend_cls=GlitchyMock)
    h.tick(2)
    h.send([0.3] * 6)
    h.tick(int(RATE))
    held = h.outputs[-1].command.copy()
    during = silence(h, 0.15)
    assert all(o.command is None and o.joint_state is None for o in during)  # nothing published
    st = h.core.status()
    assert st.state == ENABLED and st.bus_errors == 9 and "no answer from servo 3" in st.last_error
    assert h.core.backend._torque and h.core.backend.disconnects == 0
    after = h.tick()
    np.testing.assert_allclose(after.command, held)  # the goal did not change
    assert h.core.status().reconnects == 0
    assert any("answering again after 0.1" in text for _, text in h.logs)


def test_failed_write_is_taken_back_within_the_grace():
    h = Harness(backend_cls=GlitchyMock)
    h.tick(2)
    h.core.backend.fail_writes = True
    h.send([0.5] * 6, t_from_start=0.5)  # moving: every tick wants a new goal
    h.tick(10)
    before = h.core.arm.goal.copy()
    silence(h, 0.1)
    np.testing.assert_allclose(h.core.arm.goal, before)  # the servos' last goal, not a goal never written
    assert h.core.status().state == ENABLED


def test_bus_silent_longer_than_the_grace_is_an_error():
    h = Harness(backend_cls=GlitchyMock, config={"bus_error_grace": 0.3}, reconnect_period=10.0)
    h.tick(2)
    silence(h, 0.25)
    assert h.core.status().state == ENABLED
    h.tick(5)
    silence(h, 0.4)
    st = h.core.status()
    assert st.state == ERROR and st.detail.startswith("mock: no answer from servo 3 (still failing after 0.3")
    assert h.core.backend.disconnects == 1  # closing the bus: torque off where it can be reached
    zero = Harness(backend_cls=GlitchyMock, config={"bus_error_grace": 0.0})
    zero.tick(2)
    silence(zero, 1 / RATE)
    assert zero.core.status().state == ERROR and zero.core.status().detail == "mock: no answer from servo 3"


# ---------------------------------------------------------------- time and size rules, clock skew
def test_time_and_size_rules_reject_with_the_reason():
    h = Harness(config={"max_trajectory_points": 50, "max_trajectory_duration": 5.0})
    h.tick(2)
    now = h.t
    point = lambda t: (t, [0.1] * 6, [])  # noqa: E731
    past = h.core.command(JOINT_NAMES, [point(0.0), point(0.5)], now - 1.0, now)
    assert past.startswith("trajectory ends in the past") and "chrony" in past
    assert h.core.command(JOINT_NAMES, [point(0.0), point(1.5)], now - 1.0, now) is None  # ends in the future
    assert h.core.command(JOINT_NAMES, [point(0.0)], 0.0, now + 1e6) is None  # stamp 0: now
    many = h.core.command(JOINT_NAMES, [point(i * 0.01) for i in range(51)], None, now)
    assert many.startswith("trajectory has 51 points, more than max_trajectory_points (50)")
    long = h.core.command(JOINT_NAMES, [point(0.0), point(6.0)], None, now)
    assert "more than max_trajectory_duration (5 s)" in long
    future = h.core.command(JOINT_NAMES, [point(0.0)], now + 10.0, now)
    assert future.startswith("trajectory ends 10.000 s after its receipt (start +10.000 s")
    st = h.core.status()
    assert (st.accepted, st.rejected) == (0, 4) and st.last_rejection == future
    h.tick()
    assert h.core.status().accepted == 2


def test_stamp_offset_reports_clock_skew():
    h = Harness()
    h.tick(2)
    st = h.core.status()
    assert np.isnan(st.stamp_offset) and np.isnan(st.stamp_offset_mean)
    h.core.command(JOINT_NAMES, [(1.0, [0.0] * 6, [])], None, h.t)  # unstamped: no offset
    assert np.isnan(h.core.status().stamp_offset)
    for _ in range(30):  # a client whose clock runs 0.25 s behind ours
        h.core.command(JOINT_NAMES, [(1.0, [0.0] * 6, [])], h.t - 0.25, h.t)
        h.tick()
    st = h.core.status()
    assert st.stamp_offset == pytest.approx(0.25) and st.stamp_offset_mean == pytest.approx(0.25)
    h.core.command(JOINT_NAMES, [(1.0, [0.0] * 6, [])], h.t + 2.0, h.t)  # 2 s ahead: counted although rejected
    st = h.core.status()
    assert st.stamp_offset == pytest.approx(-2.0) and st.stamp_offset_mean == pytest.approx(0.25 - 0.1 * 2.25)
