"""Fixed-rate schedules on the driver clock (ROS-free)."""

from __future__ import annotations


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
