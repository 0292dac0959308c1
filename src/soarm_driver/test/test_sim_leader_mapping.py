"""Teleop leader mode without hardware: LeRobot leader readings -> radians, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soarm_driver.robot import LOWER_LIMITS, UPPER_LIMITS
from soarm_driver.teleop_leader import LeaderArm, leader_action_to_radians

CLOSED, OPEN = LOWER_LIMITS[5], UPPER_LIMITS[5]  # the gripper joint's limits (rad)


def reading(**overrides):
    values = {"shoulder_pan.pos": 90.0, "shoulder_lift.pos": -45.0, "elbow_flex.pos": 30.0,
              "wrist_flex.pos": 0.0, "wrist_roll.pos": -180.0, "gripper.pos": 0.0}
    values.update(overrides)
    return values


def test_body_degrees_and_gripper_percent_map_to_radians():
    q = leader_action_to_radians(reading())
    np.testing.assert_allclose(q[:5], [math.pi / 2, -math.pi / 4, math.pi / 6, 0.0, -math.pi])
    assert q[5] == pytest.approx(CLOSED)  # gripper 0 % = closed = lower joint limit
    assert leader_action_to_radians(reading(**{"gripper.pos": 100.0}))[5] == pytest.approx(OPEN)
    assert leader_action_to_radians(reading(**{"gripper.pos": 50.0}))[5] == pytest.approx((CLOSED + OPEN) / 2)


def test_bad_readings_are_rejected():
    bad = reading()
    del bad["elbow_flex.pos"]
    with pytest.raises(ValueError, match="elbow_flex"):
        leader_action_to_radians(bad)
    with pytest.raises(ValueError, match="non-finite"):
        leader_action_to_radians(reading(**{"wrist_flex.pos": float("nan")}))


def test_uncalibrated_leader_gives_an_actionable_error(tmp_path):
    arm = LeaderArm("/dev/does-not-exist", "nobody", str(tmp_path))
    with pytest.raises(RuntimeError, match="lerobot-calibrate --teleop.type=so101_leader"):
        arm.connect()
    with pytest.raises(RuntimeError, match="not connected"):
        arm.read_radians()
