"""The policy node's `/diagnostics` (diagnostic_msgs/DiagnosticArray, read by rqt_robot_monitor
and Foxglove): one DiagnosticStatus, "<node>: control loop", built from the PolicyStatus the
node publishes and the tick rate measured on the node clock. Levels: ERROR in state ERROR,
WARN when ticks run below 80 % of the control rate, OK otherwise. Documented in
docs/interfaces.md ("policy").
"""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from soarm_msgs.msg import PolicyStatus

#: Below this fraction of the control rate the ticks are reported as late (WARN).
SLOW_FRACTION = 0.8
STATE_NAMES = {getattr(PolicyStatus, n): n for n in ("IDLE", "RUNNING", "HOLDING", "ERROR")}
COUNTERS = ("steps", "skipped_stale", "skipped_missing", "skipped_no_action", "skipped_late")


class TickRate:
    """Ticks per clock second over windows of at least `window` seconds (ROS-free)."""

    def __init__(self, window: float = 1.0):
        self.window = window
        self._start: float | None = None
        self._count = 0
        self.rate: float | None = None  # of the last complete window

    def tick(self, now: float) -> bool:
        """Count a tick at `now` (s); True when a window completed (then `rate` is new)."""
        if self._start is None or now < self._start:  # first tick, or the clock jumped back
            self._start, self._count = now, 0
            return False
        self._count += 1
        if now - self._start < self.window:
            return False
        self.rate = self._count / (now - self._start)
        self._start, self._count = now, 0
        return True


def policy_diagnostics(node_name: str, status: PolicyStatus, tick_rate: float,
                       control_rate_hz: float) -> DiagnosticArray:
    """The policy's DiagnosticArray, stamped as `status`."""
    state = STATE_NAMES.get(status.state, str(status.state))
    if status.state == PolicyStatus.ERROR:
        level, message = DiagnosticStatus.ERROR, f"ERROR: {status.hold_reason}"
    elif tick_rate < SLOW_FRACTION * control_rate_hz:
        level, message = DiagnosticStatus.WARN, f"{state}; ticks late: {tick_rate:.1f} of {control_rate_hz:g} Hz"
    else:
        level, message = DiagnosticStatus.OK, state + (f": {status.hold_reason}" if status.hold_reason else "")
    latency = status.inference_latency
    values = {
        "state": state,
        "hold reason": status.hold_reason,
        "mode": status.mode,
        "control rate (Hz)": f"{control_rate_hz:g}",
        "tick rate (Hz, node clock)": f"{tick_rate:.1f}",
        "inference latency (ms)": "n/a" if not math.isfinite(latency) else f"{latency * 1000:.1f}",
        "observation age (ms)": (f"{status.observation_age * 1000:.1f}" if math.isfinite(status.observation_age)
                                 else "n/a"),
        **{name: str(getattr(status, name)) for name in COUNTERS},
    }
    diag = DiagnosticStatus(level=level, name=f"{node_name}: control loop", message=message, hardware_id="act policy",
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
    arr = DiagnosticArray(status=[diag])
    arr.header.stamp = status.header.stamp
    return arr
