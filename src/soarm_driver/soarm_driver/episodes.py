"""Episode bookkeeping of the driver (ROS-free).

Lifecycle (docs/interfaces.md, "driver"): reset_episode → ENDED for the running
episode (if any) → RESET (new index) → ... arm at home, scene reset → STARTED;
the task's outcome (SUCCESS/FAILURE) is reported once per running episode.
Methods return the events to publish as (kind, episode_index, task, detail, seed, stages),
kind being the EpisodeEvent constant name, seed the scene seed of that episode (the
reset's seed_used; -1 before the first reset) and stages its STAGE_* bits (0 here: the
driver core fills them from its stage tracker).
"""

from __future__ import annotations

from typing import NamedTuple


class Event(NamedTuple):
    kind: str  # "STARTED", "SUCCESS", "FAILURE", "RESET", "ENDED"
    episode_index: int
    task: str
    detail: str
    seed: int = -1  # scene seed of the episode the event belongs to
    stages: int = 0  # STAGE_* bits the episode reached (SUCCESS/FAILURE/ENDED)


class EpisodeBook:
    def __init__(self, default_task: str):
        self.default_task = default_task
        self.index = -1  # no episode yet
        self.task = default_task
        self.running = False
        self.seed = -1  # scene seed of the current episode
        self._outcome_reported = False

    def begin_reset(self, task: str, seed: int) -> list[Event]:
        """A reset starts: end the running episode, open the next one (not yet started)."""
        events = []
        if self.running:
            events.append(Event("ENDED", self.index, self.task, "reset_episode called", self.seed))
        self.running = False
        self.index += 1
        self.task = task or self.default_task
        self.seed = int(seed)
        events.append(Event("RESET", self.index, self.task, f"seed {seed}", self.seed))
        return events

    def start(self, seed: int) -> Event:
        """The reset finished: the episode runs."""
        self.running = True
        self._outcome_reported = False
        self.seed = int(seed)
        return Event("STARTED", self.index, self.task, f"seed {seed}", self.seed)

    def outcome(self, outcome: str | None) -> Event | None:
        """The backend's task outcome this tick → SUCCESS/FAILURE once per running episode."""
        if not self.running or self._outcome_reported or outcome not in ("success", "failure"):
            return None
        self._outcome_reported = True
        return Event(outcome.upper(), self.index, self.task, f"sim task reports {outcome}", self.seed)
