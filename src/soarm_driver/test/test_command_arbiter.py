"""Take-over and hand-back without ROS: the CommandArbiter alone, then inside DriverCore on the
mock backend (virtual clock, one control period per tick)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES
from soarm_driver.command_arbiter import HUMAN, POLICY, CommandArbiter
from soarm_driver.command_validation import TrajectoryCommand

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_core_lifecycle import HOME as HOME_Q, RATE, Harness

MAX_VEL = 3.0  # Harness: JointLimits(max_velocity=3.0)


def point(q) -> TrajectoryCommand:
    return TrajectoryCommand(times=np.array([0.0]), positions=np.asarray(q, float)[None, :], velocities=None,
                             stamp=None)


# ---------------------------------------------------------------- the arbiter alone
def test_only_the_active_source_is_admitted_and_the_other_is_counted():
    a = CommandArbiter()
    goal = np.zeros(6)
    assert a.source == POLICY
    assert a.admit(POLICY, point(np.ones(6) * 0.1), goal) is not None
    assert a.admit(HUMAN, point(np.zeros(6)), goal) is None
    assert a.state.ignored == {POLICY: 0, HUMAN: 1}
    assert a.select(HUMAN, "pedal") and a.state.takeovers == 1 and a.state.reason == "pedal"
    assert not a.select(HUMAN)  # already active: nothing changes
    assert a.admit(POLICY, point(np.zeros(6)), goal) is None
    assert a.state.ignored == {POLICY: 1, HUMAN: 1}
    with pytest.raises(ValueError, match="use one of policy, human"):
        a.select("joystick")
    assert a.source == HUMAN


def test_human_commands_are_aligned_at_handover_speed_until_within_tolerance():
    a = CommandArbiter(handover_speed=0.5, handover_tolerance=0.05)
    a.select(HUMAN)
    assert a.state.aligning
    leader = np.array([0.4, -0.2, 0.0, 0.0, 0.0, 0.1])
    cmd = a.admit(HUMAN, point(leader), np.zeros(6))
    # replaced by one straight move to the leader that takes max|delta| / speed
    assert cmd.times.tolist() == [pytest.approx(0.4 / 0.5)]
    np.testing.assert_allclose(cmd.positions[-1], leader)
    assert a.state.aligning
    near = leader + 0.04
    sent = point(near)
    assert a.admit(HUMAN, sent, leader) is sent  # within tolerance: followed as sent
    assert not a.state.aligning
    far = leader + 1.0
    assert a.admit(HUMAN, point(far), leader) is not None and not a.state.aligning  # no realign by itself
    a.realign()
    assert a.admit(HUMAN, point(far), leader).times[0] == pytest.approx(1.0 / 0.5)


def test_bad_handover_settings_say_what_is_allowed():
    with pytest.raises(ValueError, match="handover_speed must be > 0"):
        CommandArbiter(handover_speed=0.0)
    with pytest.raises(ValueError, match="handover_tolerance must be > 0"):
        CommandArbiter(handover_tolerance=-1)
    with pytest.raises(ValueError, match="unknown command source"):
        CommandArbiter(initial="leader")


# ---------------------------------------------------------------- inside the driver core
def select(h: Harness, source: str, reason: str = ""):
    req = h.core.request_select(source, reason)
    h.tick()
    assert req.done.is_set()
    return req


def start_episode(h: Harness):
    h.until(lambda: h.core.status().state == "ENABLED", what="enabled")
    req = h.core.request_reset("task", 7, False)
    h.until(req.done.is_set, what="reset answered")
    assert req.success, req.message


def goals(h: Harness, since: int) -> np.ndarray:
    return np.array([o.command for o in h.outputs[since:] if o.command is not None])


def test_switch_while_commands_stream_never_steps_faster_than_the_limit():
    h = Harness(config={"handover_speed": 0.5, "handover_tolerance": 0.02})
    start_episode(h)
    policy_target = np.array([0.3, -1.0, 1.1, 0.9, 0.2, 0.3])
    leader = np.array([-0.4, -0.6, 0.7, 0.4, -0.5, 1.0])  # far from the policy's target
    first = len(h.outputs)
    for _ in range(60):  # 1 s of policy commands, and a human stream that is ignored
        h.send(policy_target)
        h.core.command(JOINT_NAMES, [(0.0, list(leader), [])], None, h.t, source=HUMAN)
        h.tick()
    st = h.core.arbiter.state
    assert st.ignored[HUMAN] == 60 and st.ignored[POLICY] == 0
    assert np.allclose(h.outputs[-1].command, policy_target, atol=1e-6)  # the policy's target reached
    answer = select(h, HUMAN, "test take-over")
    assert answer.success and answer.previous == POLICY and "human in control" in answer.message
    switch = len(h.outputs)
    for _ in range(int(3.0 * RATE)):  # both keep streaming for 3 s
        h.send(policy_target + 0.1)
        h.core.command(JOINT_NAMES, [(0.0, list(leader), [])], None, h.t, source=HUMAN)
        h.tick()
    g = goals(h, first)
    steps = np.abs(np.diff(g, axis=0)).max(axis=1)
    assert steps.max() <= MAX_VEL / RATE + 1e-9  # never faster than max_joint_velocity
    aligned = goals(h, switch - 1)
    align_steps = np.abs(np.diff(aligned, axis=0)).max(axis=1)
    # the alignment moves at handover_speed; the one step that closes the last gap, once within
    # handover_tolerance, is at most the tolerance
    fast = np.flatnonzero(align_steps > 0.5 / RATE + 1e-6)
    assert len(fast) <= 1 and align_steps.max() <= 0.02 + 1e-9, align_steps[fast]
    np.testing.assert_allclose(h.outputs[-1].command, leader, atol=1e-6)  # then follows the leader
    assert not h.core.arbiter.state.aligning
    assert h.core.arbiter.state.ignored[POLICY] == int(3.0 * RATE)  # the policy's commands were ignored
    # hand back: the policy's commands are followed again, the human's ignored
    assert select(h, POLICY, "done").success
    for _ in range(60):
        h.send(policy_target)
        h.core.command(JOINT_NAMES, [(0.0, list(leader), [])], None, h.t, source=HUMAN)
        h.tick()
    assert np.abs(np.diff(goals(h, first), axis=0)).max() <= MAX_VEL / RATE + 1e-9
    np.testing.assert_allclose(h.outputs[-1].command, policy_target, atol=1e-6)
    kinds = [k for k, _ in h.events()]
    assert kinds[-2:] == ["INTERVENTION_START", "INTERVENTION_END"]
    details = [e.detail for o in h.outputs for e in o.events if e.kind.startswith("INTERVENTION")]
    assert details == ["test take-over", "done"]
    published = [o.command_source for o in h.outputs if o.command_source is not None]
    assert [p.source for p in published][-1] == POLICY and any(p.aligning for p in published)


def test_human_commands_taken_a_tick_late_still_align_at_handover_speed():
    """Over DDS the driver stamps a command's receipt in the subscription callback and queues it
    after validation; preempted in between, it is queued after the next tick has run and only
    taken by the tick after. Such a command must not move the follower faster than
    handover_speed: it used to be anchored at its receipt with the later tick's goal, so that
    tick stepped by the gap as well (0.5 rad/s x (1/60 + 0.04) s instead of 0.5/60 rad)."""
    h = Harness(config={"handover_speed": 0.5})
    start_episode(h)
    leader = HOME_Q + np.array([0.6, 0.3, -0.3, 0.2, -0.4, 0.3])
    switch = len(h.outputs)
    select(h, HUMAN, "pedal")
    for i in range(60):
        received = h.t - (0.04 if i % 3 == 2 else 0.0)  # every third: received 40 ms before the last tick
        h.core.command(JOINT_NAMES, [(1 / 30, list(leader), [])], None, received, source=HUMAN)
        h.tick()
    steps = np.abs(np.diff(goals(h, switch), axis=0)).max(axis=1)
    assert steps.max() <= 0.5 / RATE + 1e-9, steps.max()
    assert h.core.arbiter.state.aligning  # 0.6 rad at 0.5 rad/s: still on the way after 1 s


def test_reset_under_human_control_closes_and_reopens_the_window():
    h = Harness()
    start_episode(h)
    select(h, HUMAN, "take over")
    req = h.core.request_reset("task", 8, False)
    h.until(req.done.is_set, what="second reset answered")
    kinds = [k for k, _ in h.events()]
    i = kinds.index("INTERVENTION_START")
    assert kinds[i:] == ["INTERVENTION_START", "INTERVENTION_END", "ENDED", "RESET", "STARTED",
                         "INTERVENTION_START"]
    assert h.core.arbiter.state.aligning  # the reset moved the arm: align to the leader again


def test_switch_between_episodes_emits_no_event_and_unknown_source_is_refused():
    h = Harness()
    h.until(lambda: h.core.status().state == "ENABLED", what="enabled")
    assert select(h, HUMAN).success
    assert not [k for k, _ in h.events() if k.startswith("INTERVENTION")]
    bad = select(h, "robot")
    assert not bad.success and "use one of policy, human" in bad.message and h.core.arbiter.source == HUMAN
