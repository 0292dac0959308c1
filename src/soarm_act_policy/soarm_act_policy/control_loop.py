"""The policy's control tick, without ROS: freshness, hold/skip, modes, the plan, on a clock.

Time contract. The loop keeps a step timeline anchored at ``t0``: step ``k`` is due at
``t0 + k * period``. ``t0`` is the stamp of the newest observation of the first tick that
acts after enable, reset, an episode start or a hold. A tick at time ``now`` plays step
``k = floor((now - t0) / period)``, whatever the number of ticks before it: a late tick
skips the steps that have passed and counts them (`skipped_late`); two ticks inside one
period play the same step once. A chunk computed from an observation stamped ``s`` is
placed at step ``floor((s - t0) / period)``: ``chunk[j]`` is the action due at
``t0 + (that step + j) * period``, so inference time never stretches the timeline (the
actions whose time passed while the model ran are dropped, as in the ACT paper's
real-time execution).

Each `tick(now, snapshot)`:

1. holds while disabled, while the episode is over or while a human drives (`set_human_control`;
   no counters move);
2. holds and counts a skip when some stream has never arrived (`skipped_missing`),
   its newest message is stamped more than `future_stamp_tolerance` after ``now`` (clocks
   out of sync: not fresh, `skipped_stale`) or is older than `max_observation_age`
   (`skipped_stale`); a hold drops the plan, the next acting tick starts a new timeline;
3. otherwise gets actions for the current step ``k``:
   - ``ensemble``: predicts a chunk from this observation once per step (in the tick) and
     blends every prediction covering the step (`TemporalEnsembler`);
   - ``chunk``: predicts (in the tick) when the executing chunk no longer covers ``k`` and
     plays its first `n_action_steps` actions;
   - ``async``: hands the observation to an inference worker thread whenever it is idle
     and never waits for it; each finished chunk is placed at its observation's step and
     blended; if nothing covers ``k`` it holds (`skipped_no_action`);
4. returns the plan: the actions of steps ``k, k+1, ...`` (radians) and ``plan_time``, the
   time step ``k`` is due. A consumer times point ``j`` at ``plan_time + j * period``. The
   plan has at least `trajectory_points` points where covered, and always reaches at least
   `reach_periods` periods past ``plan_time``: the next expected tick (one period plus the
   last in-tick inference time) and `plan_margin` more (at least one period: a tick late
   within its period, the transport, a loaded machine; default 0.1 s). Where no prediction
   covers those steps (the last steps of a chunk in chunk mode, of the newest chunk in async
   mode) the last covered action is repeated: the arm holds it, as the driver does after a
   trajectory's last point, and a plan stamped with its step's due time does not end before
   the driver receives it ("ends in the past") unless it is delayed by more than the margin.

Errors. A predictor that raises, or returns a chunk with a NaN or infinite action, or a
plan that blends to one (overflow), puts the loop in ERROR: no plan is returned, every
tick holds with the reason until `reset()` (nothing non-finite ever leaves the loop).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .ensembler import TemporalEnsembler

MODES = ("ensemble", "chunk", "async")
#: Modes a user may ask for: `auto` becomes ensemble or async (see `resolve_mode`).
REQUESTED_MODES = ("auto", *MODES)

IDLE, RUNNING, HOLDING, ERROR = 0, 1, 2, 3  # = soarm_msgs/PolicyStatus states

_EPS = 1e-6  # tolerance (in periods) when turning times into steps
#: Hint in the reason of a non-finite action.
_NON_FINITE_HINT = "nothing was published; holding until ~/reset (check the checkpoint's weights and statistics)"


class NonFiniteActionError(ValueError):
    """The model returned NaN or infinite actions (the message says where)."""


def check_finite(actions: np.ndarray, what: str) -> np.ndarray:
    """Return `actions` if every value is finite, else raise NonFiniteActionError naming the first one."""
    actions = np.asarray(actions, dtype=np.float64)
    bad = ~np.isfinite(actions)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteActionError(
            f"non-finite action in {what}: {int(bad.sum())} value(s), the first {actions[first]} at "
            f"(step, joint) {first}; {_NON_FINITE_HINT}"
        )
    return actions


def _failure(e: Exception) -> str:
    """The ERROR reason of a failed inference."""
    return str(e) if isinstance(e, NonFiniteActionError) else f"inference failed: {type(e).__name__}: {e}"


def resolve_mode(requested: str, inference_latency: float, period: float) -> tuple[str, str]:
    """Choose the execution mode for a measured inference latency (s) and control period (s).

    Returns ``(mode, warning)``; the warning is empty when nothing needs saying.
    ``auto`` runs synchronous ensembling when one inference fits in half a control period
    (the tick also builds observations and publishes), else asynchronous ensembling (the
    same blending, inference on a worker thread). An explicit ``ensemble`` with a model
    slower than the period is kept but warned about: every tick waits for the model, so
    commands come at the inference rate.
    """
    if requested not in REQUESTED_MODES:
        raise ValueError(f"mode must be one of {', '.join(REQUESTED_MODES)}; got {requested!r}")
    fits = inference_latency <= 0.5 * period
    if requested == "auto":
        return ("ensemble", "") if fits else ("async", "")
    if requested == "ensemble" and inference_latency > period:
        return "ensemble", (
            f"mode ensemble: one inference takes {inference_latency * 1000:.0f} ms, longer than the control "
            f"period ({period * 1000:.0f} ms): commands will come at ~{1 / inference_latency:.1f} Hz. "
            f"Use mode auto or async (same ensembling, inference off the control tick), or a faster device."
        )
    return requested, ""


@dataclass
class Snapshot:
    """The newest message of every input stream at tick time.

    stamps: stream name (topic) -> header stamp in seconds, None if never received.
    payload: opaque, handed to the predictor (e.g. the messages themselves).
    """

    stamps: Mapping[str, float | None]
    payload: object = None


@dataclass
class TickResult:
    state: int
    hold_reason: str = ""
    #: (n, n_joints) radians: the actions of steps k, k+1, ... (the last covered one repeated up to
    #: `ControlLoop.reach_periods`); None = hold.
    plan: np.ndarray | None = None
    #: Time (s, the tick clock) at which plan[0] is due; plan[j] at plan_time + j * period.
    plan_time: float = math.nan
    #: Timeline step k played by this tick (-1 when holding).
    step: int = -1
    observation_age: float = math.nan
    num_blended: int = 0
    chunk_index: int = 0
    #: Stamp of the observation the newest chunk in this plan was computed from (s).
    source_stamp: float = math.nan
    #: True when this tick started holding (enable false, episode end, reset, stale input).
    hold_started: bool = False


@dataclass
class Counters:
    #: Steps played (one per step of the timeline that a tick acted on).
    steps: int = 0
    skipped_stale: int = 0
    skipped_missing: int = 0
    skipped_no_action: int = 0
    #: Steps of the timeline that passed between two acting ticks without being played.
    skipped_late: int = 0


@dataclass
class _Result:
    step: int
    chunk: np.ndarray | None
    stamp: float
    generation: int
    latency: float
    error: str = ""


@dataclass
class LoopConfig:
    mode: str = "ensemble"
    #: Control period (s): the dataset's 1 / fps.
    period: float = 1.0 / 30.0
    chunk_size: int = 100
    n_action_steps: int = 100
    ensemble_coeff: float = 0.01
    max_observation_age: float = 0.25
    #: An observation stamped more than this after the tick time (s) is not fresh (clocks out of sync).
    future_stamp_tolerance: float = 0.1
    #: Least number of points per plan (where predictions cover them).
    trajectory_points: int = 10
    #: How long (s) every plan outlives the next expected tick: a late tick, the transport, a
    #: loaded machine between the tick and the driver's receipt (at least one period is used).
    #: 0.1 s: with one period (33 ms) a demo run's driver rejected 2 plans as "ends in the past"
    #: after 330 ms inferences on the 2-core machine.
    plan_margin: float = 0.1
    action_dim: int = 6

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not self.period > 0:
            raise ValueError(f"control period must be > 0 s; got {self.period}")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps must be in 1..chunk_size ({self.chunk_size}); got {self.n_action_steps}")
        if not self.plan_margin >= 0:
            raise ValueError(f"plan_margin must be >= 0 s; got {self.plan_margin}")
        if self.trajectory_points < 1:
            raise ValueError(f"trajectory points must be >= 1; got {self.trajectory_points}")
        if not self.max_observation_age > 0:
            raise ValueError(f"max_observation_age must be > 0 s; got {self.max_observation_age}")
        if not self.future_stamp_tolerance >= 0:
            raise ValueError(f"future_stamp_tolerance must be >= 0 s; got {self.future_stamp_tolerance}")


class ControlLoop:
    """See module docstring. `predict(payload) -> (chunk_size, action_dim)` radians."""

    def __init__(self, config: LoopConfig, predict: Callable[[object], np.ndarray]):
        self.cfg = config
        self._predict = predict
        self.ensembler = TemporalEnsembler(config.chunk_size, config.action_dim, config.ensemble_coeff)
        self.counters = Counters()
        self.enabled = False
        self.episode_hold = ""  # non-empty: episode over (reason)
        self.human_hold = ""  # non-empty: a human drives the arm (reason)
        self.error = ""  # non-empty: cannot run until reset
        self.last_latency = math.nan
        self._was_holding = True
        self._t0: float | None = None  # time of step 0 of the current timeline
        self._last_step: int | None = None  # last step played on it
        self._chunk_start = 0
        self._source_stamp = math.nan
        self._generation = 0
        # async worker
        self._jobs: queue.Queue = queue.Queue(maxsize=1)
        self._results: queue.Queue = queue.Queue()
        self._busy = threading.Event()
        self._stop = threading.Event()
        self._worker = None
        if config.mode == "async":
            self._worker = threading.Thread(target=self._work, name="policy-inference", daemon=True)
            self._worker.start()

    @property
    def period(self) -> float:
        return self.cfg.period

    # ---- commands -------------------------------------------------------------------
    def set_enabled(self, enabled: bool) -> None:
        if enabled and not self.enabled:
            self._clear_plan()  # plans made before a pause are out of date
        self.enabled = bool(enabled)

    def reset(self) -> None:
        """Clear all policy state: plans, queued/in-flight chunks, counters, errors."""
        self._clear_plan()
        self.counters = Counters()
        self.error = ""

    def episode_started(self) -> None:
        self.reset()
        self.episode_hold = ""

    def episode_over(self, reason: str) -> None:
        self.episode_hold = reason
        self._clear_plan()

    def set_human_control(self, reason: str) -> None:
        """Non-empty `reason`: a human drives the arm, hold (the observations keep arriving). Empty:
        handed back, the next acting tick starts a new plan from the current observation."""
        if bool(reason) != bool(self.human_hold):
            self._clear_plan()
        self.human_hold = reason

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                pass
            self._worker.join(timeout=5)

    def reach_periods(self) -> int:
        """Periods every plan reaches past its ``plan_time`` (its last point is at least this many
        periods after it): the next expected tick, one period plus the last in-tick inference time
        (none in async mode), then `plan_margin` (at least one period) for a late tick, the
        transport and a loaded machine."""
        in_tick = self.last_latency if self.cfg.mode != "async" and not math.isnan(self.last_latency) else 0.0
        margin = max(self.cfg.period, self.cfg.plan_margin)
        return math.ceil((self.cfg.period + in_tick + margin) / self.cfg.period - _EPS)

    def step_at(self, t: float) -> int:
        """Timeline step due at time t (the current timeline must exist)."""
        return math.floor((t - self._t0) / self.cfg.period + _EPS)

    # ---- the tick -------------------------------------------------------------------
    def tick(self, now: float, snapshot: Snapshot) -> TickResult:
        reason = self._hold_reason()
        if reason:
            self._collect_results()
            started = not self._was_holding
            self._was_holding = True
            state = ERROR if self.error else HOLDING
            return TickResult(state, reason, hold_started=started)

        missing = [k for k, s in snapshot.stamps.items() if s is None]
        if missing:
            self.counters.skipped_missing += 1
            return self._hold(f"waiting for the first message on {', '.join(missing)}")
        ages = {k: now - s for k, s in snapshot.stamps.items()}
        newest = min(ages, key=ages.get) if ages else None
        if newest and -ages[newest] > self.cfg.future_stamp_tolerance:
            self.counters.skipped_stale += 1
            return self._hold(
                f"observation from the future: {newest} is stamped {-ages[newest]:.2f} s after the node clock "
                f"(max {self.cfg.future_stamp_tolerance:.2f} s): synchronise the machines' clocks (chrony) or "
                f"give every node the same time source (use_sim_time)", ages[newest]
            )
        oldest = max(ages, key=ages.get) if ages else None
        age = ages[oldest] if oldest else math.nan
        if oldest and age > self.cfg.max_observation_age:
            self.counters.skipped_stale += 1
            return self._hold(
                f"stale observation: {oldest} is {age:.2f} s old (max {self.cfg.max_observation_age:.2f} s)", age
            )
        # the observation's time: its newest stream, never after the tick
        observed = min(max(snapshot.stamps.values()), now) if snapshot.stamps else now

        if self._t0 is None:  # a new timeline: step 0 is the observation's time
            self._t0 = observed
            self.ensembler.reset(0)
            self._chunk_start = 0
        step = max(self.step_at(now), 0)
        ens = self.ensembler
        if step > ens.current:
            ens.advance_to(step)
        self._collect_results()
        if self.error:  # an async inference failed since the last tick
            return self._fail(self.error, age)
        obs_step = min(self.step_at(observed), step)

        mode = self.cfg.mode
        new_step = self._last_step is None or step > self._last_step
        try:
            if mode == "ensemble":
                if new_step:  # one prediction per step, however many ticks fall in it
                    self._add(obs_step, self._run(snapshot.payload), observed)
            elif mode == "chunk":
                if ens.count() == 0:
                    chunk = self._run(snapshot.payload)
                    ens.clear_future()
                    self._add(obs_step, chunk[: self.cfg.n_action_steps], observed)
                    self._chunk_start = obs_step
            else:
                self._submit(snapshot.payload, obs_step, observed)
        except Exception as e:  # model failure: an operator must look
            return self._fail(_failure(e), age)

        if ens.count() == 0:
            self.counters.skipped_no_action += 1
            if mode == "async":
                waiting = "first chunk" if self.counters.steps == 0 else "a chunk covering this step"
                return self._hold(f"async inference: waiting for {waiting}", age, new_timeline=False)
            return self._hold(f"{mode}: the prediction does not cover step {step} (observation too old)", age)

        reach = self.reach_periods()
        try:
            plan = check_finite(ens.plan(max(self.cfg.trajectory_points, reach + 1)), "the blended plan")
        except NonFiniteActionError as e:
            return self._fail(str(e), age)
        if len(plan) <= reach:  # coverage ends before the next tick: hold the last action until past it
            plan = np.concatenate([plan, np.repeat(plan[-1:], reach + 1 - len(plan), axis=0)])
        if new_step:
            if self._last_step is not None:
                self.counters.skipped_late += step - self._last_step - 1
            self.counters.steps += 1
            self._last_step = step
        self._was_holding = False
        return TickResult(
            RUNNING,
            plan=plan,
            plan_time=self._t0 + step * self.cfg.period,
            step=step,
            observation_age=age,
            num_blended=ens.count(),
            chunk_index=(step - self._chunk_start) if mode == "chunk" else step,
            source_stamp=self._source_stamp,
        )

    # ---- internals ------------------------------------------------------------------
    def _hold_reason(self) -> str:
        if self.error:
            return self.error
        if not self.enabled:
            return "disabled (call ~/enable true to run)"
        return self.episode_hold or self.human_hold

    def _fail(self, reason: str, age: float) -> TickResult:
        """Enter ERROR (until reset): the plan is dropped, this tick and the next ones hold."""
        self.error = reason
        self._clear_plan()
        started = not self._was_holding
        self._was_holding = True
        return TickResult(ERROR, reason, hold_started=started, observation_age=age)

    def _hold(self, reason: str, age: float = math.nan, new_timeline: bool = True) -> TickResult:
        """Hold this tick; by default the plan is dropped and the next acting tick starts a new timeline."""
        started = not self._was_holding
        self._was_holding = True
        if new_timeline and self._t0 is not None:
            self._clear_plan()
        return TickResult(HOLDING, reason, observation_age=age, hold_started=started)

    def _run(self, payload) -> np.ndarray:
        t0 = time.perf_counter()
        chunk = self._predict(payload)
        self.last_latency = time.perf_counter() - t0
        return check_finite(chunk, "the model's chunk")

    def _add(self, step: int, chunk: np.ndarray, stamp: float) -> None:
        if self.ensembler.add(step, chunk):
            self._source_stamp = stamp

    def _clear_plan(self) -> None:
        self._generation += 1  # results of in-flight inferences are dropped when they arrive
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
            self._busy.clear()  # the worker never saw that job
        self.ensembler.reset(0)
        self._t0 = None
        self._last_step = None
        self._chunk_start = 0
        self._source_stamp = math.nan

    def _submit(self, payload, step: int, stamp: float) -> None:
        if self._busy.is_set():
            return
        self._busy.set()
        self._jobs.put((step, payload, stamp, self._generation))

    def _collect_results(self) -> None:
        while True:
            try:
                r: _Result = self._results.get_nowait()
            except queue.Empty:
                return
            self.last_latency = r.latency
            if r.generation != self._generation:
                continue
            if r.error:
                self.error = r.error
                continue
            self._add(r.step, r.chunk, r.stamp)

    def _work(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None:
                return
            step, payload, stamp, gen = job
            t0 = time.perf_counter()
            try:
                chunk = check_finite(self._predict(payload), "the model's chunk")
                res = _Result(step, chunk, stamp, gen, time.perf_counter() - t0)
            except Exception as e:
                res = _Result(step, None, stamp, gen, time.perf_counter() - t0, error=_failure(e))
            self._results.put(res)
            self._busy.clear()
