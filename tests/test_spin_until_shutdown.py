"""spin_until_shutdown, as each package has it (they never import each other): Ctrl-C's shutdown
race is a normal stop, an error on a live context is raised, a real shutdown ends the spin."""

from __future__ import annotations

import importlib
import threading

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

MODULES = ["soarm_driver.ros_support", "soarm_act_policy.ros_support"]


class _Context:
    def __init__(self, ok: bool):
        self._ok = ok

    def ok(self) -> bool:
        return self._ok


class _RaisingExecutor:
    """spin() fails as rclpy's does when the context is shut down between its check and its wait set."""

    def __init__(self, context_ok: bool):
        self.context = _Context(context_ok)

    def spin(self):
        raise rclpy_implementation.RCLError("failed to initialize wait set: the given context is not valid")


@pytest.mark.parametrize("module", MODULES)
def test_the_shutdown_race_is_a_normal_stop_and_an_error_on_a_live_context_is_raised(module):
    spin_until_shutdown = importlib.import_module(module).spin_until_shutdown
    spin_until_shutdown(_RaisingExecutor(context_ok=False))
    with pytest.raises(rclpy_implementation.RCLError):
        spin_until_shutdown(_RaisingExecutor(context_ok=True))


@pytest.mark.parametrize("module", MODULES)
def test_returns_without_error_when_a_real_context_is_shut_down_while_spinning(module):
    spin_until_shutdown = importlib.import_module(module).spin_until_shutdown
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("spin_until_shutdown_test", context=context)
    ticked = threading.Event()
    node.create_timer(0.01, ticked.set)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    escaped: list[BaseException] = []

    def spin():
        try:
            spin_until_shutdown(executor)
        except BaseException as e:  # the test reports whatever escaped
            escaped.append(e)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        assert ticked.wait(5.0), "the executor never ran the node's timer"
    finally:
        rclpy.shutdown(context=context)
        thread.join(5.0)
    assert not thread.is_alive() and escaped == []
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
