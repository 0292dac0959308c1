"""Messages built by the driver (no node, no DDS)."""

import math

import numpy as np
import pytest

from soarm_driver.messages import camera_msgs, joint_state, object_markers
from soarm_driver.ros_support import duration_msg, duration_seconds, time_msg, time_seconds


def test_time_round_trip():
    for t in (0.0, 1.5, 1795692119.915521743, 12.999999999):
        assert time_seconds(time_msg(t)) == pytest.approx(t, abs=1e-6)
    assert time_msg(12.9999999999).nanosec <= 999_999_999
    assert (time_msg(1.15).sec, time_msg(1.15).nanosec) == (1, 150_000_000)  # rounded, not truncated
    assert duration_seconds(duration_msg(-0.25)) == pytest.approx(-0.25)


def test_joint_state_and_camera_messages():
    js = joint_state(["a", "b"], 2.25, np.array([1.0, 2.0]))
    assert list(js.name) == ["a", "b"] and list(js.position) == [1.0, 2.0] and len(js.velocity) == 0
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    k = np.array([[5.0, 0, 3], [0, 5.0, 2], [0, 0, 1]])
    im, info = camera_msgs("front", img, k, 3.5)
    assert (im.width, im.height, im.step, im.encoding) == (6, 4, 18, "rgb8")
    assert bytes(im.data) == img.tobytes() and im.header.frame_id == "front_camera_optical_frame"
    assert list(info.k) == k.ravel().tolist() and info.p[3] == 0.0 and info.p[2] == 3.0
    assert time_seconds(im.header.stamp) == time_seconds(info.header.stamp) == 3.5


def test_object_markers_cube_and_flat_target():
    arr = object_markers({"cube": ((0.2, 0.0, 0.0125), (1, 0, 0, 0)), "target": ((0.25, 0.1, 0.001), (1, 0, 0, 0))},
                         1.0)
    by_ns = {m.ns: m for m in arr.markers}
    assert set(by_ns) == {"cube", "target"} and all(m.header.frame_id == "world" for m in arr.markers)
    assert (by_ns["cube"].scale.x, by_ns["cube"].scale.z) == (0.025, 0.025)
    t = by_ns["target"]
    assert (t.scale.x, t.scale.y, t.scale.z) == (0.07, 0.07, 0.002)
    assert (t.color.r, t.color.g, t.color.b) == pytest.approx((0.15, 0.65, 0.25))
    assert t.pose.position.y == pytest.approx(0.1)


def test_driver_status_message_and_diagnostics_levels():
    from diagnostic_msgs.msg import DiagnosticStatus
    from soarm_msgs.msg import DriverStatus as Msg

    from soarm_driver.core import DriverStatus
    from soarm_driver.diagnostics import driver_diagnostics, level_and_message
    from soarm_driver.messages import driver_status

    st = DriverStatus(state="ENABLED", backend="mock", episode_index=2, stages=None, accepted=5, clamped=1)
    msg = driver_status(st, 4.5)
    assert (msg.state, msg.stages, msg.accepted, msg.clamped, msg.episode_index) == (Msg.ENABLED, -1, 5, 1, 2)
    assert driver_status(DriverStatus(state="ERROR", stages=3), 0.0).stages == 3
    assert level_and_message(st, 60.0, 59.0)[0] == DiagnosticStatus.OK
    assert level_and_message(st, 60.0, 30.0) == (DiagnosticStatus.WARN,
                                                 "ENABLED; control loop late: 30.0 ticks/s of 60")
    err = DriverStatus(state="ERROR", detail="port gone")
    assert level_and_message(err, 60.0, 60.0) == (DiagnosticStatus.ERROR, "ERROR: port gone")
    assert level_and_message(DriverStatus(), 60.0, 60.0)[0] == DiagnosticStatus.WARN  # connecting
    arr = driver_diagnostics("driver", st, 60.0, 60.0, 59.5, 4.5)
    (d,) = arr.status
    values = {kv.key: kv.value for kv in d.values}
    assert d.name == "driver: robot backend" and values["commands clamped"] == "1" and values["reconnects"] == "0"
    assert time_seconds(arr.header.stamp) == 4.5
    # command safety fields (issue 12): holding after a path tolerance violation, bus errors, stamp offset
    held = DriverStatus(state="ENABLED", hold_reason="path tolerance: elbow_flex ...", tolerance_trips=2,
                        bus_errors=3, last_rejection="trajectory ends in the past", stamp_offset=0.25,
                        stamp_offset_mean=0.125)
    msg = driver_status(held, 1.0)
    assert (msg.hold_reason, msg.tolerance_trips, msg.bus_errors, msg.last_rejection, msg.stamp_offset,
            msg.stamp_offset_mean) == ("path tolerance: elbow_flex ...", 2, 3, "trajectory ends in the past", 0.25,
                                       0.125)
    assert math.isnan(driver_status(DriverStatus(), 0.0).stamp_offset)
    assert level_and_message(held, 60.0, 60.0) == (DiagnosticStatus.WARN, "holding: path tolerance: elbow_flex ...")
    values = {kv.key: kv.value for kv in driver_diagnostics("driver", held, 60.0, 60.0, 60.0, 1.0).status[0].values}
    assert values["path tolerance trips"] == "2" and values["command stamp offset, mean (s)"] == "0.125"
