"""One thread that owns an object from its construction to its close (ROS-free).

The driver's backend must be built, used and closed on one thread (MuJoCo's GL context,
the serial port). `ControlThread(build)` runs `build()` on a new thread and returns once
it has, re-raising what `build()` raised (the thread is then gone). The object waits,
untouched, until `run(period, step)`: from then on the thread calls `step(wall)` every
`period` wall seconds (`schedule.WallPacer`; `wall` = time.monotonic() after the wait)
until `step` returns False or `stop()` is called, then calls the object's `close()`.
`stop()` before `run()` closes it without a step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from soarm_driver.schedule import WallPacer


class ControlThread:
    """See the module docstring. `target` is what `build()` returned."""

    def __init__(self, build: Callable[[], object], name: str = "control"):
        self.target = None
        self._error: BaseException | None = None
        self._built, self._go, self._stopping = threading.Event(), threading.Event(), threading.Event()
        self._period = 0.0
        self._step: Callable[[float], bool | None] | None = None
        self._thread = threading.Thread(target=self._main, args=(build,), name=name, daemon=True)
        self._thread.start()
        self._built.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def run(self, period: float, step: Callable[[float], bool | None]) -> None:
        """Start calling `step(wall)` every `period` wall seconds (returns at once)."""
        self._period, self._step = period, step
        self._go.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop stepping and close the target; True when the thread ended within `timeout` s."""
        self._stopping.set()
        self._go.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self, build) -> None:
        try:
            self.target = build()
        except BaseException as e:  # handed to the constructor's caller
            self._error = e
            self._built.set()
            return
        self._built.set()
        self._go.wait()
        try:
            if not self._stopping.is_set():
                pacer = WallPacer(self._period)
                while not self._stopping.is_set() and self._step(pacer.wait()) is not False:
                    pass
        finally:
            self.target.close()
