"""The policy's side of take-over, without ROS: ControlLoop.set_human_control holds while a human
drives (observations keep coming, nothing is planned or counted) and restarts the plan from the
current observation on hand-back; EpisodeRun counts interventions and the time under human control."""

from __future__ import annotations

import numpy as np

from soarm_act_policy.control_loop import HOLDING, RUNNING, ControlLoop, LoopConfig, Snapshot
from soarm_act_policy.episode_runner import EpisodeRun, Goal, Outcome
from soarm_act_policy.events import ENDED, INTERVENTION_END, INTERVENTION_START, STARTED, SUCCESS

PERIOD = 0.1


def loop_with_calls():
    calls = []

    def predict(payload):
        calls.append(payload)
        return np.full((5, 6), float(payload))  # the chunk repeats the observation's value

    loop = ControlLoop(LoopConfig(mode="ensemble", period=PERIOD, chunk_size=5, n_action_steps=5,
                                  trajectory_points=2), predict)
    loop.set_enabled(True)
    loop.episode_started()
    return loop, calls


def tick(loop, t, value):
    return loop.tick(t, Snapshot({"joint_states": t}, value))


def test_holds_while_a_human_drives_and_replans_from_the_current_state_on_hand_back():
    loop, calls = loop_with_calls()
    r = tick(loop, 10.0, 1.0)
    assert r.state == RUNNING and r.plan[0][0] == 1.0
    tick(loop, 10.1, 1.0)
    steps = loop.counters.steps
    loop.set_human_control("human in control")
    n_calls = len(calls)
    for k in range(5):  # the human moves the arm: the observations change, the policy holds
        r = tick(loop, 10.2 + k * PERIOD, 5.0)
        assert r.state == HOLDING and r.hold_reason == "human in control" and r.plan is None
    assert len(calls) == n_calls and loop.counters.steps == steps  # no inference, no step counted
    loop.set_human_control("")  # hand-back
    r = tick(loop, 10.75, 7.0)
    assert r.state == RUNNING
    assert r.num_blended == 1 and r.plan[0][0] == 7.0  # only the new chunk: nothing from before the take-over
    assert r.plan_time == 10.75  # a new timeline from the current observation


def test_episode_run_counts_interventions_and_human_time():
    run = EpisodeRun(Goal(time_limit=60.0))
    run.reset_done(True, "ok", episode_index=3, seed_used=5)
    run.started(100.0)
    run.on_event(STARTED, 3, 100.0)
    run.on_event(INTERVENTION_START, 3, 102.0)
    fb = run.feedback(103.5)
    assert fb.interventions == 1 and fb.human_in_control and abs(fb.human_time - 1.5) < 1e-9
    run.on_event(INTERVENTION_END, 3, 104.0)
    run.on_event(INTERVENTION_START, 2, 104.5)  # another episode's: ignored
    run.on_event(INTERVENTION_START, 3, 106.0)
    run.on_event(SUCCESS, 3, 107.0)  # the outcome ends the human time of an open window
    run.on_event(ENDED, 3, 108.0)
    res = run.result(109.0)
    assert res.outcome == Outcome.SUCCESS
    assert res.interventions == 2 and abs(res.human_time - 3.0) < 1e-9
    assert not run.feedback(109.0).human_in_control
