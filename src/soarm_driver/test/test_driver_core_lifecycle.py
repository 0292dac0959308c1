"""DriverCore without ROS or DDS: enable, reset, reconnection, counters, with the mock backend.

The mock is a real-time backend: the tests drive the driver clock (`now`) and the wall clock
(`wall`, reconnection pacing) themselves, one control period per tick; only the mock's
outage (`fail_for`) runs on the real monotonic clock.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES, CameraSpec
from soarm_driver.backends.mock import MockBackend
from soarm_driver.core import DISABLED, ENABLED, ERROR, DriverConfig, DriverCore
from soarm_driver.joint_limits import JointLimits

HOME = np.array([0.0, -1.2, 1.3, 1.0, 0.0, 0.3])
RATE = 60.0


class Harness:
    """A core on the mock backend and a virtual clock; keeps every output and log line."""

    def __init__(self, reconnect_period=0.5, **mock):
        backend = MockBackend({"home_pose": [0.0] * 6, **mock})
        config = DriverConfig(limits=JointLimits(max_velocity=3.0), home_pose=HOME, control_rate_hz=RATE,
                              state_rate_hz=30.0, cameras=[CameraSpec("front", 16, 12, 30.0)],
                              reconnect_period=reconnect_period, backend="mock")
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
