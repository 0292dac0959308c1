"""Fixed-rate schedules (ROS-free): on the driver clock (RateSchedule) and on the wall clock (WallPacer)."""

from __future__ import annotations

import time


class RateSchedule:
    """Due every 1/rate seconds; keeps its phase unless it falls behind by more than
    `slack` seconds (then it restarts from now instead of bursting)."""

    def __init__(self, rate_hz: float, slack: float):
        if rate_hz <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
        self.period = 1.0 / rate_hz
        self.slack = slack
        self.next = None  # due at the first check

    def due(self, now: float) -> bool:
        """True when an event is due at `now` (and schedules the next one)."""
        if self.next is not None and now < self.next:
            return False
        nxt = (self.next if self.next is not None else now) + self.period
        self.next = nxt if nxt > now - self.slack else now + self.period
        return True


class WallPacer:
    """Sleeps until the next multiple of `period` wall seconds (time.monotonic); when it has
    fallen behind by more than `max_lag` periods it restarts from now instead of bursting."""

    def __init__(self, period: float, max_lag: int = 5):
        if period <= 0:
            raise ValueError(f"period must be > 0 s, got {period}")
        self.period = period
        self.max_lag = max_lag
        self.next = time.monotonic()

    def wait(self) -> float:
        """Sleep until the next tick is due; returns the wall time after the sleep."""
        self.next += self.period
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -self.max_lag * self.period:
            self.next = time.monotonic()
        return time.monotonic()
