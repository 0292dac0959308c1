"""The policy's /diagnostics content (no DDS) and its parameter table helper (a real rclpy node)."""

from __future__ import annotations

import math

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from soarm_msgs.msg import PolicyStatus

from soarm_act_policy.diagnostics import TickRate, policy_diagnostics
from soarm_act_policy.ros_support import declare_parameters


def test_tick_rate_counts_ticks_per_clock_second_over_windows():
    rate = TickRate(window=1.0)
    done = [rate.tick(10.0 + i / 30) for i in range(31)]  # 30 Hz for 1 s
    assert done.count(True) == 1 and rate.rate == pytest.approx(30.0)
    rate.tick(5.0)  # the clock jumped back (sim restarted): a new window
    assert not rate.tick(5.5) and rate.tick(6.0) and rate.rate == pytest.approx(2.0)


def values(arr):
    (d,) = arr.status
    return d, {kv.key: kv.value for kv in d.values}


def test_policy_diagnostics_levels_and_values():
    s = PolicyStatus(state=PolicyStatus.RUNNING, mode="ensemble", inference_latency=0.0123, observation_age=0.02,
                     steps=100, skipped_late=3, skipped_stale=1)
    s.header.stamp.sec = 7
    d, v = values(policy_diagnostics("policy", s, 29.8, 30.0))
    assert d.level == DiagnosticStatus.OK and d.name == "policy: control loop" and d.message == "RUNNING"
    assert v["inference latency (ms)"] == "12.3" and v["skipped_late"] == "3" and v["steps"] == "100"
    assert v["mode"] == "ensemble" and v["tick rate (Hz, node clock)"] == "29.8"
    assert policy_diagnostics("policy", s, 29.8, 30.0).header.stamp.sec == 7
    assert values(policy_diagnostics("policy", s, 12.0, 30.0))[0].level == DiagnosticStatus.WARN
    err = PolicyStatus(state=PolicyStatus.ERROR, hold_reason="checkpoint failed", inference_latency=math.nan)
    d, v = values(policy_diagnostics("policy", err, 30.0, 30.0))
    assert d.level == DiagnosticStatus.ERROR and "checkpoint failed" in d.message
    assert v["inference latency (ms)"] == "n/a"


def test_parameter_table_declares_read_only_typed_parameters_and_empty_lists():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("table_test", context=context, parameter_overrides=[Parameter("rate", value=15.0)])
        P = ParameterType
        p = declare_parameters(node, [("rate", 30.0, P.PARAMETER_DOUBLE, "Rate (Hz)."),
                                      ("names", [], P.PARAMETER_STRING_ARRAY, "Names.")])
        assert p == {"rate": 15.0, "names": []}
        (d,) = node.describe_parameters(["rate"])
        assert d.read_only and d.description == "Rate (Hz)."
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
