"""Feetech backend without an arm: unit conversions (against LeRobot's own
normalization), calibration files, and the error path (no port, silent bus)."""

import json
import math
import os

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES, BackendError
from soarm_driver.calibration import CalibrationError, load_calibration_dict
from soarm_driver.units import (
    GRIPPER_CLOSED_RAD,
    GRIPPER_OPEN_RAD,
    gripper_radians_to_percent,
    lerobot_to_radians,
    radians_to_lerobot,
)

CALIB = {
    name: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
    for i, name in enumerate(JOINT_NAMES)
}
CALIB["wrist_roll"].update(range_min=0, range_max=4095)


@pytest.fixture
def calib_file(tmp_path):
    p = tmp_path / "so101_follower.json"
    p.write_text(json.dumps(CALIB))
    return p


def test_units_known_values_and_round_trip():
    q = lerobot_to_radians({"shoulder_pan": 90.0, "shoulder_lift": -45.0, "elbow_flex": 0.0,
                            "wrist_flex": 180.0, "wrist_roll": -90.0, "gripper": 0.0})  # fmt: skip
    np.testing.assert_allclose(q[:5], [math.pi / 2, -math.pi / 4, 0.0, math.pi, -math.pi / 2])
    assert q[5] == pytest.approx(GRIPPER_CLOSED_RAD)
    assert lerobot_to_radians({f"{n}.pos": 100.0 for n in JOINT_NAMES})[5] == pytest.approx(GRIPPER_OPEN_RAD)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(-1.5, 1.5, 6)
        q[5] = rng.uniform(GRIPPER_CLOSED_RAD, GRIPPER_OPEN_RAD)
        np.testing.assert_allclose(lerobot_to_radians(radians_to_lerobot(q)), q, atol=1e-12)
    assert gripper_radians_to_percent(5.0) == 100.0 and gripper_radians_to_percent(-5.0) == 0.0
    with pytest.raises(KeyError, match="shoulder_lift"):
        lerobot_to_radians({"shoulder_pan": 0.0})
    with pytest.raises(ValueError):
        radians_to_lerobot(np.zeros(5))


def test_units_agree_with_lerobot_bus_normalization(calib_file):
    """Raw STS3215 ticks -> LeRobot's own normalization -> our radians: mid-range is 0 rad,
    a quarter turn (4095/4 ticks) is pi/2, the gripper range maps onto the model's jaw range."""
    pytest.importorskip("scservo_sdk")
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    from soarm_driver.calibration import load_calibration

    motors = {
        n: Motor(i + 1, "sts3215", MotorNormMode.RANGE_0_100 if n == "gripper" else MotorNormMode.DEGREES)
        for i, n in enumerate(JOINT_NAMES)
    }
    bus = FeetechMotorsBus(port="/dev/null", motors=motors, calibration=load_calibration(calib_file))
    raw = {1: 2000, 2: 2000 + 4095 / 4, 3: 2000 - 4095 / 4, 4: 2000, 5: 2047.5, 6: 3000}
    norm = bus._normalize(raw)
    q = lerobot_to_radians({bus._id_to_name(i): v for i, v in norm.items()})
    np.testing.assert_allclose(q[:5], [0.0, math.pi / 2, -math.pi / 2, 0.0, 0.0], atol=1e-9)
    assert q[5] == pytest.approx(GRIPPER_OPEN_RAD)
    # and back: our goal in radians -> LeRobot values -> raw ticks
    back = bus._unnormalize({motors[n].id: v for n, v in radians_to_lerobot(q).items()})
    assert abs(back[2] - (2000 + 4095 / 4)) <= 1 and back[6] == 3000


def test_calibration_file_errors(tmp_path, calib_file):
    assert load_calibration_dict(calib_file)["gripper"]["range_max"] == 3000
    with pytest.raises(CalibrationError, match="no calibration_file"):
        load_calibration_dict("")
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration_dict(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration_dict(bad)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in CALIB.items() if k != "gripper"}))
    with pytest.raises(CalibrationError, match="no entry for motor 'gripper'"):
        load_calibration_dict(partial)
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({**CALIB, "elbow_flex": {**CALIB["elbow_flex"], "range_max": 1000}}))
    with pytest.raises(CalibrationError, match="range_min >= range_max"):
        load_calibration_dict(flat)


def backend(port, calib):
    pytest.importorskip("scservo_sdk")
    from soarm_driver.backends.feetech import FeetechBackend

    return FeetechBackend({"port": str(port), "calibration_file": str(calib), "cameras": []})


def test_missing_port_raises_backend_error(calib_file):
    b = backend("/dev/soarm-no-such-port", calib_file)
    with pytest.raises(BackendError, match="/dev/soarm-no-such-port"):
        b.connect()
    with pytest.raises(BackendError, match="not connected"):
        b.read_positions()
    with pytest.raises(BackendError, match="not connected"):
        b.write_goal_positions(np.zeros(6))
    b.disconnect()
    b.disconnect()  # twice is fine


def test_silent_bus_on_a_pseudo_terminal_raises_backend_error(calib_file):
    master, slave = os.openpty()
    try:
        b = backend(os.ttyname(slave), calib_file)
        with pytest.raises(BackendError, match="Missing motor IDs"):
            b.connect()
        b.disconnect()
    finally:
        os.close(master)
        os.close(slave)


def test_missing_calibration_raises_backend_error(tmp_path):
    b = backend("/dev/soarm-no-such-port", tmp_path / "none.json")
    with pytest.raises(BackendError, match="lerobot-calibrate"):
        b.connect()
