"""Temporal ensembling of action chunks on a step timeline (ACT paper, Algorithm 2).

Every chunk is placed on the timeline at the control step of the observation it was
computed from: chunk[j] is the action for step ``start + j``. The action executed at a
step is the weighted mean of every prediction that covers it, with weights
``w_i = exp(-m * i)`` where ``i`` counts the predictions of that step in arrival order,
``w_0`` being the oldest (as in the paper and in LeRobot's ACTTemporalEnsembler).

Storage is a fixed ring of `chunk_size` steps (no prediction reaches further) holding, per
step, the running weighted sum, the running sum of weights and the number of predictions: adding a chunk and
advancing cost O(chunk length x action size), independent of how long it has run.

In synchronous ensembling a chunk arrives every step with ``start == current``; this
reproduces LeRobot's ensembler exactly (see the tests). With asynchronous inference a
chunk computed from the observation of step ``s`` arrives later, at step ``t > s``: its
first ``t - s`` actions are already in the past and are dropped, the rest are blended.
"""

from __future__ import annotations

import numpy as np


class TemporalEnsembler:
    """Online weighted mean of overlapping action predictions, per control step."""

    def __init__(self, chunk_size: int, action_dim: int, coeff: float = 0.01):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        #: Length of the ring: a chunk covers at most this many steps from the current one.
        self.chunk_size = int(chunk_size)
        self.action_dim = int(action_dim)
        self.coeff = float(coeff)
        # weights[i] for the i-th prediction of a step; a step gets at most `chunk_size`.
        self._weights = np.exp(-self.coeff * np.arange(self.chunk_size + 1, dtype=np.float64))
        self._sum = np.zeros((self.chunk_size, self.action_dim))
        self._wsum = np.zeros(self.chunk_size)
        self._count = np.zeros(self.chunk_size, dtype=np.int64)
        self.current = 0

    def reset(self, step: int = 0) -> None:
        """Forget every prediction; the timeline restarts at `step`."""
        self._sum[:] = 0.0
        self._wsum[:] = 0.0
        self._count[:] = 0
        self.current = int(step)

    def add(self, start: int, chunk: np.ndarray) -> int:
        """Place chunk[j] at step start + j (start <= current). Returns how many were used."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != self.action_dim:
            raise ValueError(f"chunk must have shape (n, {self.action_dim}), got {chunk.shape}")
        if start > self.current:
            raise ValueError(f"chunk starts at step {start}, after the current step {self.current}")
        skip = self.current - start
        usable = chunk[skip : skip + self.chunk_size]
        if usable.shape[0] == 0:
            return 0
        slots = (self.current + np.arange(usable.shape[0])) % self.chunk_size
        w = self._weights[self._count[slots]]
        self._sum[slots] += w[:, None] * usable
        self._wsum[slots] += w
        self._count[slots] += 1
        return usable.shape[0]

    def count(self, offset: int = 0) -> int:
        """Number of predictions covering step current + offset (0 <= offset < chunk_size)."""
        return int(self._count[(self.current + offset) % self.chunk_size])

    def action(self) -> np.ndarray | None:
        """Blended action of the current step, None if nothing covers it."""
        slot = self.current % self.chunk_size
        if self._count[slot] == 0:
            return None
        return self._sum[slot] / self._wsum[slot]

    def plan(self, length: int) -> np.ndarray:
        """Blended actions of the next covered steps from the current one, shape (n <= length, D).

        Stops at the first step no prediction covers.
        """
        length = max(0, min(int(length), self.chunk_size))
        slots = (self.current + np.arange(length)) % self.chunk_size
        covered = self._count[slots] > 0
        n = length if covered.all() else int(np.argmin(covered))
        slots = slots[:n]
        return self._sum[slots] / self._wsum[slots, None]

    def advance(self) -> None:
        """The current step is done: free its slot and move to the next step."""
        slot = self.current % self.chunk_size
        self._sum[slot] = 0.0
        self._wsum[slot] = 0.0
        self._count[slot] = 0
        self.current += 1

    def advance_to(self, step: int) -> int:
        """Move the current step to `step` (>= current), freeing every slot passed over.

        Returns ``step - current`` (the number of steps left behind, including the old
        current one). Cost O(min(step - current, chunk_size)).
        """
        step = int(step)
        if step < self.current:
            raise ValueError(f"cannot go back from step {self.current} to {step}")
        passed = step - self.current
        if passed >= self.chunk_size:
            self.reset(step)
        else:
            for _ in range(passed):
                self.advance()
        return passed

    def clear_future(self) -> None:
        """Drop all predictions but keep the step counter (chunk mode's new chunk)."""
        self.reset(self.current)
