"""Synthetic demonstration recordings written with rosbags (for tests and benchmarks).

The signals are simple closed-form functions of time so that a test can compute the
expected dataset values on its own: joint j at time t (s) is `joint_value(j, t)`, camera
frame i of camera number c is `frame_image(i, c, h, w)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..events import ENDED, STARTED
from ..joints import JOINT_NAMES
from .typestore import make_typestore
from .writer import BagWriter

T_JOINT_STATE = "sensor_msgs/msg/JointState"
T_IMAGE = "sensor_msgs/msg/Image"
T_EVENT = "soarm_msgs/msg/EpisodeEvent"


def _types():
    return make_typestore().types


def _header(stamp_ns: int, frame_id: str = ""):
    t = _types()
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                               nanosec=int(stamp_ns % 1_000_000_000)),
        frame_id=frame_id)


def joint_state(stamp_ns: int, names: Sequence[str], positions: Sequence[float]):
    return _types()[T_JOINT_STATE](
        header=_header(stamp_ns), name=list(names), position=np.asarray(positions, dtype=np.float64),
        velocity=np.zeros(0), effort=np.zeros(0))


def image(stamp_ns: int, rgb: np.ndarray, encoding: str = "rgb8", frame_id: str = ""):
    h, w = rgb.shape[:2]
    if encoding == "bgr8":
        rgb = rgb[:, :, ::-1]
    data = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1)
    ch = 1 if rgb.ndim == 2 else rgb.shape[2]
    return _types()[T_IMAGE](header=_header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                             is_bigendian=0, step=w * ch, data=data)


def episode_event(stamp_ns: int, kind: int, episode_index: int = 0, task: str = "", detail: str = "",
                  seed: int = -1, stages: int = 0):
    return _types()[T_EVENT](header=_header(stamp_ns), episode_index=episode_index, task=task,
                             kind=kind, detail=detail, seed=seed, stages=stages)


def joint_value(j: int, t: float, offset: float = 0.0) -> float:
    """Closed-form joint trajectory (rad): a distinct smooth curve per joint."""
    return 0.3 * np.sin(0.7 * t + j) + 0.05 * j + offset


def frame_image(i: int, cam: int, h: int, w: int) -> np.ndarray:
    """Frame i of camera number cam: smooth gradients plus a per-frame colour (codec friendly)."""
    y = np.linspace(0, 60, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 60, w, dtype=np.float32)[None, :]
    level = np.array([(37 * i + 50 * cam) % 140, (23 * i + 90) % 140, (59 * i + 30 * cam) % 140],
                     dtype=np.float32)
    img = (y + x)[:, :, None] * 0.5 + level[None, None, :] + 40
    return np.clip(img, 0, 255).astype(np.uint8)


def write_messages(path: str | Path, messages: Iterable[tuple[str, str, int, object]],
                   storage: str = "mcap", custom_data: dict[str, str] | None = None) -> Path:
    """Write (topic, type, log_time_ns, message) tuples; returns the bag path."""
    with BagWriter(path, storage=storage, custom_data=custom_data) as w:
        for topic, typ, t, msg in messages:
            w.add_topic(topic, typ)
            w.write(topic, t, msg)
    return Path(path)


@dataclass
class DemoSpec:
    """One synthetic demonstration recording (all rates in Hz, times in s)."""

    duration: float = 2.0
    t0: float = 100.0
    state_rate: float = 30.0
    command_rate: float = 50.0
    camera_rate: float = 30.0
    cameras: tuple[str, ...] = ("front", "wrist")
    height: int = 48
    width: int = 64
    encoding: str = "rgb8"
    joint_names: tuple[str, ...] = JOINT_NAMES
    #: (start s, end s, task) per episode, with events; empty = no events
    episodes: list[tuple[float, float, str]] = field(default_factory=list)
    #: scene seed per episode (in its STARTED and ENDED events); missing = -1
    seeds: tuple[int, ...] = ()
    #: STAGE_* bits per episode (in its ENDED event); missing = 0
    stages: tuple[int, ...] = ()
    command_offset: float = 0.1  # commands lead the state by this many rad
    #: camera frame phase offset (s) per camera number
    camera_phase: float = 0.004
    namespace: str = ""

    def topic(self, name: str) -> str:
        return f"/{self.namespace.strip('/')}/{name}" if self.namespace.strip("/") else f"/{name}"


def stamps(t0: float, duration: float, rate: float, phase: float = 0.0) -> np.ndarray:
    """Integer ns stamps t0+phase + k/rate within [t0, t0+duration]."""
    n = int(np.floor(duration * rate + 1e-9)) + 1
    return np.round((t0 + phase + np.arange(n) / rate) * 1e9).astype(np.int64)


def demo_messages(spec: DemoSpec):
    """The time-ordered message tuples of a DemoSpec recording (log time = stamp + 1 ms)."""
    msgs = []
    lag = 1_000_000
    for s in stamps(spec.t0, spec.duration, spec.state_rate):
        t = s * 1e-9 - spec.t0
        msgs.append((spec.topic("joint_states"), T_JOINT_STATE, s + lag, lambda s=s, t=t: joint_state(
            s, spec.joint_names, [joint_value(j, t) for j in range(len(spec.joint_names))])))
    for s in stamps(spec.t0, spec.duration, spec.command_rate, 0.002):
        t = s * 1e-9 - spec.t0
        msgs.append((spec.topic("joint_commands"), T_JOINT_STATE, s + lag, lambda s=s, t=t: joint_state(
            s, spec.joint_names,
            [joint_value(j, t, spec.command_offset) for j in range(len(spec.joint_names))])))
    for c, cam in enumerate(spec.cameras):
        for i, s in enumerate(stamps(spec.t0, spec.duration, spec.camera_rate, spec.camera_phase * (c + 1))):
            msgs.append((spec.topic(f"cameras/{cam}/image_raw"), T_IMAGE, s + lag,
                         lambda s=s, i=i, c=c: image(s, frame_image(i, c, spec.height, spec.width),
                                                     spec.encoding)))
    for k, (a, b, task) in enumerate(spec.episodes):
        sa, sb = int(round((spec.t0 + a) * 1e9)), int(round((spec.t0 + b) * 1e9))
        seed = spec.seeds[k] if k < len(spec.seeds) else -1
        bits = spec.stages[k] if k < len(spec.stages) else 0
        msgs.append((spec.topic("episode_events"), T_EVENT, sa, lambda sa=sa, k=k, task=task, seed=seed:
                     episode_event(sa, STARTED, k, task, seed=seed)))
        msgs.append((spec.topic("episode_events"), T_EVENT, sb, lambda sb=sb, k=k, task=task, seed=seed, bits=bits:
                     episode_event(sb, ENDED, k, task, seed=seed, stages=bits)))
    msgs.sort(key=lambda m: m[2])
    return msgs


def write_demo_bag(path: str | Path, spec: DemoSpec | None = None, storage: str = "mcap",
                   custom_data: dict[str, str] | None = None, transform=None) -> Path:
    """Write a DemoSpec recording.

    `transform(topic, msg)` may edit a message, drop it (None) or repeat it (a list).
    """
    spec = spec or DemoSpec()

    def gen():
        for topic, typ, t, make in demo_messages(spec):
            msg = make()
            if transform is not None:
                msg = transform(topic, msg)
            for m in msg if isinstance(msg, list) else [] if msg is None else [msg]:
                yield topic, typ, t, m

    return write_messages(path, gen(), storage, custom_data)
