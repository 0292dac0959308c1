"""Real SO-101 follower arm through LeRobot's Feetech motor bus.

Motors: STS3215, ids 1..6 (JOINT_NAMES order); body joints in LeRobot degrees, the
gripper in 0..100, converted to radians by soarm_driver.units. The calibration is
LeRobot's JSON (`lerobot-calibrate`). Torque is OFF after connect(): the driver
enables it only through `/driver/enable`. Every bus failure (port missing, motor not
answering, calibration missing) raises BackendError; the driver then reports an error
state, holds and calls connect() again later.

Cameras: LeRobot's OpenCVCamera for each camera whose `source` is set (a device index
like "0" or a path like /dev/video2); cameras without a source are not captured.
"""

from __future__ import annotations

import logging

import numpy as np

from soarm_driver.backends.base import JOINT_NAMES, BackendError, CameraFrame, CameraSpec, RobotBackend
from soarm_driver.backends.mock import pinhole_intrinsics
from soarm_driver.calibration import CalibrationError, load_calibration
from soarm_driver.units import lerobot_to_radians, radians_to_lerobot

log = logging.getLogger(__name__)


def _one_line(e: BaseException) -> str:
    """LeRobot's errors span many lines; status and logs want one."""
    return " ".join(str(e).split())

# LeRobot's SO follower defaults (config_so_follower.py): position PID and gripper protection.
_P, _I, _D = 16, 0, 32


def _lerobot_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [ConnectionError, OSError, RuntimeError, ValueError, KeyError, TimeoutError]
    try:
        import serial

        errs.append(serial.SerialException)
    except ImportError:
        pass
    try:
        from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

        errs += [DeviceNotConnectedError, DeviceAlreadyConnectedError]
    except ImportError:
        pass
    return tuple(errs)


class FeetechBackend(RobotBackend):
    simulated_time = False
    enabled_on_start = False

    def __init__(self, params: dict):
        self.port = str(params.get("port", "/dev/ttyACM0"))
        self.calibration_file = str(params.get("calibration_file", ""))
        self.num_retry = int(params.get("num_read_retries", 2))
        self.cameras_spec: list[CameraSpec] = list(params.get("cameras", []))
        self._bus = None
        self._cameras: dict[str, object] = {}
        self._errors = _lerobot_errors()

    # ------------------------------------------------------------------ connection
    def _make_bus(self, calibration):
        try:
            from lerobot.motors import Motor, MotorNormMode
            from lerobot.motors.feetech import FeetechMotorsBus
        except ImportError as e:
            raise BackendError(
                f"LeRobot's Feetech support is not installed (pip install 'lerobot[feetech]'): {e}") from e
        motors = {
            name: Motor(i + 1, "sts3215", MotorNormMode.DEGREES if name != "gripper" else MotorNormMode.RANGE_0_100)
            for i, name in enumerate(JOINT_NAMES)
        }
        return FeetechMotorsBus(port=self.port, motors=motors, calibration=calibration)

    def connect(self) -> None:
        try:
            calibration = load_calibration(self.calibration_file)
        except CalibrationError as e:
            raise BackendError(str(e)) from e
        bus = self._make_bus(calibration)
        try:
            bus.connect(handshake=True)
        except self._errors as e:
            self._close_quietly(bus)
            raise BackendError(f"cannot talk to the SO-101 on {self.port}: {_one_line(e)}") from e
        try:
            bus.disable_torque(num_retry=self.num_retry)
            if not bus.is_calibrated:
                log.warning("motor calibration differs from %s: writing the file's calibration", self.calibration_file)
                bus.write_calibration(calibration)
            bus.configure_motors()
            for motor in JOINT_NAMES:
                bus.write("Operating_Mode", motor, 0)  # position mode
                bus.write("P_Coefficient", motor, _P)
                bus.write("I_Coefficient", motor, _I)
                bus.write("D_Coefficient", motor, _D)
            bus.write("Max_Torque_Limit", "gripper", 500)
            bus.write("Protection_Current", "gripper", 250)
            bus.write("Overload_Torque", "gripper", 25)
        except self._errors as e:
            self._close_quietly(bus)
            raise BackendError(f"SO-101 on {self.port} did not accept its configuration: {_one_line(e)}") from e
        self._bus = bus
        self._connect_cameras()

    def _connect_cameras(self) -> None:
        for spec in self.cameras_spec:
            if not spec.source:
                continue
            try:
                from lerobot.cameras.opencv import OpenCVCamera, OpenCVCameraConfig

                src = int(spec.source) if spec.source.isdigit() else spec.source
                cam = OpenCVCamera(
                    OpenCVCameraConfig(index_or_path=src, fps=int(spec.fps), width=spec.width, height=spec.height)
                )
                cam.connect()
                self._cameras[spec.name] = cam
            except Exception as e:  # a camera must not keep the arm down
                log.error("camera %s (%s) unavailable: %s", spec.name, spec.source, e)

    @staticmethod
    def _close_quietly(bus) -> None:
        try:
            bus.port_handler.closePort()
        except Exception:
            pass

    def disconnect(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            try:
                bus.disconnect(disable_torque=True)
            except Exception as e:
                log.warning("could not disable torque on disconnect: %s", e)
                self._close_quietly(bus)
        for cam in self._cameras.values():
            try:
                cam.disconnect()
            except Exception:
                pass
        self._cameras.clear()

    # ------------------------------------------------------------------ motion
    def _require_bus(self):
        if self._bus is None:
            raise BackendError(f"SO-101 on {self.port} is not connected")
        return self._bus

    def read_positions(self) -> np.ndarray:
        bus = self._require_bus()
        try:
            return lerobot_to_radians(bus.sync_read("Present_Position", num_retry=self.num_retry))
        except self._errors as e:
            raise BackendError(f"reading positions from {self.port} failed: {_one_line(e)}") from e

    def write_goal_positions(self, goal: np.ndarray) -> None:
        bus = self._require_bus()
        try:
            bus.sync_write("Goal_Position", radians_to_lerobot(goal))
        except self._errors as e:
            raise BackendError(f"writing goals to {self.port} failed: {_one_line(e)}") from e

    def set_torque(self, enabled: bool) -> None:
        bus = self._require_bus()
        try:
            if enabled:
                # Goal = present position first, so enabling torque never jumps.
                present = bus.sync_read("Present_Position", num_retry=self.num_retry)
                bus.sync_write("Goal_Position", present)
                bus.enable_torque(num_retry=self.num_retry)
            else:
                bus.disable_torque(num_retry=self.num_retry)
        except self._errors as e:
            raise BackendError(
                f"setting torque {'on' if enabled else 'off'} on {self.port} failed: {_one_line(e)}") from e

    # ------------------------------------------------------------------ cameras
    def capture_frames(self, cameras: list[CameraSpec]) -> dict[str, CameraFrame]:
        frames = {}
        for spec in cameras:
            cam = self._cameras.get(spec.name)
            if cam is None:
                continue
            try:
                img = cam.read_latest()
            except Exception as e:
                log.warning("camera %s: %s", spec.name, e)
                continue
            img = np.ascontiguousarray(img, dtype=np.uint8)
            frames[spec.name] = CameraFrame(img, pinhole_intrinsics(img.shape[1], img.shape[0]))
        return frames
