"""One policy episode as a state machine, ROS-free: the core of the `run_policy` action.

The node (`run_policy_node`) does the I/O and feeds this core what happened; the core
decides the outcome and builds the feedback and the result. Sequence:

    RESETTING  reset_episode(task, seed, randomize)  -> reset_done(...)   (refused -> ABORTED)
    STARTING   policy ~/reset, ~/enable true          -> started(now)      (refused -> ABORTED)
    RUNNING    until, checked by check(now) on every loop pass of the node:
                 SUCCESS event of the episode                              -> SUCCESS
                 FAILURE event of the episode (someone else's)             -> FAILURE
                 ENDED of the episode, or a newer RESET / STARTED          -> ABORTED (another reset)
                 policy_status ERROR, driver status ERROR or DISABLED      -> ABORTED (their reason)
                 now - t_enable >= time_limit (node clock)                 -> TIMEOUT
                 cancel()                                                  -> CANCELED
    STOPPING   an outcome is known: the node disables the policy (the arm holds) -> DONE

Rules: the first outcome wins (later ones are ignored); cancel() or abort() before RUNNING
ends the run as well (the node then skips what is left); times are node-clock seconds
(sim time with use_sim_time). Counters (control steps, skipped steps) are the differences of
the PolicyStatus counters between the first status after the start and the last one.
Take-over: INTERVENTION_START / INTERVENTION_END events of the episode (the driver's, on a
command source switch) count the interventions and the time under human control (event stamps,
driver clock; a window still open ends at the outcome). The policy holds meanwhile; the time
limit keeps counting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

from .events import INTERVENTION_END, INTERVENTION_START


class Outcome(IntEnum):
    """soarm_msgs/action/RunPolicy Result outcomes (test_run_policy_core holds them equal)."""

    SUCCESS = 0
    FAILURE = 1
    TIMEOUT = 2
    CANCELED = 3
    ABORTED = 4
    REJECTED = 5


class Phase(IntEnum):
    """soarm_msgs/action/RunPolicy Feedback states; DONE is never sent as feedback."""

    RESETTING = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    DONE = 4


# soarm_msgs/msg/EpisodeEvent kinds and PolicyStatus / DriverStatus states used here
# (test_run_policy_core holds them equal to the messages').
EV_STARTED, EV_SUCCESS, EV_FAILURE, EV_RESET, EV_ENDED = 0, 1, 2, 3, 4
POLICY_RUNNING, POLICY_ERROR = 1, 3
DRIVER_DISABLED, DRIVER_ERROR = 2, 3
SKIP_KINDS = ("stale", "missing", "no_action", "late")


@dataclass
class Goal:
    task: str = ""
    time_limit: float = 60.0  # s of node clock
    seed: int = -1  # < 0: the driver picks
    randomize: bool = True
    record: bool = False


def goal_problem(goal: Goal) -> str | None:
    """Why `goal` cannot run (a sentence saying how to fix it), or None."""
    if not (math.isfinite(goal.time_limit) and goal.time_limit > 0):
        return f"time_limit must be a finite number of seconds > 0 (got {goal.time_limit})"
    return None


@dataclass
class PolicyCounters:
    """PolicyStatus counters (steps and skipped_*)."""

    steps: int = 0
    stale: int = 0
    missing: int = 0
    no_action: int = 0
    late: int = 0

    def minus(self, other: PolicyCounters) -> PolicyCounters:
        # the policy node's ~/reset zeroes its counters: never report a negative delta
        return PolicyCounters(*(max(0, a - b) for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.steps, self.stale, self.missing, self.no_action, self.late)

    @property
    def skipped(self) -> int:
        return self.stale + self.missing + self.no_action + self.late


@dataclass
class Feedback:
    state: Phase
    detail: str
    episode_index: int
    elapsed: float
    time_limit: float
    control_steps: int
    skipped_steps: int
    stages: int  # -1 unknown
    interventions: int = 0
    human_time: float = 0.0
    human_in_control: bool = False


@dataclass
class Result:
    outcome: Outcome
    message: str
    episode_index: int = -1
    seed: int = -1
    task: str = ""
    stages: int = -1  # -1 unknown
    duration: float = 0.0
    time_to_success: float = -1.0
    counters: PolicyCounters = field(default_factory=PolicyCounters)
    interventions: int = 0
    human_time: float = 0.0


class EpisodeRun:
    """The state of one goal's episode; not thread-safe (the node serializes the calls)."""

    def __init__(self, goal: Goal):
        self.goal = goal
        self.phase = Phase.RESETTING
        self.outcome: Outcome | None = None
        self.message = ""
        self.episode_index = -1
        self.seed = goal.seed if goal.seed >= 0 else -1
        self.task = goal.task
        self.stages: int | None = None  # None: the driver cannot tell (yet)
        self.t_start: float | None = None  # node clock at the policy enable
        self.t_end: float | None = None
        self.success_time: float | None = None
        self.hold_reason = ""
        self._first: PolicyCounters | None = None
        self._last: PolicyCounters | None = None
        self._early: list[tuple] = []
        self.interventions = 0
        self._human_time = 0.0  # closed windows, s
        self._human_since: float | None = None  # stamp of the open window's INTERVENTION_START

    # ---------------------------------------------------------------- outcome
    @property
    def done(self) -> bool:
        return self.outcome is not None

    def finish(self, outcome: Outcome, message: str) -> bool:
        """Set the outcome unless one is set already; True when this call set it."""
        if self.outcome is not None:
            return False
        self.outcome, self.message = outcome, message
        self.phase = Phase.STOPPING
        return True

    def cancel(self) -> bool:
        return self.finish(Outcome.CANCELED, "canceled by the client")

    def abort(self, reason: str) -> bool:
        return self.finish(Outcome.ABORTED, reason)

    def stopped(self, now: float) -> None:
        """The policy was disabled at node time `now` (the arm holds): DONE. The episode's
        duration runs from started() to here."""
        if self.t_start is not None and self.t_end is None:
            self.t_end = now
        self.phase = Phase.DONE

    # ---------------------------------------------------------------- the sequence
    def reset_done(self, ok: bool, message: str, episode_index: int = -1, seed_used: int = -1) -> None:
        if self.done:
            return
        if not ok:
            self.abort(f"reset_episode refused: {message}")
            return
        self.episode_index = int(episode_index)
        if seed_used >= 0:
            self.seed = int(seed_used)
        self.phase = Phase.STARTING
        early, self._early = self._early, []
        for args in early:  # events that arrived before the reset answered
            self.on_event(*args)

    def started(self, now: float) -> None:
        """The policy was enabled at node time `now`: the time limit counts from here."""
        if self.done:
            return
        self.t_start = now
        self.phase = Phase.RUNNING

    # ---------------------------------------------------------------- inputs
    def on_event(self, kind: int, episode_index: int, stamp: float, stages: int = 0, task: str = "",
                 detail: str = "") -> None:
        """An episode_events message. Events of other episodes are ignored, except a newer
        RESET / STARTED (someone else reset the driver) while this one runs."""
        if self.episode_index < 0:
            if self.phase == Phase.RESETTING:
                self._early.append((kind, episode_index, stamp, stages, task, detail))
            return
        if kind in (EV_STARTED, EV_RESET):  # the driver's reset: RESET, then STARTED, of the new index
            if episode_index == self.episode_index:
                if task and kind == EV_STARTED:
                    self.task = task
            elif episode_index > self.episode_index and self.phase == Phase.RUNNING:
                self.abort(f"episode {episode_index} started by another reset_episode while episode "
                           f"{self.episode_index} ran")
            return
        if episode_index != self.episode_index:
            return
        if kind == INTERVENTION_START and not self.done and self._human_since is None:
            self.interventions += 1
            self._human_since = stamp
        elif kind == INTERVENTION_END or (kind in (EV_SUCCESS, EV_FAILURE) and not self.done):
            self._close_human_window(stamp)
        if stages:
            self.stages = (self.stages or 0) | int(stages)
        if kind == EV_SUCCESS:
            if self.finish(Outcome.SUCCESS, detail or "task succeeded"):
                self.success_time = stamp
        elif kind == EV_FAILURE:
            self.finish(Outcome.FAILURE, f"FAILURE event: {detail}" if detail else "FAILURE event")
        elif kind == EV_ENDED and self.phase in (Phase.STARTING, Phase.RUNNING):
            self.abort(f"episode {episode_index} ended by someone else (ENDED{': ' + detail if detail else ''})")

    def on_driver_status(self, state: int, detail: str, episode_index: int, stages: int) -> None:
        if episode_index == self.episode_index and stages >= 0:
            self.stages = (self.stages or 0) | int(stages)
        if self.phase != Phase.RUNNING:
            return
        if state == DRIVER_ERROR:
            self.abort(f"driver error: {detail or 'see /driver/status'}")
        elif state == DRIVER_DISABLED:
            self.abort("driver disabled (torque off): call /driver/enable true, then send the goal again")

    def on_policy_status(self, state: int, hold_reason: str, counters: PolicyCounters) -> None:
        if self.phase != Phase.RUNNING:
            return
        if self._first is None:
            self._first = counters
        self._last = counters
        self.hold_reason = "" if state == POLICY_RUNNING else hold_reason
        if state == POLICY_ERROR:
            self.abort(f"policy error: {hold_reason or 'see policy_status'}")

    def _close_human_window(self, t: float) -> None:
        if self._human_since is not None:
            self._human_time += max(0.0, t - self._human_since)
            self._human_since = None

    def human_time(self, now: float) -> float:
        """Seconds under human control: closed windows, plus the open one up to the run's end or `now`."""
        if self._human_since is None:
            return self._human_time
        end = self.t_end if self.t_end is not None else now
        return self._human_time + max(0.0, end - self._human_since)

    def check(self, now: float) -> Outcome | None:
        """The time limit (node clock); returns the outcome once there is one."""
        if not self.done and self.t_start is not None and now - self.t_start >= self.goal.time_limit:
            self.finish(Outcome.TIMEOUT, f"timeout after {self.goal.time_limit:.1f} s")
        return self.outcome

    # ---------------------------------------------------------------- outputs
    def counters(self) -> PolicyCounters:
        if self._first is None or self._last is None:
            return PolicyCounters()
        return self._last.minus(self._first)

    def elapsed(self, now: float) -> float:
        if self.t_start is None:
            return 0.0
        return max(0.0, (self.t_end if self.t_end is not None else now) - self.t_start)

    def feedback(self, now: float) -> Feedback:
        c = self.counters()
        return Feedback(state=min(self.phase, Phase.STOPPING), detail=self.hold_reason,
                        episode_index=self.episode_index, elapsed=self.elapsed(now), time_limit=self.goal.time_limit,
                        control_steps=c.steps, skipped_steps=c.skipped,
                        stages=-1 if self.stages is None else self.stages, interventions=self.interventions,
                        human_time=self.human_time(now), human_in_control=self._human_since is not None)

    def result(self, now: float) -> Result:
        if self.outcome is None:
            raise RuntimeError("result() before an outcome: call check(), cancel() or abort() first")
        tts = -1.0
        if self.success_time is not None and self.t_start is not None:
            tts = max(0.0, self.success_time - self.t_start)
        return Result(outcome=self.outcome, message=self.message, episode_index=self.episode_index, seed=self.seed,
                      task=self.task, stages=-1 if self.stages is None else self.stages,
                      duration=self.elapsed(now), time_to_success=tts, counters=self.counters(),
                      interventions=self.interventions, human_time=self.human_time(now))


def rejected(reason: str) -> Result:
    """The result of a goal that was not started."""
    return Result(outcome=Outcome.REJECTED, message=reason)
