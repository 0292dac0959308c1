"""Which command source the driver follows: `policy` or `human` (ROS-free; take-over and hand-back).

Contract (docs/interfaces.md, "Take-over and hand-back"):

- Exactly one source is active at a time, chosen explicitly with `select` (the driver's
  `~/select_source` service); `policy` at start unless configured otherwise. A command of the
  inactive source is ignored and counted per source (`ignored`), never executed.
- Switching never jerks the arm. The caller drops the previous source's trajectory (the arm
  holds at its goal). While the `human` source is `aligning`, each human command is replaced by
  a straight move from the current goal to the command's last point at `handover_speed`
  (rad/s, per joint; the move takes max |delta_j| / speed_j); once the goal is within
  `handover_tolerance` (rad, every joint) of a human command, that command and the following
  ones are executed as sent. Every goal, aligned or not, is still limited to
  `max_joint_velocity` per control period by JointLimits: no step exceeds
  max_joint_velocity x dt, at the switch or after it.
- `realign()`: the follower moved on its own (enable, reset move, watchdog or tolerance hold):
  the human's next command is aligned again before it is followed.
- Only the control thread calls this class (the driver core serializes it); `snapshot()` is
  plain data for publishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soarm_driver.command_validation import TrajectoryCommand

POLICY, HUMAN = "policy", "human"
#: Source names, as in soarm_msgs/srv/SelectSource (POLICY, HUMAN).
SOURCES = (POLICY, HUMAN)
#: Defaults of the driver parameters handover_speed (rad/s) and handover_tolerance (rad).
HANDOVER_SPEED = 0.5
HANDOVER_TOLERANCE = 0.05


@dataclass
class SourceState:
    """What `~/command_source` (soarm_msgs/CommandSource) says."""

    source: str = POLICY
    aligning: bool = False
    reason: str = ""
    takeovers: int = 0
    ignored: dict = field(default_factory=lambda: {s: 0 for s in SOURCES})


class CommandArbiter:
    """See the module docstring. `handover_speed`: one value or one per joint (rad/s, > 0)."""

    def __init__(self, handover_speed=HANDOVER_SPEED, handover_tolerance: float = HANDOVER_TOLERANCE,
                 initial: str = POLICY):
        self.speed = np.atleast_1d(np.asarray(handover_speed, dtype=float))
        if not (np.all(np.isfinite(self.speed)) and np.all(self.speed > 0)):
            raise ValueError(f"handover_speed must be > 0 rad/s, got {self.speed.tolist()}")
        if not handover_tolerance > 0:
            raise ValueError(f"handover_tolerance must be > 0 rad, got {handover_tolerance}")
        self.tolerance = float(handover_tolerance)
        self._check(initial)
        self.state = SourceState(source=initial, aligning=initial == HUMAN)
        #: Sources whose ignored commands were already logged since the last switch.
        self._ignored_logged: set[str] = set()

    @staticmethod
    def _check(source: str) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown command source {source!r}: use one of {', '.join(SOURCES)}")

    @property
    def source(self) -> str:
        return self.state.source

    @property
    def human(self) -> bool:
        return self.state.source == HUMAN

    def select(self, source: str, reason: str = "") -> bool:
        """Make `source` the active one (ValueError naming the choices for an unknown name).
        True when this changed the source (the caller then drops the old source's trajectory
        and emits the INTERVENTION_* event); selecting the active source changes nothing."""
        self._check(source)
        if source == self.state.source:
            return False
        st = self.state
        st.source, st.reason = source, reason
        st.aligning = source == HUMAN
        if source == HUMAN:
            st.takeovers += 1
        self._ignored_logged.clear()
        return True

    def realign(self) -> None:
        """The follower moved on its own: align to the human again before following it."""
        if self.human:
            self.state.aligning = True

    def admit(self, source: str, cmd: TrajectoryCommand, goal: np.ndarray) -> TrajectoryCommand | None:
        """The command to execute for `cmd` from `source` with the arm's goal at `goal`, or None
        when `source` is not active (counted in `state.ignored`)."""
        self._check(source)
        st = self.state
        if source != st.source:
            st.ignored[source] += 1
            return None
        if source != HUMAN or not st.aligning:
            return cmd
        target = np.asarray(cmd.positions[-1], dtype=float)
        delta = np.abs(target - np.asarray(goal, dtype=float))
        if np.all(delta <= self.tolerance):
            st.aligning = False
            return cmd
        duration = float(np.max(delta / self.speed))
        return TrajectoryCommand(times=np.array([duration]), positions=target[None, :].copy(), velocities=None,
                                 stamp=None)

    def first_ignored(self, source: str) -> bool:
        """True once per source and switch: the caller logs the first ignored command only."""
        if source in self._ignored_logged:
            return False
        self._ignored_logged.add(source)
        return True

    def snapshot(self) -> SourceState:
        st = self.state
        return SourceState(st.source, st.aligning, st.reason, st.takeovers, dict(st.ignored))
