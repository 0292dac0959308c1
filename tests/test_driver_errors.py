"""The driver's error path over DDS: a Feetech backend with no arm (error state, retries,
no crash) and a bus failure mid-run (mock hook) with recovery."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_driver_helpers import JOINTS, Status, trajectory
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.dds


def calibration(tmp_path):
    p = tmp_path / "calib.json"
    p.write_text(json.dumps({
        n: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
        for i, n in enumerate(JOINTS)
    }))  # fmt: skip
    return p


@pytest.mark.parametrize("port_kind", ["pty"])  # "missing" works the same; its BackendError is unit-tested
def test_feetech_without_arm_reports_error_and_retries(start_node, ros_node, tmp_path, port_kind):
    pytest.importorskip("scservo_sdk")
    from soarm_msgs.srv import ResetEpisode
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    fds = ()
    if port_kind == "pty":
        fds = os.openpty()
        port, expect = os.ttyname(fds[1]), "Missing motor IDs"
    else:
        port, expect = "/dev/soarm-no-such-port", "Could not connect"
    try:
        status = Status(ros_node)
        proc = start_node(
            "soarm_driver",
            "driver",
            params={"backend": "feetech", "port": port, "calibration_file": str(calibration(tmp_path)),
                    "reconnect_period": 0.5, "status_period": 0.2, "camera_names": [""]},  # fmt: skip
        )
        ros_node.wait_for(lambda: status.state() == "ERROR", 60, what="ERROR state in /driver/status")
        st = status.last()
        assert port in st.detail and expect in st.detail, st
        # it keeps retrying (log shows several attempts) and stays alive
        ros_node.wait_for(lambda: proc.log().count("backend connect failed") >= 2, 20, what="2 connect attempts")
        assert proc.alive()
        pub = ros_node.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
        ros_node.wait_for(lambda: pub.get_subscription_count() > 0, 10, what="subscription")
        time.sleep(0.5)
        pub.publish(trajectory([(0.0, [0.1] * 6)]))
        ros_node.wait_for(lambda: status.get("rejected", 0) >= 1, 10, what="command rejected in ERROR")
        r = ros_node.call(SetBool, "/driver/enable", SetBool.Request(data=True), timeout=20)
        assert not r.success and "not connected" in r.message
        r = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=1), timeout=20)
        assert not r.success and "ERROR" in r.message
        assert proc.alive()
    finally:
        for fd in fds:
            os.close(fd)


def test_bus_failure_mid_run_error_state_then_recovery(start_node, ros_node):
    """A backend that fails while running (mock hook: the bus 'disappears' for 2.5 s, longer
    than bus_error_grace, 0.5 s): the driver reports ERROR, keeps running, reconnects and
    resumes publishing."""
    from test_driver_helpers import start_driver, stamp_s

    params = {"mock.fail_at": 4.0, "mock.fail_for": 2.5, "reconnect_period": 0.5, "status_period": 0.2}
    status = Status(ros_node)
    proc, states, commands = start_driver(start_node, ros_node, params=params)
    # the failure comes 4 s after connecting (after start_driver has seen joint_states)
    ros_node.wait_for(lambda: status.get("reconnects") == 1, 30, what="one reconnection")
    st = status.last()
    assert status.state() == "ENABLED" and "simulated bus failure" in st.last_error, st
    log = proc.log()
    assert "backend error, holding and reconnecting: mock: simulated bus failure" in log
    assert log.count("backend connect failed") >= 2  # down for 2.5 s (0.5 s of grace), retried every 0.5 s

    def resumed():  # a >= 1 s hole in joint_states (the outage), then publishing again
        stamps = np.array([stamp_s(m.header.stamp) for m in states.snapshot()])
        holes = np.nonzero(np.diff(stamps) > 1.0)[0]
        return len(holes) == 1 and len(stamps) - holes[0] > 10

    ros_node.wait_for(resumed, 10, what="joint_states hole during the outage, then resumed")
    assert proc.alive()


def _fake_bus_module():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "src" / "soarm_driver" / "test" / "test_driver_fake_bus.py"
    spec = importlib.util.spec_from_file_location("driver_fake_bus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_feetech_driver_on_simulated_servos_enable_move_unplug_replug(start_node, ros_node, tmp_path):
    """The driver process with the real LeRobot Feetech bus code against simulated servos
    on a pty: starts disabled, moves only once enabled, goes to ERROR when the servos stop
    answering, reconnects (torque off) when they answer again."""
    pytest.importorskip("scservo_sdk")
    from std_srvs.srv import SetBool
    from test_driver_helpers import start_driver

    fb = _fake_bus_module()
    bus = fb.FakeFeetechBus()
    try:
        status = Status(ros_node)
        params = {"backend": "feetech", "port": bus.port, "calibration_file": str(calibration(tmp_path)),
                  "reconnect_period": 0.5, "status_period": 0.2, "camera_names": [""]}  # fmt: skip
        proc, states, commands = start_driver(start_node, ros_node, backend="feetech", params=params, timeout=90)
        ros_node.wait_for(lambda: status.state() == "DISABLED", 20, what="DISABLED (torque off on start)")
        expected = [fb.ticks_to_rad(2048, j) for j in range(6)]
        msg = states.last()
        np.testing.assert_allclose(dict(zip(msg.name, msg.position))["shoulder_pan"], expected[0], atol=1e-6)

        pub = ros_node.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
        ros_node.wait_for(lambda: pub.get_subscription_count() > 0, 10, what="subscription")
        time.sleep(0.5)
        target = [0.3, -0.2, 0.2, 0.1, 0.5, 1.0]
        pub.publish(trajectory([(0.0, target)]))
        ros_node.wait_for(lambda: status.get("rejected", 0) >= 1, 10, what="rejection while disabled")
        assert bus.get(1, fb.GOAL) == 2048 and bus.mem[1][fb.TORQUE_ENABLE] == 0

        assert ros_node.call(SetBool, "/driver/enable", SetBool.Request(data=True), timeout=20).success
        assert all(bus.mem[i][fb.TORQUE_ENABLE] == 1 for i in range(1, 7))
        pub.publish(trajectory([(0.0, target)]))

        def at_target():
            m = states.last()
            return np.allclose([dict(zip(m.name, m.position))[n] for n in JOINTS], target, atol=2e-3)

        ros_node.wait_for(at_target, 20, what="simulated servos at the target")
        goals = [fb.ticks_to_rad(bus.get(i, fb.GOAL), i - 1) for i in range(1, 7)]
        np.testing.assert_allclose(goals, target, atol=2e-3)

        bus.silent = True
        ros_node.wait_for(lambda: status.state() == "ERROR", 20, what="ERROR when the servos are silent")
        assert "reading positions" in status.last().detail or "writing goals" in status.last().detail
        time.sleep(1.0)
        assert proc.alive()
        bus.silent = False
        ros_node.wait_for(lambda: status.state() == "DISABLED", 20, what="reconnected, disabled")
        assert status.last().reconnects == 1
        assert all(bus.mem[i][fb.TORQUE_ENABLE] == 0 for i in range(1, 7))
    finally:
        bus.close()
