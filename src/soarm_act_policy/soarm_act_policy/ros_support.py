"""What every node and client of soarm_act_policy does the same way: parameter tables, time
conversions, service calls, exit codes.

- Parameters are declared from a table of (name, default, type, description) rows with
  `declare_parameters` (read-only: they are read once at start); an empty-list default
  declares the type itself and reads back as [].
- Times: rclpy's `Time` / `Duration` do the message conversions; these helpers only add
  float seconds on both sides (rounded to the nanosecond).
- `call_service`: wait for the server once per client, give discovery `SETTLE_TIME` more
  (a response sent before the server has matched the client's reader is lost, seen with
  Fast DDS under CPU load), call, wait for the answer with a deadline.
- `main()` exit codes of the package's node executables: `EXIT_OK` (0: stopped normally,
  Ctrl-C included), `EXIT_CONFIG` (2: refused configuration, message on stderr, no traceback).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter
from rclpy.time import Time

EXIT_OK, EXIT_CONFIG = 0, 2
#: Seconds given to discovery after wait_for_service before the first call of a client.
SETTLE_TIME = 0.5


class ServiceError(RuntimeError):
    """A service that is not there, did not answer in time, or failed."""


# ---------------------------------------------------------------------------- parameters
def declare_parameters(node, table: Iterable[tuple[str, object, int, str]]) -> dict:
    """Declare every (name, default, ParameterType, description) row read-only; returns {name: value}."""
    values = {}
    for name, default, ptype, description in table:
        # an empty list cannot carry its type: declare the type itself (value None = unset)
        value = Parameter.Type(ptype) if default == [] else default
        node.declare_parameter(name, value, ParameterDescriptor(type=ptype, description=description, read_only=True))
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            value = None
        values[name] = [] if value is None else value
    return values


# ---------------------------------------------------------------------------- time
def time_msg(seconds: float):
    """Float seconds -> builtin_interfaces/Time."""
    return Time(nanoseconds=round(seconds * 1e9)).to_msg()


def time_seconds(msg) -> float:
    """builtin_interfaces/Time (e.g. a header stamp) -> float seconds."""
    return Time.from_msg(msg).nanoseconds * 1e-9


def duration_msg(seconds: float):
    """Float seconds -> builtin_interfaces/Duration."""
    return Duration(nanoseconds=round(seconds * 1e9)).to_msg()


# ---------------------------------------------------------------------------- services
def call_service(client, request, timeout: float, what: str, settled: set | None = None,
                 wait_timeout: float | None = None, interrupt=None):
    """Call `client` and return the response; ServiceError when the server is missing (after
    `wait_timeout`, default `timeout` s), does not answer within `timeout` s, or raises.

    `settled`: clients already waited for (the wait and the settle time happen once per
    client); None waits every time. `interrupt`: a callable returning a reason (str) to stop
    waiting at once (ServiceError with that reason), or "" / None to go on; polled every 10 ms
    while waiting for the answer (and every 0.1 s while waiting for the server).
    """
    if settled is None or client not in settled:
        wait_end = time.monotonic() + (timeout if wait_timeout is None else wait_timeout)
        while not client.wait_for_service(timeout_sec=min(0.1, max(wait_end - time.monotonic(), 0.0))):
            if time.monotonic() >= wait_end:
                raise ServiceError(f"service {client.srv_name} not available ({what}): is the node running?")
            _check_interrupt(interrupt, what, client)
        time.sleep(SETTLE_TIME)
        if settled is not None:
            settled.add(client)
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        if not rclpy.ok(context=client.context):
            raise ServiceError(f"{what}: rclpy shut down while waiting for {client.srv_name}")
        if time.monotonic() > deadline:
            client.remove_pending_request(future)
            raise ServiceError(f"{what}: no response from {client.srv_name} within {timeout:.0f} s")
        try:
            _check_interrupt(interrupt, what, client)
        except ServiceError:
            client.remove_pending_request(future)
            raise
        time.sleep(0.01)
    if future.exception() is not None:
        raise ServiceError(f"{what}: {future.exception()}")
    return future.result()


def _check_interrupt(interrupt, what: str, client) -> None:
    reason = interrupt() if interrupt is not None else None
    if reason:
        raise ServiceError(f"{what}: stopped waiting for {client.srv_name}: {reason}")


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
