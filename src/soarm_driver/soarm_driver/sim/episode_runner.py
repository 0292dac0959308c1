"""Which goal the scripted teleop sends, episode by episode (ROS-free, thread-safe).

The teleop node feeds it what it hears (episode events, scene object poses, joint
states) and asks `tick(now)` for a goal at its command rate. An episode runs from its
STARTED event: the expert is planned once the arm's joints and the cube and zone poses
*stamped after STARTED* (the new scene) are known, then streams until the episode's
SUCCESS + `post_success_time`, or `episode_timeout` after STARTED without success, or
an ENDED/RESET/FAILURE event of that episode. Each finished episode gets a result:
'success', 'timeout', 'ended' or 'failure'.

The plan's time follows the node clock, but advances by at most `max_plan_step` s per tick:
when the ticks stall (a starved teleop process, /clock arriving in bursts), the plan resumes
where it stopped instead of jumping ahead. The driver executes each goal on receipt, so a jump
makes the arm skip that part of the path at full speed: measured in-process
(soarm/PickPlace-v0, the command stream stalled for 0.1-1.5 s about every 2 s), 36/40
episodes succeeded with jumps -- the arm lifting before the jaws had closed -- and 40/40 with
the cap. A stall thus delays the plan (the arm holds meanwhile); the timeout still counts
from STARTED.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .expert import ScriptedExpert
from .scene import CUBE, TARGET

#: The most the plan's time advances in one tick (s): three periods at teleop's 30 Hz, so
#: ordinary tick jitter leaves the plan on the node clock.
MAX_PLAN_STEP = 0.1


@dataclass
class _Episode:
    index: int
    started: float  # stamp of STARTED (s)
    t0: float | None = None  # when the expert's motion started (s)
    plan_time: float = 0.0  # time into the plan (s): advanced by at most max_plan_step per tick
    last_tick: float | None = None  # node time of the plan's previous tick (s)
    success: float | None = None  # when SUCCESS was heard (s)


class EpisodeRunner:
    """Runs the scripted expert through the episodes the driver starts (see the module docstring)."""

    def __init__(self, expert: ScriptedExpert, episode_timeout: float, post_success_time: float, log=print,
                 max_plan_step: float = MAX_PLAN_STEP):
        if not max_plan_step > 0:
            raise ValueError(f"max_plan_step must be > 0 s, got {max_plan_step}")
        self.expert = expert
        self.max_plan_step = max_plan_step
        self.episode_timeout = episode_timeout
        self.post_success_time = post_success_time
        self.log = log  # log(level, text); level in {"info", "warning"}
        self.results: dict[int, str] = {}
        self._lock = threading.Lock()
        self._episode: _Episode | None = None
        self._objects: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}
        self._joints: np.ndarray | None = None

    # ------------------------------------------------------------------ inputs
    def on_joints(self, q) -> None:
        with self._lock:
            self._joints = np.asarray(q, float)

    def on_object(self, name: str, stamp: float, pos, quat) -> None:
        if name in (CUBE, TARGET):
            with self._lock:
                self._objects[name] = (stamp, np.asarray(pos, float), np.asarray(quat, float))

    def on_started(self, index: int, stamp: float) -> None:
        with self._lock:
            self._episode = _Episode(index, stamp)
        self.log("info", f"episode {index} started: waiting for the scene poses")

    def on_success(self, index: int, now: float, detail: str = "") -> None:
        with self._lock:
            ep = self._episode
            if ep is None or ep.index != index or ep.success is not None:
                return
            ep.success = now
        self.log("info", f"episode {index}: SUCCESS {detail}".rstrip())

    def on_end(self, index: int, result: str = "ended") -> None:
        """ENDED/RESET ('ended') or FAILURE ('failure') of episode `index`."""
        with self._lock:
            if self._episode is not None and self._episode.index == index:
                self._finish(result)

    def result(self, index: int) -> str | None:
        with self._lock:
            return self.results.get(index)

    @property
    def active(self) -> bool:
        with self._lock:
            return self._episode is not None

    # ------------------------------------------------------------------ output
    def _finish(self, result: str) -> None:  # lock held
        self.results.setdefault(self._episode.index, result)
        self._episode = None

    def tick(self, now: float) -> np.ndarray | None:
        """The joint goal (6,) to send now, or None (nothing to send)."""
        with self._lock:
            ep, q = self._episode, self._joints
            cube, target = self._objects.get(CUBE), self._objects.get(TARGET)
            if ep is None:
                return None
            if ep.success is None and now - ep.started > self.episode_timeout:
                self.log("warning", f"episode {ep.index}: no SUCCESS after {self.episode_timeout:g} s, stopping")
                self._finish("timeout")
                return None
            if ep.success is not None and now - ep.success >= self.post_success_time:
                self._finish("success")
                return None
            if ep.t0 is None:
                if cube is None or target is None or q is None or min(cube[0], target[0]) <= ep.started:
                    return None  # the new scene's poses have not arrived yet
                self.expert.start(cube[1], cube[2], target[1], q)
                ep.t0 = ep.last_tick = now
                self.log("info", f"episode {ep.index}: expert planned {now - ep.started:.2f} s after STARTED from "
                                 f"joints {np.round(q, 3).tolist()}, cube at {np.round(cube[1], 3).tolist()}, "
                                 f"zone at {np.round(target[1], 3).tolist()}")
                if self.expert.reach_error > 0.002:
                    self.log("warning", f"cube at {np.round(cube[1], 3)} or zone at {np.round(target[1], 3)} may be "
                                        f"out of reach ({self.expert.reach_error * 1000:.1f} mm IK error)")
            t = self._advance_plan(ep, now)
        return self.expert.command(t)

    def _advance_plan(self, ep: _Episode, now: float) -> float:  # lock held
        """The plan's time at node time `now`: the time since the previous tick, at most max_plan_step."""
        ep.plan_time += min(max(now - ep.last_tick, 0.0), self.max_plan_step)
        ep.last_tick = now
        return ep.plan_time
