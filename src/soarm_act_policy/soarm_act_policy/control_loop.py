"""The policy's control tick, without ROS: freshness, hold/skip, modes, the plan.

Each `tick(now, snapshot)`:

1. holds while disabled or while the episode is over (no counters move);
2. holds and counts a skip when some stream has never arrived (`skipped_missing`)
   or its newest message is older than `max_observation_age` (`skipped_stale`);
3. otherwise gets actions for the current control step:
   - ``ensemble``: predicts a chunk from this observation every tick and blends every
     prediction covering the step (`TemporalEnsembler`);
   - ``chunk``: predicts when the executing chunk is used up and plays its first
     `n_action_steps` actions;
   - ``async``: hands the observation to an inference worker thread whenever it is
     idle and never waits for it; each finished chunk is placed on the timeline at the
     step of its observation and blended; if nothing covers the step it holds
     (`skipped_no_action`);
4. returns the plan: the current step's action and the next planned ones (radians).

The step counter advances only on ticks that act, so a hold never skips part of a plan.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .ensembler import TemporalEnsembler

MODES = ("ensemble", "chunk", "async")

IDLE, RUNNING, HOLDING, ERROR = 0, 1, 2, 3  # = soarm_msgs/PolicyStatus states


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
    #: (n, n_joints) radians: the current step's action then the next planned ones; None = hold.
    plan: np.ndarray | None = None
    observation_age: float = math.nan
    num_blended: int = 0
    chunk_index: int = 0
    #: Stamp of the observation the newest chunk in this plan was computed from (s).
    source_stamp: float = math.nan
    #: True when this tick started holding (enable false, episode end, reset).
    hold_started: bool = False


@dataclass
class Counters:
    steps: int = 0
    skipped_stale: int = 0
    skipped_missing: int = 0
    skipped_no_action: int = 0


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
    chunk_size: int = 100
    n_action_steps: int = 100
    ensemble_coeff: float = 0.01
    max_observation_age: float = 0.25
    horizon: int = 10
    action_dim: int = 6
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps must be in 1..chunk_size ({self.chunk_size}); got {self.n_action_steps}")
        if self.horizon < 1:
            raise ValueError(f"trajectory horizon must be >= 1; got {self.horizon}")
        if not self.max_observation_age > 0:
            raise ValueError(f"max_observation_age must be > 0 s; got {self.max_observation_age}")


class ControlLoop:
    """See module docstring. `predict(payload) -> (chunk_size, action_dim)` radians."""

    def __init__(self, config: LoopConfig, predict: Callable[[object], np.ndarray]):
        self.cfg = config
        self._predict = predict
        self.ensembler = TemporalEnsembler(config.chunk_size, config.action_dim, config.ensemble_coeff)
        self.counters = Counters()
        self.enabled = False
        self.episode_hold = ""  # non-empty: episode over (reason)
        self.error = ""  # non-empty: cannot run until reset
        self.last_latency = math.nan
        self._was_holding = True
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
        self.ensembler.reset(0)

    def episode_started(self) -> None:
        self.reset()
        self.episode_hold = ""

    def episode_over(self, reason: str) -> None:
        self.episode_hold = reason
        self._clear_plan()

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                pass
            self._worker.join(timeout=5)

    # ---- the tick -------------------------------------------------------------------
    def tick(self, now: float, snapshot: Snapshot) -> TickResult:
        self._collect_results()
        reason = self._hold_reason()
        if reason:
            started = not self._was_holding
            self._was_holding = True
            state = ERROR if self.error else HOLDING
            return TickResult(state, reason, hold_started=started)

        missing = [k for k, s in snapshot.stamps.items() if s is None]
        if missing:
            self.counters.skipped_missing += 1
            return self._hold(f"waiting for the first message on {', '.join(missing)}")
        ages = {k: now - s for k, s in snapshot.stamps.items()}
        oldest = max(ages, key=ages.get) if ages else None
        age = ages[oldest] if oldest else math.nan
        if oldest and age > self.cfg.max_observation_age:
            self.counters.skipped_stale += 1
            return self._hold(
                f"stale observation: {oldest} is {age:.2f} s old (max {self.cfg.max_observation_age:.2f} s)", age
            )
        newest = max(snapshot.stamps.values()) if snapshot.stamps else now

        ens = self.ensembler
        mode = self.cfg.mode
        try:
            if mode == "ensemble":
                self._add(ens.current, self._run(snapshot.payload), newest)
            elif mode == "chunk":
                if ens.count() == 0:
                    chunk = self._run(snapshot.payload)
                    ens.clear_future()
                    self._add(ens.current, chunk[: self.cfg.n_action_steps], newest)
                    self._chunk_start = ens.current
            else:
                self._submit(snapshot.payload, newest)
        except Exception as e:  # model failure: an operator must look
            self.error = f"inference failed: {type(e).__name__}: {e}"
            self._was_holding = True
            return TickResult(ERROR, self.error, hold_started=True, observation_age=age)

        if ens.count() == 0:
            self.counters.skipped_no_action += 1
            waiting = "first chunk" if self.counters.steps == 0 else "a chunk covering this step"
            return self._hold(f"async inference: waiting for {waiting}", age)

        plan = ens.plan(self.cfg.horizon)
        result = TickResult(
            RUNNING,
            plan=plan,
            observation_age=age,
            num_blended=ens.count(),
            chunk_index=(ens.current - self._chunk_start) if mode == "chunk" else ens.current,
            source_stamp=self._source_stamp,
        )
        self._was_holding = False
        self.counters.steps += 1
        ens.advance()
        return result

    # ---- internals ------------------------------------------------------------------
    def _hold_reason(self) -> str:
        if self.error:
            return self.error
        if not self.enabled:
            return "disabled (call ~/enable true to run)"
        return self.episode_hold

    def _hold(self, reason: str, age: float = math.nan) -> TickResult:
        self._was_holding = True
        return TickResult(HOLDING, reason, observation_age=age)

    def _run(self, payload) -> np.ndarray:
        t0 = time.perf_counter()
        chunk = self._predict(payload)
        self.last_latency = time.perf_counter() - t0
        return chunk

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
        self.ensembler.clear_future()
        self._chunk_start = self.ensembler.current
        self._source_stamp = math.nan

    def _submit(self, payload, stamp: float) -> None:
        if self._busy.is_set():
            return
        self._busy.set()
        self._jobs.put((self.ensembler.current, payload, stamp, self._generation))

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
                chunk = self._predict(payload)
                res = _Result(step, chunk, stamp, gen, time.perf_counter() - t0)
            except Exception as e:
                res = _Result(step, None, stamp, gen, time.perf_counter() - t0,
                              error=f"inference failed: {type(e).__name__}: {e}")
            self._results.put(res)
            self._busy.clear()
