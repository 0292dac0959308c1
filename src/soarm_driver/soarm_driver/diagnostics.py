"""The driver's `/diagnostics` (diagnostic_msgs/DiagnosticArray, read by rqt_robot_monitor and
Foxglove): one DiagnosticStatus, "<node>: robot backend", built from the core's status and the
control rate it measured (`TickOutput.tick_rate`). Levels: ERROR in state ERROR, WARN while
connecting, while holding after a path tolerance violation or when the control loop runs below
80 % of its rate, OK otherwise. Documented in docs/interfaces.md ("driver").
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from soarm_driver.core import CONNECTING, ERROR, DriverStatus
from soarm_driver.ros_support import time_msg

#: Below this fraction of the expected tick rate the control loop is reported as late (WARN).
SLOW_FRACTION = 0.8


def level_and_message(status: DriverStatus, expected_rate: float, measured_rate: float) -> tuple[bytes, str]:
    """DiagnosticStatus level and message for `status` (ticks per wall second: expected, measured)."""
    if status.state == ERROR:
        return DiagnosticStatus.ERROR, f"ERROR: {status.detail}"
    if status.state == CONNECTING:
        return DiagnosticStatus.WARN, "connecting to the backend"
    if status.hold_reason:
        return DiagnosticStatus.WARN, f"holding: {status.hold_reason}"
    if measured_rate < SLOW_FRACTION * expected_rate:
        return DiagnosticStatus.WARN, (f"{status.state}; control loop late: {measured_rate:.1f} ticks/s "
                                       f"of {expected_rate:g}")
    return DiagnosticStatus.OK, status.state + (" (torque off)" if status.state == "DISABLED" else "")


def driver_diagnostics(node_name: str, status: DriverStatus, control_rate_hz: float, expected_rate: float,
                       measured_rate: float, now: float) -> DiagnosticArray:
    """The driver's DiagnosticArray stamped `now` (driver clock, s). `expected_rate` / `measured_rate`:
    control ticks per wall second (control_rate_hz x real_time_factor for simulated backends)."""
    level, message = level_and_message(status, expected_rate, measured_rate)
    values = {
        "backend": status.backend,
        "state": status.state,
        "detail": status.detail,
        "last error": status.last_error,
        "control rate (Hz)": f"{control_rate_hz:g}",
        "control ticks per wall second (expected)": f"{expected_rate:g}",
        "control ticks per wall second (measured)": f"{measured_rate:.1f}",
        "episode index": str(status.episode_index),
        "resetting": str(status.resetting).lower(),
        "commands accepted": str(status.accepted),
        "commands rejected": str(status.rejected),
        "commands clamped": str(status.clamped),
        "watchdog trips": str(status.watchdog_trips),
        "reconnects": str(status.reconnects),
        "hold reason": status.hold_reason,
        "path tolerance trips": str(status.tolerance_trips),
        "bus errors ridden through": str(status.bus_errors),
        "last rejection": status.last_rejection,
        "command stamp offset (s)": f"{status.stamp_offset:.3f}",
        "command stamp offset, mean (s)": f"{status.stamp_offset_mean:.3f}",
    }
    diag = DiagnosticStatus(level=level, name=f"{node_name}: robot backend", message=message,
                            hardware_id=f"so101 ({status.backend})",
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
    arr = DiagnosticArray(status=[diag])
    arr.header.stamp = time_msg(now)
    return arr
