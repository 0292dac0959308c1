"""The scripted expert as the human of a policy run: it takes over on a stall (ROS-free, thread-safe).

DAgger in the sim (issue 13): while a policy drives an episode, the `CorrectingRunner` watches the
task's stages (the driver's `~/status.stages`, fed through `on_stages`). When no new stage was
reached for `take_over_after` seconds (node clock, from the episode's STARTED or the last new
stage) and the task has not succeeded, it takes over: `select(True, reason)` (the node calls
`/driver/select_source` human) and, once the driver agreed, plans the expert from the current
joints and cube and zone poses (`ScriptedExpert.start_from`: a held cube is carried on, a
displaced one grasped where it lies) and streams its goals (on `joint_trajectory/human`). It
replans from the state of the moment when a plan ended without SUCCESS (at most `max_replans`
times). The plan's time advances by at most `max_plan_step` per tick, as EpisodeRunner's.
It hands back (`select(False, reason)`) `post_success_time` after SUCCESS, at
`episode_timeout` after STARTED, or when the episode ends (ENDED/RESET/FAILURE), so the next
episode starts under the policy. At most one take-over per episode: the expert finishes the task.

The driver turns the switches into INTERVENTION_START/END events; the recorder keeps them and
bag_to_lerobot labels the frames between them (`intervention`, or `--frames corrections`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .episode_runner import EpisodeRunner
from .expert import ScriptedExpert
from .scene import CUBE, TARGET
from .stages import stage_names


class CorrectingRunner(EpisodeRunner):
    """EpisodeRunner that stays silent until the policy stalls, then takes over (module docstring).

    select(human: bool, reason: str) -> bool asks for the command source (True: the driver
    agreed); it may block (a service call) and is called from tick() only, never with the lock held.
    """

    def __init__(self, expert: ScriptedExpert, episode_timeout: float, post_success_time: float,
                 take_over_after: float, select: Callable[[bool, str], bool], log=print, max_replans: int = 2,
                 replan_after: float = 1.0):
        super().__init__(expert, episode_timeout, post_success_time, log)
        if not take_over_after > 0:
            raise ValueError(f"take_over_after must be > 0 s, got {take_over_after}")
        self.take_over_after = float(take_over_after)
        self.select = select
        self.max_replans = int(max_replans)
        self.replan_after = float(replan_after)
        #: Episodes taken over: index -> (sim time from STARTED, stages then, cube held then).
        self.take_overs: dict[int, tuple[float, int, bool]] = {}
        self._in_control = False
        self._hand_back: str | None = None  # reason, when a hand-back is due
        self._progress = 0.0  # node time of STARTED or of the last new stage
        self._stages = 0
        self._replans = 0

    # ------------------------------------------------------------------ inputs
    def on_started(self, index: int, stamp: float) -> None:
        with self._lock:
            if self._in_control:  # the previous episode's end was missed
                self._hand_back, self._in_control = f"expert correction over: episode {index} started", False
            self._progress, self._stages, self._replans = stamp, 0, 0
        super().on_started(index, stamp)

    def on_stages(self, index: int, stages: int, now: float) -> None:
        """The driver's stages of episode `index` (OR-ed bits); a new bit is progress."""
        with self._lock:
            ep = self._episode
            if ep is None or ep.index != index or stages < 0 or not int(stages) & ~self._stages:
                return
            self._stages |= int(stages)
            self._progress = now

    @property
    def in_control(self) -> bool:
        with self._lock:
            return self._in_control

    # ------------------------------------------------------------------ output
    def _finish(self, result: str) -> None:  # lock held
        if self._in_control:
            self._hand_back = f"expert correction over: episode {self._episode.index} {result}"
            self._in_control = False
        super()._finish(result)

    def tick(self, now: float) -> np.ndarray | None:
        """The goal to stream now (only while in control), else None; switches the source when due."""
        with self._lock:
            ep = self._episode
            if ep is not None and ep.success is None and now - ep.started > self.episode_timeout:
                self.log("info", f"episode {ep.index}: no SUCCESS after {self.episode_timeout:g} s")
                self._finish("timeout")
            elif ep is not None and ep.success is not None and now - ep.success >= self.post_success_time:
                self._finish("success")
            hand_back, self._hand_back = self._hand_back, None
            ep = self._episode
            if hand_back is None and ep is not None:
                return self._command(ep, now) if self._in_control else self._maybe_take_over(ep, now)
        if hand_back is not None:
            self._switch(False, hand_back)
        return None

    def _switch(self, human: bool, reason: str) -> bool:
        ok = bool(self.select(human, reason))
        if not ok:
            self.log("warning", f"select_source {'human' if human else 'policy'} refused ({reason})")
        return ok

    def _state(self, ep):  # lock held: (joints, cube, target) of the new scene, or None
        q, cube, target = self._joints, self._objects.get(CUBE), self._objects.get(TARGET)
        if q is None or cube is None or target is None or min(cube[0], target[0]) <= ep.started:
            return None
        return q, cube, target

    def _maybe_take_over(self, ep, now: float):  # lock held
        stalled = now - self._progress
        if ep.success is not None or ep.index in self.take_overs or stalled < self.take_over_after:
            return None
        state = self._state(ep)
        if state is None:
            return None
        stages = self._stages
        reason = (f"expert: no progress for {stalled:.1f} s (stages: {', '.join(stage_names(stages)) or 'none'})")
        self._lock.release()  # the service call blocks: never with the lock held
        try:
            ok = self._switch(True, reason)
        finally:
            self._lock.acquire()
        if self._episode is not ep:
            if ok:
                self._hand_back = "expert correction over: the episode ended during the take-over"
            return None
        if not ok:
            self._progress = now  # try again after another take_over_after
            return None
        q, cube, target = self._state(ep) or state
        self.expert.start_from(cube[1], cube[2], target[1], q)
        self._in_control = True
        ep.t0 = ep.last_tick = now
        ep.plan_time = 0.0
        self.take_overs[ep.index] = (now - ep.started, stages, self.expert.held)
        self.log("info", f"episode {ep.index}: {reason}: taking over "
                         f"({'cube in the jaws' if self.expert.held else 'cube at ' + str(np.round(cube[1], 3))})")
        return self.expert.command(0.0)

    def _command(self, ep, now: float):  # lock held
        t = self._advance_plan(ep, now)  # at most max_plan_step per tick (EpisodeRunner)
        if ep.success is None and t > self.expert.duration + self.replan_after and self._replans < self.max_replans:
            state = self._state(ep)
            if state is not None:
                q, cube, target = state
                self._replans += 1
                self.expert.start_from(cube[1], cube[2], target[1], q)
                ep.t0, ep.plan_time, t = now, 0.0, 0.0
                self.log("info", f"episode {ep.index}: plan ended without SUCCESS: replanning from here "
                                 f"({self._replans}/{self.max_replans})")
        return self.expert.command(t)
