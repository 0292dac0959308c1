"""The `run_policy` episode state machine (`episode_runner`), without ROS or DDS."""

import math

import pytest

from soarm_act_policy.episode_runner import (
    DRIVER_DISABLED, DRIVER_ERROR, EV_ENDED, EV_FAILURE, EV_RESET, EV_STARTED, EV_SUCCESS, POLICY_ERROR, POLICY_RUNNING,
    EpisodeRun, Goal, Outcome, Phase, PolicyCounters, goal_problem,
)

HOLDING = 2


def running(time_limit=10.0, t0=100.0, index=7, seed_used=1003) -> EpisodeRun:
    run = EpisodeRun(Goal(task="Put the cube in the target zone", time_limit=time_limit, seed=-1))
    assert run.phase == Phase.RESETTING
    run.reset_done(True, "ok", episode_index=index, seed_used=seed_used)
    assert run.phase == Phase.STARTING
    run.started(t0)
    assert run.phase == Phase.RUNNING and not run.done
    return run


def test_constants_equal_the_messages():
    from soarm_msgs.action import RunPolicy
    from soarm_msgs.msg import DriverStatus, EpisodeEvent, PolicyStatus

    from soarm_act_policy import episode_runner as er

    for o in Outcome:
        assert getattr(RunPolicy.Result, o.name) == o.value
    for ph in (Phase.RESETTING, Phase.STARTING, Phase.RUNNING, Phase.STOPPING):
        assert getattr(RunPolicy.Feedback, ph.name) == ph.value
    assert (er.EV_STARTED, er.EV_SUCCESS, er.EV_FAILURE, er.EV_RESET, er.EV_ENDED) == (
        EpisodeEvent.STARTED, EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.RESET, EpisodeEvent.ENDED)
    assert (er.POLICY_RUNNING, er.POLICY_ERROR, er.DRIVER_ERROR, er.DRIVER_DISABLED) == (
        PolicyStatus.RUNNING, PolicyStatus.ERROR, DriverStatus.ERROR, DriverStatus.DISABLED)


def test_time_limit_on_the_node_clock_gives_timeout_with_counters():
    run = running(time_limit=10.0, t0=100.0)
    run.on_policy_status(HOLDING, "disabled", PolicyCounters(steps=50, stale=4))  # the first status after enable
    run.on_policy_status(POLICY_RUNNING, "", PolicyCounters(steps=140, stale=5, missing=1, no_action=2, late=3))
    assert run.check(109.99) is None
    fb = run.feedback(105.0)
    assert (fb.state, fb.elapsed, fb.control_steps, fb.skipped_steps, fb.interventions) == (
        Phase.RUNNING, 5.0, 90, 7, 0)
    assert run.check(110.0) == Outcome.TIMEOUT and run.phase == Phase.STOPPING
    run.stopped(110.2)
    r = run.result(111.0)
    assert r.outcome == Outcome.TIMEOUT and r.message == "timeout after 10.0 s"
    assert (r.episode_index, r.seed, r.duration, r.time_to_success) == (7, 1003, pytest.approx(10.2), -1.0)
    assert r.counters == PolicyCounters(steps=90, stale=1, missing=1, no_action=2, late=3) and r.counters.skipped == 7
    assert r.stages == -1  # nobody told


def test_success_event_of_the_episode_wins_and_stages_are_ored():
    run = running(t0=100.0, index=7)
    run.on_event(EV_SUCCESS, 6, 101.0, stages=15)  # the previous episode (transient local): ignored
    run.on_driver_status(1, "", 7, 3)
    assert not run.done and run.feedback(101.0).stages == 3
    run.on_event(EV_SUCCESS, 7, 104.5, stages=12, detail="cube in target zone")
    assert run.check(200.0) == Outcome.SUCCESS  # the first outcome wins over the time limit
    run.on_event(EV_FAILURE, 7, 105.0)  # e.g. a late FAILURE: ignored
    run.stopped(104.6)
    r = run.result(104.6)
    assert (r.outcome, r.message, r.time_to_success, r.stages) == (Outcome.SUCCESS, "cube in target zone", 4.5, 15)


def test_cancel_failure_errors_and_other_resets():
    run = running()
    assert run.cancel() and run.outcome == Outcome.CANCELED
    assert not run.abort("late")  # first outcome wins

    run = running(index=3)
    run.on_event(EV_FAILURE, 3, 101.0, detail="operator abort")
    assert run.outcome == Outcome.FAILURE and "operator abort" in run.message

    run = running()
    run.on_policy_status(POLICY_ERROR, "non-finite action", PolicyCounters())
    assert run.outcome == Outcome.ABORTED and run.message == "policy error: non-finite action"

    run = running()
    run.on_driver_status(DRIVER_ERROR, "bus lost", 7, -1)
    assert run.outcome == Outcome.ABORTED and run.message == "driver error: bus lost"

    run = running()
    run.on_driver_status(DRIVER_DISABLED, "", 7, -1)
    assert run.outcome == Outcome.ABORTED and "driver disabled" in run.message

    run = running(index=7)
    run.on_event(EV_STARTED, 8, 101.0)  # someone else reset the driver
    assert run.outcome == Outcome.ABORTED and "episode 8 started by another reset_episode" in run.message

    run = EpisodeRun(Goal(time_limit=5.0))
    run.reset_done(True, "", episode_index=7)
    run.on_event(EV_RESET, 7, 100.0)  # the driver's own reset of this episode (RESET, STARTED of the new index)
    run.on_event(EV_STARTED, 7, 100.1)
    run.started(100.2)
    assert not run.done
    run.on_event(EV_RESET, 8, 101.0)
    assert run.outcome == Outcome.ABORTED and "episode 8 started by another reset_episode" in run.message

    run = running(index=7)
    run.on_event(EV_ENDED, 7, 101.0)
    assert run.outcome == Outcome.ABORTED and "ended by someone else" in run.message


def test_refused_reset_aborts_before_the_policy_runs_and_early_events_are_kept():
    run = EpisodeRun(Goal(time_limit=5.0))
    run.reset_done(False, "arm disabled: call /driver/enable first")
    assert run.outcome == Outcome.ABORTED and "arm disabled" in run.message
    run.stopped(3.0)
    r = run.result(3.0)
    assert (r.episode_index, r.duration, r.counters.steps) == (-1, 0.0, 0)

    # the STARTED event (with the driver's task text) may arrive before the reset's answer
    run = EpisodeRun(Goal(task="", time_limit=5.0))
    run.on_event(EV_STARTED, 4, 10.0, task="Put the cube in the target zone")
    run.reset_done(True, "", episode_index=4, seed_used=-1)
    assert run.task == "Put the cube in the target zone" and run.seed == -1


def test_cancel_before_the_start_and_result_needs_an_outcome():
    run = EpisodeRun(Goal(time_limit=5.0))
    with pytest.raises(RuntimeError):
        run.result(0.0)
    run.reset_done(True, "", episode_index=1, seed_used=5)
    run.cancel()
    run.started(1.0)  # ignored: the run is over
    assert run.phase == Phase.STOPPING and run.t_start is None
    assert run.result(2.0).duration == 0.0


@pytest.mark.parametrize("limit", [0.0, -1.0, math.nan, math.inf])
def test_bad_time_limits_are_named(limit):
    assert "time_limit" in goal_problem(Goal(time_limit=limit))
    assert goal_problem(Goal(time_limit=0.5)) is None
