"""soarm_driver.ros_support with a real rclpy node (its own context; no other process)."""

from __future__ import annotations

import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from soarm_driver.ros_support import ConfigurationError, core_log, declare_parameters

TABLE = [
    ("rate_hz", 30.0, "A rate (Hz)."),
    ("count", 3, "A count."),
    ("name", "x", "A name."),
    ("values", [1.0, 2.0], "Values."),
]


@pytest.fixture
def make_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(**overrides):
        node = Node("ros_support_test", context=context,
                    parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        nodes.append(node)
        return node

    yield make
    for n in nodes:
        n.destroy_node()
    if context.ok():  # a test may have shut it down itself
        rclpy.shutdown(context=context)


def test_table_declares_described_parameters_and_numbers_take_ints_or_floats(make_node):
    node = make_node(rate_hz=60, count=5)
    p = declare_parameters(node, TABLE)
    assert p == {"rate_hz": 60.0, "count": 5, "name": "x", "values": [1.0, 2.0]}
    assert type(p["rate_hz"]) is float
    descriptions = {d.name: d.description for d in node.describe_parameters([n for n, *_ in TABLE])}
    assert descriptions == {n: d for n, _, d in TABLE}


def test_a_non_number_is_refused_naming_the_parameter(make_node):
    with pytest.raises(ConfigurationError, match="parameter rate_hz must be a number, got 'fast'"):
        declare_parameters(make_node(rate_hz="fast"), TABLE)


def test_core_log_sends_each_level_to_its_severity_on_a_real_logger(make_node):
    """The cores' log(level, text): each level to its severity, in any order, on a real rclpy
    logger too (rclpy raises when one call site changes severity)."""

    class Recorder:
        def __init__(self):
            self.seen = []

        def __getattr__(self, name):
            return lambda text: self.seen.append(name)

    levels = ("info", "error", "warning", "warn", "debug", "error", "info", "other")
    recorder = Recorder()
    for log in (core_log(recorder), core_log(make_node().get_logger())):
        for level in levels:
            log(level, f"{level} line")
    assert recorder.seen == ["info", "error", "warning", "warning", "debug", "error", "info", "info"]
