"""The one place that maps ROS data to a checkpoint's features, and actions back.

- Cameras: the topic ``cameras/<name>/image_raw`` feeds ``observation.images.<key>``;
  by default key == name, `camera_keys` renames (a LeRobot checkpoint trained with
  a camera called ``top`` can be fed from our ``front`` camera).
- Joints: `joint_names` is the order of the checkpoint's state and action vectors;
  joint states are matched by name (never by position), actions are published with
  these names.
- Units: radians on the ROS side; the checkpoint's units through `JointUnits`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .images import ImageFormatError, image_to_rgb, to_chw_float
from .units import JOINT_NAMES, JointUnits

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."


def image_topic(camera: str) -> str:
    return f"cameras/{camera}/image_raw"


@dataclass
class ObservationMapping:
    """How ROS topics feed a checkpoint (see module docstring)."""

    cameras: tuple[str, ...] = ("front", "wrist")
    joint_names: tuple[str, ...] = JOINT_NAMES
    units: str = "radians"
    #: camera name -> feature key suffix (observation.images.<suffix>); default: the name.
    camera_keys: dict[str, str] = field(default_factory=dict)
    #: Resize frames to the checkpoint's image shape (else a different size is refused).
    resize: bool = False
    #: Calibrated joint ranges (radians) for LeRobot's motor units; default URDF limits.
    joint_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self):
        self.cameras = tuple(self.cameras)
        self.joint_names = tuple(self.joint_names)
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"camera names repeat: {list(self.cameras)}")
        unknown = set(self.camera_keys) - set(self.cameras)
        if unknown:
            raise ValueError(f"camera_keys name cameras that are not configured: {sorted(unknown)}")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint names repeat: {list(self.joint_names)}")
        self.unit_map = JointUnits(self.units, self.joint_names, self.joint_ranges)

    def feature_key(self, camera: str) -> str:
        return IMAGE_PREFIX + self.camera_keys.get(camera, camera)

    @property
    def image_keys(self) -> dict[str, str]:
        """feature key -> camera name."""
        return {self.feature_key(c): c for c in self.cameras}


def parse_camera_keys(entries: Sequence[str]) -> dict[str, str]:
    """["front:top", ...] -> {"front": "top"} (parameter form of ObservationMapping.camera_keys)."""
    out = {}
    for e in entries:
        if not e:
            continue
        cam, sep, key = e.partition(":")
        if not sep or not cam or not key:
            raise ValueError(f"camera key mapping {e!r} must look like '<camera>:<feature suffix>'")
        out[cam.strip()] = key.strip().removeprefix(IMAGE_PREFIX)
    return out


def joint_vector(joint_names: Sequence[str], names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
    """Positions reordered to joint_names, matched by name; KeyError naming missing joints."""
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in joint_names if n not in index]
    if missing:
        raise KeyError(f"joint_states lacks joint(s) {missing} (has {list(names)})")
    if len(positions) < len(names):
        raise KeyError(f"joint_states has {len(names)} names but {len(positions)} positions")
    return np.array([positions[index[n]] for n in joint_names], dtype=np.float64)


class ObservationBuilder:
    """Builds the policy input dict from ROS messages and maps action chunks back to radians."""

    def __init__(self, mapping: ObservationMapping, image_shapes: Mapping[str, tuple[int, int, int]]):
        """image_shapes: feature key -> (3, H, W) as the checkpoint expects."""
        self.mapping = mapping
        self.image_shapes = dict(image_shapes)

    def state(self, joint_state_msg) -> np.ndarray:
        """JointState -> state vector in the checkpoint's order, radians."""
        return joint_vector(self.mapping.joint_names, joint_state_msg.name, joint_state_msg.position)

    def build(self, joint_state_msg, image_msgs: Mapping[str, object]) -> dict:
        """{observation.state, observation.images.*} as unbatched float32 tensors (checkpoint units)."""
        import torch

        q = self.state(joint_state_msg)
        obs = {STATE_KEY: torch.from_numpy(self.mapping.unit_map.to_policy(q).astype(np.float32))}
        for camera in self.mapping.cameras:
            key = self.mapping.feature_key(camera)
            rgb = image_to_rgb(image_msgs[camera])
            _, h, w = self.image_shapes[key]
            if rgb.shape[:2] != (h, w) and not self.mapping.resize:
                raise ImageFormatError(
                    f"{image_topic(camera)} is {rgb.shape[1]}x{rgb.shape[0]} but the checkpoint's "
                    f"{key} is {w}x{h} (width x height): set the camera to that size or "
                    f"enable the resize_images parameter"
                )
            obs[key] = to_chw_float(rgb, (h, w))
        return obs

    def actions_to_radians(self, chunk: np.ndarray) -> np.ndarray:
        """(n, action_dim) in checkpoint units -> radians, joint_names order."""
        return self.mapping.unit_map.to_radians(chunk)
