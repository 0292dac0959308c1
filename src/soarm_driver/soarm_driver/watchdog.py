"""Command watchdog (ROS-free).

Definition (documented in docs/interfaces.md, "driver"):

- Commands are *expected* while a client streams them: the driver is in streaming
  mode when the last accepted command arrived at most `timeout` seconds after the
  one before it (teleop at 30 Hz, a policy sending every step). A one-shot command
  (the first one after a pause longer than `timeout`) never arms the watchdog: it is
  executed to its end, however long it takes.
- The watchdog trips when, in streaming mode, no command has been accepted for more
  than `timeout` seconds while motion is still in progress (the trajectory has
  points in the future, or the velocity-limited goal has not reached its last
  point yet). The driver then drops the rest of the trajectory and holds the
  position it is commanding at that moment.
- When the stream stops and the motion is already complete, streaming mode simply
  ends (nothing to hold). The next command starts a new stream.
- `timeout <= 0` disables the watchdog.
"""

from __future__ import annotations


class CommandWatchdog:
    def __init__(self, timeout: float):
        self.timeout = float(timeout)
        self.streaming = False
        self.trips = 0
        self._last: float | None = None

    def on_command(self, now: float) -> None:
        """An accepted command arrived at `now`."""
        self.streaming = self._last is not None and 0.0 <= now - self._last <= self.timeout
        self._last = now

    def reset(self) -> None:
        """Forget the stream (on disable, reset, error)."""
        self.streaming = False
        self._last = None

    def check(self, now: float, motion_in_progress: bool) -> bool:
        """True when the watchdog trips at `now` (the caller must hold)."""
        if self.timeout <= 0 or not self.streaming or self._last is None:
            return False
        if now - self._last <= self.timeout:
            return False
        self.streaming = False
        if motion_in_progress:
            self.trips += 1
            return True
        return False
