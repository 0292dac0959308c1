"""What every node of soarm_driver does the same way: parameter tables, time conversions,
service calls, exit codes.

- Parameters are declared from a table of (name, default, description) rows with
  `declare_parameters`; numbers accept an integer or a float from YAML or `-p`
  (`fps: 30` or `30.0`) and come back as the default's type. A bad value raises
  `ConfigurationError` naming the parameter.
- Times: rclpy's `Time` / `Duration` do the message conversions; these helpers only add
  float seconds on both sides (rounded to the nanosecond).
- `call_service`: wait for the server once per client, give discovery `SETTLE_TIME` more
  (a response sent before the server has matched the client's reader is lost, seen with
  Fast DDS under CPU load), call, wait for the answer with a deadline.
- `core_log`: the `log(level, text)` callable the ROS-free cores take, on a node's logger.
- `main()` exit codes of the package's executables: `EXIT_OK` (0: stopped normally,
  Ctrl-C included), `EXIT_FAILURE` (1: a run that could not do its job, e.g. a teleop
  session whose driver is gone), `EXIT_CONFIG` (2: refused configuration, message on
  stderr, no traceback).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.time import Time

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
#: Seconds given to discovery after wait_for_service before the first call of a client.
SETTLE_TIME = 0.5


class ConfigurationError(ValueError):
    """A parameter value the node refuses to start with."""


class ServiceError(RuntimeError):
    """A service that is not there or did not answer in time."""


# ---------------------------------------------------------------------------- parameters
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def declare_parameter(node, name: str, default, description: str):
    """Declare one parameter with its description; returns its value (see the module docstring)."""
    if not _is_number(default):
        return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value
    value = node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                      dynamic_typing=True)).value
    if not _is_number(value):
        raise ConfigurationError(f"parameter {name} must be a number, got {value!r}")
    return type(default)(value)


def declare_parameters(node, table: Iterable[tuple[str, object, str]]) -> dict:
    """Declare every (name, default, description) row; returns {name: value}."""
    return {name: declare_parameter(node, name, default, desc) for name, default, desc in table}


# ---------------------------------------------------------------------------- time
def time_msg(seconds: float):
    """Float seconds -> builtin_interfaces/Time."""
    return Time(nanoseconds=round(seconds * 1e9)).to_msg()


def time_seconds(msg) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return Time.from_msg(msg).nanoseconds * 1e-9


def duration_msg(seconds: float):
    """Float seconds -> builtin_interfaces/Duration."""
    return Duration(nanoseconds=round(seconds * 1e9)).to_msg()


def duration_seconds(msg) -> float:
    """builtin_interfaces/Duration -> float seconds (may be negative)."""
    return Duration.from_msg(msg).nanoseconds * 1e-9


# ---------------------------------------------------------------------------- logging
def core_log(logger):
    """`log(level, text)` on `logger` for the ROS-free cores: level "error", "warning" (or
    "warn"), "debug", anything else info. One call site per severity: rclpy refuses a call
    site whose severity changes ("Logger severity cannot be changed between calls")."""

    def log(level: str, text: str) -> None:
        if level == "error":
            logger.error(text)
        elif level in ("warning", "warn"):
            logger.warning(text)
        elif level == "debug":
            logger.debug(text)
        else:
            logger.info(text)

    return log


# ---------------------------------------------------------------------------- services
def call_service(client, request, timeout: float, what: str, settled: set | None = None):
    """Call `client` and return the response; ServiceError when the server is missing or
    does not answer within `timeout` s; KeyboardInterrupt when rclpy shuts down meanwhile.

    `settled`: clients already waited for (the wait and the settle time happen once per
    client); None waits every time.
    """
    if settled is None or client not in settled:
        if not client.wait_for_service(timeout_sec=timeout):
            if not rclpy.ok(context=client.context):
                raise KeyboardInterrupt
            raise ServiceError(f"{what}: service {client.srv_name} not available: is its node running "
                               "(same namespace and ROS_DOMAIN_ID)?")
        time.sleep(SETTLE_TIME)
        if settled is not None:
            settled.add(client)
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        if not rclpy.ok(context=client.context):
            raise KeyboardInterrupt  # shut down (Ctrl-C) while waiting
        if time.monotonic() > deadline:
            client.remove_pending_request(future)
            raise ServiceError(f"{what}: no response from {client.srv_name} within {timeout:g} s")
        time.sleep(0.01)
    if future.exception() is not None:
        raise ServiceError(f"{what}: {future.exception()}")
    return future.result()


# ---------------------------------------------------------------------------- spinning


def spin_until_shutdown(executor) -> None:
    """``executor.spin()`` until Ctrl-C or until the context is shut down; both are a normal stop.

    rclpy's SIGINT handler shuts the context down from its own thread. When that lands between
    the executor's check of the context and its next wait set, rclpy raises ``RCLError`` ("the
    given context is not valid") instead of ``ExternalShutdownException`` (seen at the end of the
    demo run of 2026-12-01 15:31: the policy exited 1 with a traceback). Either one is swallowed once the context
    is no longer ok; an ``RCLError`` while the context is still ok is a real error and is raised.
    (soarm_driver and soarm_act_policy each have this function: the packages never import
    each other.)
    """
    from rclpy.executors import ExternalShutdownException
    from rclpy.impl.implementation_singleton import rclpy_implementation

    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except rclpy_implementation.RCLError:
        if executor.context.ok():
            raise


class SpinThread:
    """Spins `executor` on a background thread until `stop()`.

    `stop()` returns once the thread has left the executor, so the caller may then shut
    the executor down and destroy its nodes. Destroying a node, guard condition or
    context while another thread still waits inside the executor aborts the process at
    exit ("terminate called without an active exception", exit -6) — what
    `executor.shutdown()` alone allows, since it does not join the spinning thread.
    (soarm_driver and soarm_act_policy each have this class: the packages never import
    each other.)
    """

    def __init__(self, executor, period: float = 0.1):
        import threading

        self.executor, self.period = executor, period
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="spin")
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set() and self.executor.context.ok():
            try:
                self.executor.spin_once(timeout_sec=self.period)
            except Exception:  # the context went down (Ctrl-C) under spin_once
                if self.executor.context.ok():
                    raise
                return

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop spinning; True when the thread has left the executor within `timeout` s."""
        self._stopping.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()
