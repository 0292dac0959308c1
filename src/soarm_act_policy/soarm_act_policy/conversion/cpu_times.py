"""Where a conversion's CPU time goes, stage by stage (the answer to "is it the encoder or us?").

Each stage is measured with `time.thread_time()` in the thread that runs it (the main thread's
pass 1, statistics and LeRobot writing; an encoding job's reading of the bag, in its thread or
worker process), so stages that run at the same time in different threads are not mixed up.
The video codec's own work is not measured here: codecs run threads Python cannot see (libx264's
slice threads). `bench_conversion.py` gets it as the process's CPU time minus these stages.
"""

from __future__ import annotations

import threading
import time

#: The stages, in pipeline order, with what each one covers.
STAGES = {
    "pass 1": "reading each bag (rosbags), aligning, the quality report",
    "frames for the encoder": "an encoding job reading its bag's selected images again",
    "video statistics": "LeRobot's per-camera statistics of the sampled frames",
    "LeRobot writing": "add_frame, save_episode (parquet, metadata, joining videos), finalize",
}


def _check(stage: str) -> None:
    if stage not in STAGES:
        raise KeyError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")


class CpuTimes:
    """CPU seconds per stage (thread CPU time), added up from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        _check(stage)
        with self._lock:
            self.seconds[stage] += seconds

    def measure(self, stage: str) -> "Measure":
        """A context manager adding the CPU time the entering thread spends inside it to `stage`
        (reusable: `with writing: ...` as often as needed)."""
        _check(stage)
        return Measure(self, stage)

    def summary(self) -> str:
        return ", ".join(f"{stage} {s:.2f}" for stage, s in self.seconds.items())


class Measure:
    """See CpuTimes.measure. Not reentrant; each thread times its own blocks."""

    def __init__(self, times: CpuTimes, stage: str) -> None:
        self._times, self._stage = times, stage
        self._start = threading.local()

    def __enter__(self) -> None:
        self._start.t = time.thread_time()

    def __exit__(self, *exc) -> None:
        self._times.add(self._stage, time.thread_time() - self._start.t)
