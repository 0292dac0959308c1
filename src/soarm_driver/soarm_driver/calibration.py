"""LeRobot calibration files (ROS-free).

LeRobot stores one JSON file per arm (`lerobot-calibrate`, usually under
~/.cache/huggingface/lerobot/calibration/robots/so_follower/<id>.json):
{"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": 12, "range_min": 750,
"range_max": 3340}, ...} for the six motors.
"""

from __future__ import annotations

import json
from pathlib import Path

from soarm_driver.backends.base import JOINT_NAMES

FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


class CalibrationError(ValueError):
    pass


def load_calibration_dict(path: str | Path) -> dict[str, dict[str, int]]:
    """Read and check a LeRobot calibration JSON; {motor: {field: int}}.

    Raises CalibrationError with the file name and what is wrong.
    """
    p = Path(path).expanduser()
    if not str(path):
        raise CalibrationError(
            "no calibration_file given: calibrate the arm with `lerobot-calibrate --robot.type=so101_follower "
            "--robot.port=<port> --robot.id=<id>` and set calibration_file to the JSON it writes"
        )
    if not p.is_file():
        raise CalibrationError(f"calibration file {p} does not exist (run lerobot-calibrate first)")
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CalibrationError(f"calibration file {p} is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise CalibrationError(f"calibration file {p}: expected an object keyed by motor name")
    out = {}
    for name in JOINT_NAMES:
        entry = raw.get(name)
        if not isinstance(entry, dict):
            raise CalibrationError(f"calibration file {p}: no entry for motor '{name}'")
        try:
            out[name] = {f: int(entry[f]) for f in FIELDS}
        except (KeyError, TypeError, ValueError) as e:
            raise CalibrationError(f"calibration file {p}: motor '{name}' needs integer fields {FIELDS}: {e}") from e
        if out[name]["range_min"] >= out[name]["range_max"]:
            raise CalibrationError(f"calibration file {p}: motor '{name}' has range_min >= range_max")
    return out


def load_calibration(path: str | Path):
    """The calibration as LeRobot MotorCalibration objects (imports lerobot)."""
    from lerobot.motors import MotorCalibration

    return {name: MotorCalibration(**fields) for name, fields in load_calibration_dict(path).items()}
