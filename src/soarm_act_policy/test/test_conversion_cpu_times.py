"""conversion.cpu_times: CPU seconds per stage, counted per thread."""

import threading
import time

import pytest

from soarm_act_policy.conversion.cpu_times import STAGES, CpuTimes


def _busy(seconds: float) -> None:
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        pass


def test_each_thread_counts_its_own_cpu_time_not_waiting():
    cpu = CpuTimes()
    writing = cpu.measure("LeRobot writing")  # one object, entered by several threads and again

    def work():
        with writing:
            _busy(0.05)

    def wait():
        with cpu.measure("pass 1"):
            time.sleep(0.2)

    threads = [threading.Thread(target=f) for f in (work, work, wait)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with writing:
        _busy(0.05)
    assert 0.15 <= cpu.seconds["LeRobot writing"] < 1.0
    assert cpu.seconds["pass 1"] < 0.05  # sleeping is not CPU time
    assert list(cpu.seconds) == list(STAGES)
    assert cpu.summary().startswith("pass 1 0.0")


def test_unknown_stage_is_refused_with_the_known_ones():
    cpu = CpuTimes()
    with pytest.raises(KeyError, match="stages: pass 1, "):
        cpu.measure("encoding")
    with pytest.raises(KeyError, match="unknown stage"):
        cpu.add("reading", 1.0)
