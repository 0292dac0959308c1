"""Task stages of the sim task "Put the cube in the target zone" (ROS-free).

The ACT paper reports per-subtask success (touched / lifted / transferred); this module
does the same for our task. A StageTracker watches a SimBackend during one episode and
ORs in a bit the first time its condition holds; a bit stays set until reset() (the
driver resets at each episode's STARTED). The bits equal soarm_msgs/EpisodeEvent's
STAGE_* constants (test_sim_stages.py holds them equal); the driver publishes them in
`EpisodeEvent.stages`.

==========  =====  =========================================================================
stage       bit    condition (checked every control tick, thresholds below)
==========  =====  =========================================================================
REACHED     1      jaws at the cube: the cube centre within REACH_DISTANCE (2 cm) of the
                   jaw point (``SimBackend.jaw_point()``: where a grasped cube's centre
                   sits, half a cube off the fixed jaw's pad)
GRASPED     2      cube lifted between the jaws: its bottom more than LIFT_HEIGHT (1.5 cm)
                   above the table, touching the arm, its centre within REACH_DISTANCE of
                   the jaw point
PLACED      4      cube in the zone: its centre inside the target square
                   (``cube_in_target()``) and its bottom at most PLACE_HEIGHT (1 cm) above
                   the table (put down, possibly still held)
RELEASED    8      the task's success (``task_outcome() == 'success'``): resting in the
                   zone, released, slower than 2 cm/s
==========  =====  =========================================================================

A successful scripted-expert episode reaches them in this order: REACHED during the
descent, GRASPED during the lift, PLACED at the end of the lowering, RELEASED when the
jaws have let go. Bits are independent (a cube pushed into the zone is PLACED without
being GRASPED).
"""

from __future__ import annotations

import numpy as np

#: Stage bits (= soarm_msgs/EpisodeEvent STAGE_*).
STAGE_REACHED = 1
STAGE_GRASPED = 2
STAGE_PLACED = 4
STAGE_RELEASED = 8
#: Stage names and bits, in task order.
STAGES: tuple[tuple[str, int], ...] = (
    ("reached", STAGE_REACHED),
    ("grasped", STAGE_GRASPED),
    ("placed", STAGE_PLACED),
    ("released", STAGE_RELEASED),
)
ALL_STAGES = STAGE_REACHED | STAGE_GRASPED | STAGE_PLACED | STAGE_RELEASED

#: REACHED / GRASPED: the cube centre is this close to the jaw point (m).
REACH_DISTANCE = 0.02
#: GRASPED: the cube's bottom is higher than this above the table (m).
LIFT_HEIGHT = 0.015
#: PLACED: the cube's bottom is at most this high above the table (m).
PLACE_HEIGHT = 0.01


def stage_names(bits: int) -> list[str]:
    """Names of the stages set in `bits`, in task order."""
    return [name for name, bit in STAGES if int(bits) & bit]


def current_stages(sim) -> int:
    """The stage conditions that hold right now in `sim` (a connected SimBackend)."""
    bits = 0
    near = float(np.linalg.norm(sim.cube_position() - sim.jaw_point())) <= REACH_DISTANCE
    height = sim.cube_height()
    if near:
        bits |= STAGE_REACHED
        if height > LIFT_HEIGHT and sim.cube_touches_arm():
            bits |= STAGE_GRASPED
    if height <= PLACE_HEIGHT and sim.cube_in_target():
        bits |= STAGE_PLACED
    if sim.task_outcome() == "success":
        bits |= STAGE_RELEASED
    return bits


class StageTracker:
    """Stages reached so far in the current episode of a SimBackend (OR-ed bits)."""

    #: Backend methods the tracker needs (the sim task's helpers).
    REQUIRED = ("cube_position", "jaw_point", "cube_height", "cube_touches_arm", "cube_in_target", "task_outcome")

    def __init__(self, sim):
        self.sim = sim
        self.stages = 0

    @classmethod
    def supports(cls, backend) -> bool:
        """Whether `backend` has the sim task's helpers (SimBackend; not mock/feetech)."""
        return all(callable(getattr(backend, name, None)) for name in cls.REQUIRED)

    def reset(self) -> None:
        """A new episode: nothing reached yet."""
        self.stages = 0

    def update(self) -> int:
        """OR in the stages that hold now; returns the bits reached this episode."""
        self.stages |= current_stages(self.sim)
        return self.stages

    def names(self) -> list[str]:
        return stage_names(self.stages)
