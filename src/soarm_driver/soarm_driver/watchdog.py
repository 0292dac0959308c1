"""Command watchdog (ROS-free).

Definition (documented in docs/interfaces.md, "driver"):

- Commands are *expected* while a client streams them: the driver is in streaming
  mode once the last STREAM_MIN_COMMANDS (3) accepted commands each arrived at most
  `timeout` seconds after the one before (teleop at 30 Hz, a policy sending every
  step). One-shot commands (a single trajectory, or two sent together, after a
  pause longer than `timeout`) never arm the watchdog: they are executed to their
  end, however long that takes.
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

#: Consecutive commands, each within `timeout` of the previous, that make a stream.
STREAM_MIN_COMMANDS = 3


class CommandWatchdog:
    def __init__(self, timeout: float):
        self.timeout = float(timeout)
        self.streaming = False
        self.trips = 0
        self._last: float | None = None
        self._run = 0  # commands in the current run of closely spaced ones

    def on_command(self, now: float) -> None:
        """An accepted command arrived at `now`."""
        close = self._last is not None and 0.0 <= now - self._last <= self.timeout
        self._run = self._run + 1 if close else 1
        self.streaming = self._run >= STREAM_MIN_COMMANDS
        self._last = now

    def reset(self) -> None:
        """Forget the stream (on disable, reset, error)."""
        self.streaming = False
        self._last = None
        self._run = 0

    def check(self, now: float, motion_in_progress: bool) -> bool:
        """True when the watchdog trips at `now` (the caller must hold)."""
        if self.timeout <= 0 or not self.streaming or self._last is None:
            return False
        if now - self._last <= self.timeout:
            return False
        self.streaming = False
        self._run = 0
        if motion_in_progress:
            self.trips += 1
            return True
        return False
