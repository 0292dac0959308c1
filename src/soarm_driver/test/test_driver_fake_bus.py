"""The Feetech backend against six simulated STS3215 servos on a pseudo-terminal.

FakeFeetechBus answers Feetech protocol 0 (ping, read, write, sync read, sync write)
on the master side of a pty; LeRobot's real FeetechMotorsBus talks to the slave side
exactly as to a USB serial adapter. Servo memory is a 256-byte control table each;
with torque on, the present position jumps to the goal (no dynamics). `silent = True`
makes every servo stop answering (a cable pulled out); a servo id in `frozen` keeps its
present position whatever its goal (a stalled servo, an obstacle).

The driver's core runs on these servos in real time too: path tolerance with a frozen servo,
and bus silence within and beyond `bus_error_grace`.
"""

from __future__ import annotations

import json
import math
import os
import select
import threading
import time

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES, BackendError
from soarm_driver.units import GRIPPER_CLOSED_RAD, GRIPPER_OPEN_RAD

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 1, 2, 3, 0x82, 0x83
BROADCAST = 0xFE
# STS3215 control table addresses (LeRobot's lerobot/motors/feetech/tables.py)
FW_MAJOR, FW_MINOR, MODEL, ID_ADDR = 0, 1, 3, 5
MIN_LIMIT, MAX_LIMIT, P_COEF, HOMING, MODE = 9, 11, 21, 31, 33
MAX_TORQUE, TORQUE_ENABLE, GOAL, PRESENT = 16, 40, 42, 56


class FakeFeetechBus:
    def __init__(self, ids=range(1, 7), present: int = 2048):
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.mem = {i: bytearray(256) for i in ids}
        for i, m in self.mem.items():
            m[FW_MAJOR], m[FW_MINOR], m[ID_ADDR] = 3, 10, i
            self._put(i, MODEL, 777)  # STS3215
            self._put(i, MAX_LIMIT, 4095)
            self._put(i, PRESENT, present)
            self._put(i, GOAL, present)
        self.silent = False
        self.frozen: set[int] = set()
        self._stop = threading.Event()
        self._buf = bytearray()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _put(self, i, addr, value, n=2):
        self.mem[i][addr : addr + n] = int(value).to_bytes(n, "little")

    def get(self, i, addr, n=2) -> int:
        return int.from_bytes(self.mem[i][addr : addr + n], "little")

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)

    # ---------------------------------------------------------------- protocol
    def _loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.02)
            if not r:
                continue
            try:
                self._buf += os.read(self.master, 1024)
            except OSError:
                return
            self._parse()

    def _parse(self):
        while True:
            start = self._buf.find(b"\xff\xff")
            if start < 0 or len(self._buf) < start + 4:
                return
            del self._buf[:start]
            length = self._buf[3]
            if len(self._buf) < 4 + length:
                return
            pkt = bytes(self._buf[: 4 + length])
            del self._buf[: 4 + length]
            if (~sum(pkt[2:-1])) & 0xFF != pkt[-1]:
                continue  # corrupt
            if not self.silent:
                self._handle(pkt[2], pkt[4], pkt[5:-1])

    def _reply(self, i, data=b""):
        body = bytes([i, len(data) + 2, 0]) + bytes(data)
        os.write(self.master, b"\xff\xff" + body + bytes([(~sum(body)) & 0xFF]))

    def _write(self, i, addr, data):
        self.mem[i][addr : addr + len(data)] = data
        if self.mem[i][TORQUE_ENABLE] and i not in self.frozen:
            self._put(i, PRESENT, self.get(i, GOAL))

    def _handle(self, i, instr, p):
        if instr == PING and i in self.mem:
            self._reply(i)
        elif instr == READ and i in self.mem:
            self._reply(i, self.mem[i][p[0] : p[0] + p[1]])
        elif instr == WRITE and i in self.mem:
            self._write(i, p[0], p[1:])
            self._reply(i)
        elif instr == SYNC_WRITE and i == BROADCAST:
            addr, n = p[0], p[1]
            for k in range(2, len(p), n + 1):
                if p[k] in self.mem:
                    self._write(p[k], addr, p[k + 1 : k + 1 + n])
        elif instr == SYNC_READ and i == BROADCAST:
            addr, n = p[0], p[1]
            for j in p[2:]:
                if j in self.mem:
                    self._reply(j, self.mem[j][addr : addr + n])


CALIB = {
    name: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
    for i, name in enumerate(JOINT_NAMES)
}


def ticks_to_rad(ticks: int, joint: int) -> float:
    """Expected conversion (LeRobot degrees mid-range 2000, gripper 0..100 over 1000..3000)."""
    if joint < 5:
        return math.radians((ticks - 2000) * 360 / 4095)
    return GRIPPER_CLOSED_RAD + (ticks - 1000) / 2000 * (GRIPPER_OPEN_RAD - GRIPPER_CLOSED_RAD)


@pytest.fixture
def fake_bus():
    pytest.importorskip("scservo_sdk")
    bus = FakeFeetechBus()
    yield bus
    bus.close()


@pytest.fixture
def calib_file(tmp_path):
    p = tmp_path / "follower.json"
    p.write_text(json.dumps(CALIB))
    return p


def test_feetech_backend_on_simulated_servos(fake_bus, calib_file):
    from soarm_driver.backends.feetech import FeetechBackend

    b = FeetechBackend({"port": fake_bus.port, "calibration_file": str(calib_file), "cameras": []})
    b.connect()
    try:
        for i in range(1, 7):  # calibration written, position mode, torque off
            assert (fake_bus.get(i, MIN_LIMIT), fake_bus.get(i, MAX_LIMIT)) == (1000, 3000)
            assert fake_bus.mem[i][MODE] == 0 and fake_bus.mem[i][P_COEF] == 16
            assert fake_bus.mem[i][TORQUE_ENABLE] == 0
        assert fake_bus.get(6, MAX_TORQUE) == 500  # gripper protection as in LeRobot
        q = b.read_positions()
        np.testing.assert_allclose(q, [ticks_to_rad(2048, j) for j in range(6)], atol=1e-9)

        b.set_torque(True)
        assert all(fake_bus.mem[i][TORQUE_ENABLE] == 1 for i in range(1, 7))
        target = np.array([0.5, -0.3, 0.2, -0.1, 1.0, 1.2])
        b.write_goal_positions(target)  # a broadcast sync write: no reply, the fake applies it a bit later
        deadline = time.monotonic() + 2.0
        while fake_bus.get(1, GOAL) == 2048 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        goal_ticks = [fake_bus.get(i, GOAL) for i in range(1, 7)]
        np.testing.assert_allclose([ticks_to_rad(t, j) for j, t in enumerate(goal_ticks)], target, atol=2e-3)
        np.testing.assert_allclose(b.read_positions(), target, atol=2e-3)

        fake_bus.silent = True  # cable pulled
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="reading positions"):
            b.read_positions()
        assert time.monotonic() - t0 < 5.0
    finally:
        b.disconnect()  # must not raise although the servos are silent
    fake_bus.silent = False
    b.connect()  # reconnects; calibration already matches; torque off again
    try:
        assert all(fake_bus.mem[i][TORQUE_ENABLE] == 0 for i in range(1, 7))
        np.testing.assert_allclose(b.read_positions(), target, atol=2e-3)
    finally:
        b.disconnect()


def test_missing_servo_is_a_clear_backend_error(calib_file):
    pytest.importorskip("scservo_sdk")
    from soarm_driver.backends.feetech import FeetechBackend

    bus = FakeFeetechBus(ids=[1, 2, 3, 4, 5])  # the gripper servo does not answer
    try:
        b = FeetechBackend({"port": bus.port, "calibration_file": str(calib_file), "cameras": []})
        with pytest.raises(BackendError, match="Missing motor IDs.*6"):
            b.connect()
    finally:
        bus.close()


# ---------------------------------------------------------------- the driver core on the fake servos
class RealTimeDriver:
    """A DriverCore on the Feetech backend, ticked at 60 Hz on the monotonic clock."""

    RATE = 60.0

    def __init__(self, bus: FakeFeetechBus, calib_file, **config):
        from soarm_driver.backends.feetech import FeetechBackend
        from soarm_driver.core import DriverConfig, DriverCore
        from soarm_driver.joint_limits import JointLimits
        from soarm_driver.robot import HOME_POSE

        backend = FeetechBackend({"port": bus.port, "calibration_file": str(calib_file), "cameras": []})
        self.logs: list[tuple[str, str]] = []
        self.core = DriverCore(DriverConfig(limits=JointLimits(max_velocity=3.0), home_pose=HOME_POSE,
                                            control_rate_hz=self.RATE, backend="feetech", **config),
                               backend, lambda level, text: self.logs.append((level, text)))
        self.outputs, self.states = [], []

    def run(self, seconds: float, until=None) -> bool:
        """Tick for `seconds` (wall) or until `until()` is true (then True)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.monotonic()
            self.outputs.append(self.core.tick(wall=t, now=t))
            self.states.append(self.core.status().state)
            if until is not None and until():
                return True
            time.sleep(max(0.0, t + 1.0 / self.RATE - time.monotonic()))
        return False

    def enable(self):
        assert self.run(10.0, lambda: self.core.status().state == "DISABLED"), self.logs  # connected, torque off
        req = self.core.request_enable(True)
        assert self.run(2.0, req.done.is_set) and req.success, req.message
        self.run(0.1)

    def send(self, positions, t_from_start):
        return self.core.command(JOINT_NAMES, [(t_from_start, [float(x) for x in positions], [])], None,
                                 time.monotonic())


def servo_goals(bus) -> list[int]:
    return [bus.get(i, GOAL) for i in range(1, 7)]


def test_frozen_servo_during_a_move_trips_the_path_tolerance(fake_bus, calib_file):
    drv = RealTimeDriver(fake_bus, calib_file)  # the default path tolerance: 0.3 rad for 0.5 s
    try:
        drv.enable()
        start = drv.core.backend.read_positions()
        fake_bus.frozen = {3}  # elbow_flex stalls
        target = start + np.array([0.2, 0.0, 0.5, 0.0, 0.0, 0.0])
        assert drv.send(target, 1.0) is None
        assert drv.run(3.0, lambda: drv.core.status().hold_reason != ""), drv.logs[-3:]
        st = drv.core.status()
        assert st.hold_reason.startswith("path tolerance: elbow_flex measured 0.") and st.tolerance_trips == 1
        assert st.state == "ENABLED" and "/driver/enable true" in drv.send(target, 1.0)
        drv.run(0.3)
        # holding where the servos are measured: the stalled elbow's goal is back at its position
        assert fake_bus.get(3, GOAL) == fake_bus.get(3, PRESENT) == 2048
        q = drv.core.backend.read_positions()
        np.testing.assert_allclose(drv.outputs[-1].command, q, atol=2e-3)
        assert q[0] - start[0] > 0.1  # the pan had moved on before the hold (1 s move: ~0.2 rad at the trip)
        assert all(fake_bus.mem[i][TORQUE_ENABLE] == 1 for i in range(1, 7))
    finally:
        drv.core.close()


def test_bus_silence_within_the_grace_keeps_torque_longer_is_error(fake_bus, calib_file):
    drv = RealTimeDriver(fake_bus, calib_file, reconnect_period=0.5)  # bus_error_grace: the default 0.5 s
    try:
        drv.enable()
        goals = servo_goals(fake_bus)
        n = len(drv.outputs)
        fake_bus.silent = True  # 150 ms without an answer while holding
        threading.Timer(0.15, lambda: setattr(fake_bus, "silent", False)).start()
        drv.run(1.0)
        st = drv.core.status()
        assert set(drv.states[n:]) == {"ENABLED"} and st.bus_errors >= 1 and st.reconnects == 0
        assert "reading positions" in st.last_error
        assert all(fake_bus.mem[i][TORQUE_ENABLE] == 1 for i in range(1, 7))  # torque stayed on
        assert servo_goals(fake_bus) == goals  # goal unchanged
        assert any(o.joint_state is not None for o in drv.outputs[-5:])  # publishing again
        # silent for longer than the grace: ERROR; closing the bus cannot reach the servos, they hold their goal
        fake_bus.silent = True
        assert drv.run(3.0, lambda: drv.core.status().state == "ERROR")
        assert "still failing after 0." in drv.core.status().detail
        assert servo_goals(fake_bus) == goals and fake_bus.mem[3][TORQUE_ENABLE] == 1
        # the servos answer again: reconnected with torque off, until /driver/enable (docs/interfaces.md)
        fake_bus.silent = False
        assert drv.run(10.0, lambda: drv.core.status().state == "DISABLED"), drv.logs[-3:]
        assert drv.core.status().reconnects == 1
        assert all(fake_bus.mem[i][TORQUE_ENABLE] == 0 for i in range(1, 7))
    finally:
        fake_bus.silent = False
        drv.core.close()
