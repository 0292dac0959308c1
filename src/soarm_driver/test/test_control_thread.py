"""ControlThread: build, steps and close on one thread; build errors reach the caller."""

from __future__ import annotations

import threading
import time

import pytest

from soarm_driver.control_thread import ControlThread


class Owned:
    """Records the thread of every call."""

    def __init__(self):
        self.built_on = threading.get_ident()
        self.stepped_on: set[int] = set()
        self.walls: list[float] = []
        self.closed_on: int | None = None

    def step(self, wall: float, stop_after: int | None = None):
        self.stepped_on.add(threading.get_ident())
        self.walls.append(wall)
        return stop_after is None or len(self.walls) < stop_after

    def close(self):
        self.closed_on = threading.get_ident()


def test_build_steps_and_close_happen_on_one_thread_that_is_not_the_callers():
    ct = ControlThread(Owned)
    owned = ct.target
    assert owned.built_on != threading.get_ident() and owned.walls == []  # waits for run()
    ct.run(0.01, owned.step)
    deadline = time.monotonic() + 5.0
    while len(owned.walls) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ct.stop()
    assert len(owned.walls) >= 5 and owned.stepped_on == {owned.built_on} and owned.closed_on == owned.built_on
    gaps = [b - a for a, b in zip(owned.walls, owned.walls[1:])]
    assert min(gaps) > 0.005  # paced at the period, not as fast as it can


def test_a_step_returning_false_ends_the_thread_and_closes():
    ct = ControlThread(Owned)
    ct.run(0.001, lambda wall: ct.target.step(wall, stop_after=3))
    ct._thread.join(5.0)
    assert not ct._thread.is_alive() and len(ct.target.walls) == 3 and ct.target.closed_on is not None


def test_stop_before_run_closes_without_a_step():
    ct = ControlThread(Owned)
    assert ct.stop() and ct.target.walls == [] and ct.target.closed_on == ct.target.built_on


def test_build_error_is_raised_to_the_caller_and_the_thread_is_gone():
    def build():
        raise ValueError("no such backend")

    before = threading.active_count()
    with pytest.raises(ValueError, match="no such backend"):
        ControlThread(build)
    assert threading.active_count() == before
