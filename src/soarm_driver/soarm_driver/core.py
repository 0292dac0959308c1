"""The driver's core (ROS-free): one robot backend, the arm controller, episodes, the
reset job, the watchdog, enable and the reconnect state machine, and the status as data.

Contract (the driver node is only wiring around it):

- Build the core and its backend on the thread that will call `tick` (MuJoCo's GL
  context and the serial port belong to one thread); every backend call happens inside
  `tick` and `close`.
- `tick(wall, now)` once per control period: `wall` is a monotonic wall-clock time (s,
  paces reconnection attempts), `now` the node clock (s), used as the driver clock by
  real backends; simulated backends advance by exactly one control period per tick and
  the sim time is the driver clock. It returns a `TickOutput`: what to publish, all
  stamped `output.now`. It never raises for a backend failure: the core then goes to
  ERROR, holds, disconnects and retries `connect()` every `reconnect_period` s.
- `command(...)`, `request_enable(...)`, `request_reset(...)` and `status()` are safe to
  call from other threads (ROS callbacks): commands are validated and queued, service
  requests are queued and answered by `tick` (wait on the returned `Request`).
- Pacing: the caller calls `tick` every `wall_period` wall seconds (one control period;
  simulated backends: divided by `real_time_factor`). Every `status_period` wall seconds,
  and whenever the status changed, the output carries the status to publish; every
  `status_period` also the measured ticks per wall second (for /diagnostics).
- States: CONNECTING (before the first connection), ENABLED, DISABLED (torque off),
  ERROR (persistent backend failure; reconnecting). Documented in docs/interfaces.md ("driver").
- Backend errors: a `BackendError` in a tick starts a grace period of `bus_error_grace`
  wall seconds. Within it the tick is skipped: torque stays on, the goal is not changed
  (a goal whose write failed is taken back), commands stay queued, nothing is published.
  The first tick that succeeds ends it; an error still there after the grace (or any other
  exception) is a persistent failure: ERROR as above.
- Path tolerance (path_tolerance.py): a joint measured farther than `path_tolerance` from
  the goal sent the tick before, for longer than `path_tolerance_duration`, makes the arm
  hold where it is measured; `status().hold_reason` says why and commands are rejected
  until `/driver/enable` or `reset_episode` is called.
- Command sources (command_arbiter.py): `command(..., source=...)` takes `policy` (joint_trajectory)
  or `human` (joint_trajectory/human) commands; only the active source's are executed, the
  other's are counted (`arbiter.state.ignored`). `request_select(source, reason)` switches:
  the previous source's trajectory is dropped (the arm holds at its goal), the human's commands
  are aligned first (a move at `handover_speed` to the leader's pose) and, while an episode runs,
  INTERVENTION_START (policy -> human) / INTERVENTION_END (human -> policy) events are emitted;
  a reset under human control closes the window before ENDED and reopens it after STARTED.
- Commands: validated (command_validation.py) including the time and size rules
  (`max_trajectory_points`, `max_trajectory_duration`, stamped trajectories that end in
  the past); `status().stamp_offset` / `stamp_offset_mean` report receipt time minus
  `header.stamp` of stamped commands (clock skew between machines plus latency).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from soarm_driver.arm_controller import ArmController
from soarm_driver.backends.base import BackendError, CameraFrame, CameraSpec, RobotBackend
from soarm_driver.command_arbiter import HANDOVER_SPEED, HANDOVER_TOLERANCE, HUMAN, POLICY, CommandArbiter, SourceState
from soarm_driver.command_validation import CommandError, validate_trajectory
from soarm_driver.episodes import EpisodeBook, Event
from soarm_driver.joint_limits import JointLimits
from soarm_driver.path_tolerance import PathToleranceMonitor
from soarm_driver.schedule import RateSchedule
from soarm_driver.sim.stages import StageTracker

DEFAULT_TASK = "Put the cube in the target zone"
#: Measured positions within this distance (rad) of home end a reset's move.
HOME_TOLERANCE = 0.05
#: A reset gives up waiting for the measured pose this long after its planned move (s).
RESET_GRACE = 10.0
#: The same rejection reason is logged at most once per this many wall seconds.
REJECT_LOG_PERIOD = 1.0
#: Weight of the newest stamped command in `DriverStatus.stamp_offset_mean` (an EMA).
STAMP_OFFSET_EMA = 0.1
#: Defaults of the command safety parameters (docs/interfaces.md, "driver"). Path tolerance
#: per joint (rad, JOINT_NAMES order; 0: the gripper is not checked) and duration (s): the sim's
#: body joints deviate at most 0.063 rad during the scripted expert and 0.16 rad (< 0.2 rad for
#: 0.17 s at most) in moves at 3 rad/s; its gripper stays 0.265 rad short of its goal for 4.8 s
#: while grasping (benchmarks/bench_tracking_error.py).
PATH_TOLERANCE = (0.3, 0.3, 0.3, 0.3, 0.3, 0.0)
PATH_TOLERANCE_DURATION = 0.5
#: Backend errors shorter than this (wall s) keep torque on and the goal unchanged.
BUS_ERROR_GRACE = 0.5
#: Size rules of one joint_trajectory: points, and end after receipt (s).
MAX_TRAJECTORY_POINTS = 5000
MAX_TRAJECTORY_DURATION = 60.0

CONNECTING, ENABLED, DISABLED, ERROR = "CONNECTING", "ENABLED", "DISABLED", "ERROR"
#: Event kinds whose EpisodeEvent carries the episode's task stages.
STAGE_EVENT_KINDS = ("SUCCESS", "FAILURE", "ENDED")


@dataclass
class DriverConfig:
    """Everything the core needs besides the backend (radians, seconds, Hz)."""

    limits: JointLimits
    home_pose: np.ndarray
    command_timeout: float = 0.5
    home_speed: float = 0.8
    control_rate_hz: float = 60.0
    state_rate_hz: float = 30.0
    cameras: list[CameraSpec] = field(default_factory=list)
    #: Episode task text when reset_episode gives none; "" = the backend's task_text, else DEFAULT_TASK.
    task: str = ""
    reconnect_period: float = 2.0
    #: Backend name, reported in the status.
    backend: str = ""
    path_tolerance: list = field(default_factory=lambda: list(PATH_TOLERANCE))
    path_tolerance_duration: float = PATH_TOLERANCE_DURATION
    bus_error_grace: float = BUS_ERROR_GRACE
    max_trajectory_points: int = MAX_TRAJECTORY_POINTS
    max_trajectory_duration: float = MAX_TRAJECTORY_DURATION
    #: Take-over (command_arbiter.py): speed (rad/s) and tolerance (rad) of the follower's alignment
    #: to the leader, and the command source active at start.
    handover_speed: float = HANDOVER_SPEED
    handover_tolerance: float = HANDOVER_TOLERANCE
    command_source: str = POLICY
    #: Wall seconds between periodic status outputs (also sent on every change) and tick rate reports.
    status_period: float = 1.0
    #: Simulated backends: sim seconds per wall second (the pacing of `tick`); ignored by real ones.
    real_time_factor: float = 1.0

    def __post_init__(self):
        self.home_pose = np.asarray(self.home_pose, dtype=float)
        if self.home_pose.shape != (6,) or not self.limits.contains(self.home_pose):
            raise ValueError(f"home_pose must be 6 values inside the joint limits, got {self.home_pose.tolist()}")
        for name in ("control_rate_hz", "state_rate_hz", "status_period", "real_time_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("bus_error_grace", "max_trajectory_points", "max_trajectory_duration"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (0 disables it), got {getattr(self, name)}")

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate_hz


@dataclass
class DriverStatus:
    """A snapshot of the driver's state and counters (published as soarm_msgs/DriverStatus)."""

    state: str = CONNECTING
    detail: str = ""
    backend: str = ""
    resetting: bool = False
    episode_index: int = -1
    #: STAGE_* bits the running episode reached so far (0 between episodes); None: the backend cannot tell.
    stages: int | None = None
    #: The last backend error, kept after recovery.
    last_error: str = ""
    accepted: int = 0
    rejected: int = 0
    #: Accepted commands whose goal had to be clamped to the joint position limits.
    clamped: int = 0
    watchdog_trips: int = 0
    reconnects: int = 0
    #: Why the arm holds at its measured position after a path tolerance violation ("" when not).
    hold_reason: str = ""
    #: Path tolerance violations (each made the arm hold).
    tolerance_trips: int = 0
    #: Backend errors ridden through within bus_error_grace (torque kept on, goal unchanged).
    bus_errors: int = 0
    #: Reason of the last rejected command ("" before the first).
    last_rejection: str = ""
    #: Receipt time (driver clock) - header.stamp of the last stamped command, s; NaN before one.
    stamp_offset: float = math.nan
    #: Exponential moving average (weight STAMP_OFFSET_EMA) of stamp_offset, s; NaN before one.
    stamp_offset_mean: float = math.nan


@dataclass
class Request:
    """A service request answered by the control thread; wait() for it, then read the fields."""

    kind: str
    args: dict
    success: bool = False
    message: str = ""
    episode_index: int = -1
    seed_used: int = -1
    #: select: the command source active before the request.
    previous: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float) -> bool:
        """True when answered within `timeout` s; otherwise the answer is a failure saying so."""
        if self.done.wait(timeout):
            return True
        self.success, self.message = False, f"{self.kind} did not complete within {timeout:.0f} s"
        return False

    def answer(self, success: bool, message: str) -> None:
        self.success, self.message = success, message
        self.done.set()


@dataclass
class TickOutput:
    """What one tick produced, all stamped `now` (driver clock, s)."""

    now: float = 0.0
    #: Sim time to publish on /clock (simulated backends), else None.
    clock: float | None = None
    #: Episode events in order (Event.stages filled).
    events: list[Event] = field(default_factory=list)
    #: Goal sent to the backend this tick (joint_commands), None while disabled or disconnected.
    command: np.ndarray | None = None
    #: (positions, velocities) when joint_states are due.
    joint_state: tuple[np.ndarray, np.ndarray] | None = None
    #: Task object poses {name: (xyz, quat_wxyz)} when joint_states are due and the backend has objects.
    objects: dict | None = None
    #: Camera frames due this tick.
    frames: dict[str, CameraFrame] = field(default_factory=dict)
    #: The status changed (state, reset, stages) this tick.
    status_changed: bool = False
    #: The status to publish (~/status): when it changed, and every `status_period` wall seconds.
    status: DriverStatus | None = None
    #: Ticks per wall second since the previous report, every `status_period` wall seconds
    #: (publish /diagnostics then); None on other ticks.
    tick_rate: float | None = None
    #: The command source state to publish (~/command_source): when the source or its alignment
    #: changed, and with every periodic status; None on other ticks.
    command_source: SourceState | None = None


@dataclass
class _ResetJob:
    request: Request
    seed: int
    deadline: float
    randomize: bool


def _no_log(level: str, text: str) -> None:
    pass


class DriverCore:
    """See the module docstring. `log(level, text)` receives "info", "warning" and "error" lines."""

    def __init__(self, config: DriverConfig, backend: RobotBackend, log=_no_log):
        self.config = config
        self.backend = backend
        self.log = log
        self.simulated = bool(backend.simulated_time)
        self.arm = ArmController(config.limits, config.command_timeout)
        self.path = PathToleranceMonitor(config.path_tolerance, config.path_tolerance_duration)
        self.arbiter = CommandArbiter(config.handover_speed, config.handover_tolerance, config.command_source)
        self._source_published: tuple | None = None  # (source, aligning, reason) last put in a TickOutput
        self.episodes = EpisodeBook(config.task or backend.task_text or DEFAULT_TASK)
        # task stages of the running episode (sim task only; None: EpisodeEvent.stages stays 0)
        self.stages = StageTracker(backend) if StageTracker.supports(backend) else None
        self._lock = threading.Lock()  # guards _status, _sim_time, _last_reject
        self._status = DriverStatus(backend=config.backend, stages=None if self.stages is None else 0)
        self._status_changed = True
        self._sim_time = 0.0
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._last_reject = (0.0, "")  # (wall time, reason) of the last logged rejection
        # control thread only
        self._connected = False
        self._next_connect = 0.0
        self._last_now: float | None = None
        self._prev_q: np.ndarray | None = None
        self._reset_job: _ResetJob | None = None
        self._clamp_counted = -1  # command sequence number whose clamping was counted
        self._bus_error_since: float | None = None  # wall time of the first error of the current run
        self._bus_error_ticks = 0
        self._bus_error_first = ""  # the error that started that run
        self._state_schedule = RateSchedule(config.state_rate_hz, slack=config.period)
        self._frame_schedules = {c.name: RateSchedule(c.fps, slack=config.period) for c in config.cameras}
        self._next_report: float | None = None  # wall time of the next periodic status / tick rate
        self._report_ticks, self._report_since = 0, 0.0  # ticks since the last report, its wall time

    @property
    def wall_period(self) -> float:
        """Wall seconds between ticks: one control period, divided by `real_time_factor` when simulated."""
        return self.config.period / (self.config.real_time_factor if self.simulated else 1.0)

    # ------------------------------------------------------------------ any thread
    def status(self) -> DriverStatus:
        """A copy of the current status."""
        with self._lock:
            return DriverStatus(**vars(self._status))

    def clock(self, node_now: float) -> float:
        """The driver clock (s): the sim time for simulated backends, else `node_now`."""
        if self.simulated:
            with self._lock:
                return self._sim_time
        return node_now

    def command(self, joint_names, points, stamp: float | None, now: float, source: str = POLICY) -> str | None:
        """A joint trajectory received at `now` (node clock, s) from `source` (POLICY or HUMAN):
        points are (time_from_start s, positions, velocities). Queued for the next tick when it
        is valid and the arm can take it (the tick executes it only if `source` is then the
        active one); otherwise counted and the reason returned (also logged, each new reason at
        once, repeats at most once a second)."""
        received = self.clock(now)
        if stamp and math.isfinite(stamp):
            self._note_stamp_offset(received - stamp)
        c = self.config
        try:
            cmd = validate_trajectory(joint_names, points, stamp=stamp, now=received,
                                      max_points=c.max_trajectory_points, max_duration=c.max_trajectory_duration)
        except CommandError as e:
            return self._reject(str(e))
        with self._lock:
            st = self._status
            if st.state != ENABLED:
                why = "arm disabled: call /driver/enable first" if st.state == DISABLED else (
                    f"driver state is {st.state}: {st.detail}")
            elif st.resetting:
                why = "reset_episode in progress"
            elif st.hold_reason:
                why = f"holding after {st.hold_reason}; call /driver/enable true or reset_episode to resume"
            else:
                why = None
        if why is not None:
            return self._reject(why)
        self._commands.put((cmd, received, source))
        return None

    def request_select(self, source: str, reason: str = "") -> Request:
        """Make `source` (POLICY or HUMAN) the active command source, applied by the next tick."""
        req = Request("select", {"source": str(source), "reason": str(reason)})
        self._requests.put(req)
        return req

    def request_enable(self, enable: bool) -> Request:
        """Torque on/off, applied by the next tick."""
        req = Request("enable", {"enable": bool(enable)})
        self._requests.put(req)
        return req

    def request_reset(self, task: str = "", seed: int = -1, randomize: bool = True) -> Request:
        """Start a new episode: home move, then the scene reset (answered when it started)."""
        req = Request("reset", {"task": task, "seed": int(seed), "randomize": bool(randomize)})
        self._requests.put(req)
        return req

    # ------------------------------------------------------------------ control thread
    def tick(self, wall: float, now: float) -> TickOutput:
        """One control period (see the module docstring)."""
        out = TickOutput(now=self.clock(now))
        if not self._connected:
            self._serve_requests(None, out)
            if wall >= self._next_connect:
                self._next_connect = wall + self.config.reconnect_period
                self._connected = self._connect()
                self._last_now = None
        else:
            goal = None if self.arm.goal is None else self.arm.goal.copy()
            try:
                self._step(now, out)
            except BackendError as e:
                since, grace = self._bus_error_since, self.config.bus_error_grace
                if grace > 0 and (since is None or wall - since <= grace):
                    self._on_transient_error(str(e), wall, goal, out)
                elif since is None:
                    self._on_backend_error(str(e), wall)
                else:
                    latest = "" if str(e) == self._bus_error_first else f": {e}"
                    self._on_backend_error(f"{self._bus_error_first} (still failing after {wall - since:.2f} s"
                                           f"{latest})", wall)
            except Exception as e:  # a backend bug: never die; report, hold, reconnect
                self.log("error", f"unexpected error in the control loop: {type(e).__name__}: {e}")
                self._on_backend_error(f"{type(e).__name__}: {e}", wall)
            else:
                self._bus_recovered(wall)
        out.status_changed, self._status_changed = self._status_changed, False
        self._report(wall, out)
        self._report_source(out)
        return out

    def _report_source(self, out: TickOutput) -> None:
        """The command source state when it changed, and with every periodic status."""
        st = self.arbiter.state
        key = (st.source, st.aligning, st.reason)
        if key != self._source_published or out.tick_rate is not None:
            self._source_published = key
            out.command_source = self.arbiter.snapshot()

    def _report(self, wall: float, out: TickOutput) -> None:
        """Status on change and every status_period; the tick rate every status_period."""
        self._report_ticks += 1
        if self._next_report is None:  # first tick: one nominal period since the start
            self._report_since = wall - self.wall_period
        if self._next_report is None or wall >= self._next_report:
            self._next_report = wall + self.config.status_period
            out.tick_rate = self._report_ticks / max(wall - self._report_since, 1e-9)
            self._report_ticks, self._report_since = 0, wall
        if out.status_changed or out.tick_rate is not None:
            out.status = self.status()

    def close(self) -> None:
        """Fail what is pending and release the backend (safe to call twice)."""
        self._fail_reset("driver shutting down")
        try:
            self.backend.disconnect()
        except Exception as e:
            self.log("warning", f"backend disconnect: {e}")

    # ------------------------------------------------------------------ internals
    def _reject(self, why: str) -> str:
        t = time.monotonic()
        with self._lock:
            self._status.rejected += 1
            self._status.last_rejection = why
            last_t, last_why = self._last_reject
            log = why != last_why or t - last_t > REJECT_LOG_PERIOD
            if log:
                self._last_reject = (t, why)
        if log:
            self.log("error", f"joint_trajectory rejected, arm not moved: {why}")
        return why

    def _note_stamp_offset(self, offset: float) -> None:
        with self._lock:
            st = self._status
            st.stamp_offset = offset
            st.stamp_offset_mean = offset if math.isnan(st.stamp_offset_mean) else (
                st.stamp_offset_mean + STAMP_OFFSET_EMA * (offset - st.stamp_offset_mean))

    def _update(self, **fields) -> None:
        with self._lock:
            for k, v in fields.items():
                if getattr(self._status, k) != v:
                    setattr(self._status, k, v)
                    self._status_changed = True

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self._status, counter, getattr(self._status, counter) + 1)

    def _state(self) -> tuple[str, str]:
        with self._lock:
            return self._status.state, self._status.detail

    def _connect(self) -> bool:
        try:
            self.backend.connect()
            q = self.backend.read_positions()
            enabled = bool(self.backend.enabled_on_start)
            self.backend.set_torque(enabled)
        except Exception as e:  # BackendError, or a backend bug: never let the control thread die
            detail = str(e) if isinstance(e, BackendError) else f"{type(e).__name__}: {e}"
            self._update(state=ERROR, detail=f"connect failed: {detail}")
            self.log("error", f"backend connect failed (retrying every {self.config.reconnect_period:g} s): {detail}")
            try:
                self.backend.disconnect()
            except Exception:
                pass
            return False
        self.arm.set_enabled(enabled, q)
        self.path.reset()
        self._prev_q = None
        self._bus_error_since = None
        self._update(hold_reason="")
        state, _ = self._state()
        if state == ERROR:
            self._count("reconnects")
        self._update(state=ENABLED if enabled else DISABLED, detail="")
        self.log("info", f"backend connected, torque {'on' if enabled else 'off (call /driver/enable)'}")
        return True

    def _on_transient_error(self, detail: str, wall: float, goal: np.ndarray | None, out: TickOutput) -> None:
        """A backend error within the grace period: skip this tick, keep torque and the goal."""
        if self._bus_error_since is None:
            self._bus_error_since = wall
            self._bus_error_ticks = 0
            self._bus_error_first = detail
            self.log("warning", f"backend error, keeping torque and goal for up to {self.config.bus_error_grace:g} s: "
                                f"{detail}")
        self._bus_error_ticks += 1
        if goal is not None:
            self.arm.goal = goal  # the goal the servos last received (a failed write is taken back)
        self._prev_q = None
        self.path.reset()
        self._count("bus_errors")
        self._update(last_error=detail)
        out.command = out.joint_state = out.objects = None
        out.frames = {}

    def _bus_recovered(self, wall: float) -> None:
        if self._bus_error_since is not None:
            self.log("info", f"backend answering again after {wall - self._bus_error_since:.3f} s "
                             f"({self._bus_error_ticks} failed ticks); torque stayed on")
            self._bus_error_since = None

    def _on_backend_error(self, detail: str, wall: float) -> None:
        self.log("error", f"backend error, holding and reconnecting: {detail}")
        self._connected = False
        self._bus_error_since = None
        self._next_connect = wall + self.config.reconnect_period
        self._update(last_error=detail)
        self.arm.hold()
        self._drain_commands()
        self._fail_reset(f"backend error: {detail}")
        self._update(state=ERROR, detail=detail)
        try:
            self.backend.disconnect()
        except Exception:
            pass

    def _drain_commands(self) -> None:
        while True:
            try:
                self._commands.get_nowait()
            except queue.Empty:
                return

    def _advance_time(self, now: float) -> tuple[float, float]:
        """Advance the backend by one tick; returns (driver clock, dt)."""
        period = self.config.period
        if self.simulated:
            self.backend.advance(period)
            with self._lock:
                self._sim_time += period
                return self._sim_time, period
        dt = period if self._last_now is None else min(max(now - self._last_now, 0.0), 2 * period)
        self.backend.advance(dt)
        return now, dt

    def _step(self, node_now: float, out: TickOutput) -> None:
        now, dt = self._advance_time(node_now)
        self._last_now = now
        out.now = now
        out.clock = now if self.simulated else None
        q = self.backend.read_positions()
        v = self.backend.read_velocities()
        if v is None:
            v = np.zeros(6) if self._prev_q is None or dt <= 0 else (q - self._prev_q) / dt
        self._prev_q = q
        commanded = self.arm.goal  # the goal sent the tick before
        self._serve_requests(q, out)
        if self.arm.enabled:
            self._check_path(now, commanded, q)
            self._apply_commands()
            step = self.arm.step(now, dt)
            if step.watchdog_tripped:
                self.arbiter.realign()
                self._count("watchdog_trips")
                self.log("warning", f"watchdog: command stream stopped for > {self.arm.watchdog.timeout:g} s "
                                    "mid-motion; holding")
            if step.limits.position_clamped.any() and self.arm.command_seq != self._clamp_counted:
                self._clamp_counted = self.arm.command_seq
                self._count("clamped")
            self.backend.write_goal_positions(step.goal)
            out.command = step.goal
        else:
            self._drain_commands()
            self.arm.sync(q)
        self._advance_reset(q, out)
        if self.stages is not None and self.episodes.running:
            self._update(stages=self.stages.update())
        if self._state_schedule.due(now):
            out.joint_state = (q, v)
            out.objects = self.backend.object_poses() or None
            event = self.episodes.outcome(self.backend.task_outcome())
            if event is not None:
                self._emit(event, out)
                self.log("info", f"episode {event.episode_index}: {event.kind}")
        due = [c for c in self.config.cameras if self._frame_schedules[c.name].due(now)]
        if due:
            out.frames = self.backend.capture_frames(due)

    def _check_path(self, now: float, commanded: np.ndarray | None, q: np.ndarray) -> None:
        """Hold at the measured position `q` when the path tolerance is violated."""
        with self._lock:
            holding = bool(self._status.hold_reason)
        if holding or commanded is None or not self.path.active:
            return
        why = self.path.check(now, commanded, q)
        if why is None:
            return
        self.arm.sync(q)
        self.arbiter.realign()
        self._drain_commands()
        self._fail_reset(f"reset stopped: {why}")
        self._count("tolerance_trips")
        self._update(hold_reason=why)
        self.log("error", f"{why}: holding at the measured position; commands are rejected until "
                          "/driver/enable true or reset_episode")

    def _apply_commands(self) -> None:
        while True:
            try:
                cmd, received, source = self._commands.get_nowait()
            except queue.Empty:
                return
            if self._reset_job is not None:
                continue
            cmd = self.arbiter.admit(source, cmd, self.arm.goal)
            if cmd is None:
                if self.arbiter.first_ignored(source):
                    self.log("info", f"ignoring joint_trajectory commands of the {source} source: the "
                                     f"{self.arbiter.source} source is active (/driver/select_source)")
                continue
            self.arm.command(cmd, received)
            self._count("accepted")

    def _emit(self, event: Event, out: TickOutput) -> None:
        seed = event.seed if self.simulated else -1  # a seeded scene only in simulation
        stages = self.stages.stages if self.stages is not None and event.kind in STAGE_EVENT_KINDS else 0
        out.events.append(event._replace(seed=seed, stages=stages))

    # ------------------------------------------------------------------ services (control thread)
    def _serve_requests(self, q: np.ndarray | None, out: TickOutput) -> None:
        while True:
            try:
                req: Request = self._requests.get_nowait()
            except queue.Empty:
                return
            if req.kind == "enable":
                self._enable(req, q)
            elif req.kind == "select":
                self._select(req, out)
            else:
                self._start_reset(req, q, out)

    def _enable(self, req: Request, q: np.ndarray | None) -> None:
        want = req.args["enable"]
        if q is None:
            req.answer(False, f"backend not connected ({self._state()[1]})")
            return
        try:
            self.backend.set_torque(want)
        except BackendError as e:
            req.answer(False, f"torque {'on' if want else 'off'} failed: {e}")
            raise
        self.arm.set_enabled(want, q)
        self.arbiter.realign()
        self.path.reset()
        self._drain_commands()
        if not want:
            self._fail_reset("arm disabled during reset")
        self._update(state=ENABLED if want else DISABLED, detail="", hold_reason="")
        req.answer(True, "torque on" if want else "torque off")
        self.log("info", f"/driver/enable: {req.message}")

    def _start_reset(self, req: Request, q: np.ndarray | None, out: TickOutput) -> None:
        if q is None or not self.arm.enabled or self._reset_job is not None:
            state, detail = self._state()
            if self._reset_job is not None:
                req.answer(False, "a reset is already in progress")
            elif state == DISABLED:
                req.answer(False, "arm disabled: call /driver/enable first")
            else:
                req.answer(False, f"driver state {state}: {detail}")
            return
        a = req.args
        seed = a["seed"] if a["seed"] >= 0 else int(np.random.default_rng().integers(0, 2**31 - 1))
        if self.arbiter.human and self.episodes.running:  # close the window inside the episode
            self._emit(self._intervention("INTERVENTION_END", "episode reset under human control"), out)
        for event in self.episodes.begin_reset(a["task"], seed):
            self._emit(event, out)
        duration = self.arm.move_to(self.config.home_pose, self.config.home_speed, out.now)
        self.arbiter.realign()
        self._drain_commands()
        self.path.reset()
        self._update(resetting=True, episode_index=self.episodes.index, stages=None if self.stages is None else 0,
                     hold_reason="")
        self._reset_job = _ResetJob(req, seed, deadline=out.now + duration + RESET_GRACE, randomize=a["randomize"])

    def _advance_reset(self, q: np.ndarray, out: TickOutput) -> None:
        job = self._reset_job
        if job is None:
            return
        home = self.config.home_pose
        home_reached = self.arm.reached(home) and bool(np.all(np.abs(q - home) <= HOME_TOLERANCE))
        if not home_reached and out.now < job.deadline:
            return
        if not home_reached:
            self.log("warning", f"reset: measured pose still {np.max(np.abs(q - home)):.3f} rad from home; "
                                "starting anyway")
        self.backend.reset_scene(job.seed, job.randomize)
        if self.stages is not None:
            self.stages.reset()
        self._reset_job = None
        self._update(resetting=False)
        self._emit(self.episodes.start(job.seed), out)
        if self.arbiter.human:  # the episode starts under human control
            self._emit(self._intervention("INTERVENTION_START", "episode started under human control"), out)
        job.request.episode_index, job.request.seed_used = self.episodes.index, job.seed
        job.request.answer(True, f"episode {self.episodes.index} started (seed {job.seed})")
        self.log("info", job.request.message)

    def _select(self, req: Request, out: TickOutput) -> None:
        source, reason = req.args["source"], req.args["reason"]
        previous = self.arbiter.source
        req.previous = previous
        try:
            changed = self.arbiter.select(source, reason)
        except ValueError as e:
            req.answer(False, str(e))
            return
        if not changed:
            req.answer(True, f"{source} is already the active command source")
            return
        self.arm.hold()  # the previous source's trajectory is dropped: the arm holds at its goal
        if self.episodes.running:
            kind = "INTERVENTION_START" if source == HUMAN else "INTERVENTION_END"
            self._emit(self._intervention(kind, reason or f"select_source {source}"), out)
        req.answer(True, f"{source} in control (was {previous})" + (
            f"; the follower is brought to the leader's pose at {self.config.handover_speed:g} rad/s before its "
            f"commands are followed as sent" if source == HUMAN else ""))
        self.log("info", f"/driver/select_source: {req.message}" + (f" ({reason})" if reason else ""))

    def _intervention(self, kind: str, detail: str) -> Event:
        """An INTERVENTION_START / INTERVENTION_END event of the current episode."""
        return Event(kind, self.episodes.index, self.episodes.task, detail, self.episodes.seed)

    def _fail_reset(self, why: str) -> None:
        job, self._reset_job = self._reset_job, None
        self._update(resetting=False)
        if job is not None:
            job.request.answer(False, why)
