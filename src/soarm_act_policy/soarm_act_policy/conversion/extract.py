"""First pass over a bag: joint streams, camera frame index, episode events.

Joint messages are kept whole (small); of camera frames only stamps, a content digest
(for frozen-camera detection) and the layout are kept, the pixels are read again in the
writing pass. Structural problems (unreadable bag, empty bag, missing topic, unusable
image encoding) raise BagError naming the bag and topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash

from ..bags import BagError, BagReader
from .images import check_image_layout, parse_image
from .options import Options


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@dataclass
class JointStream:
    topic: str
    stamps: np.ndarray  # int64 ns, receive order
    positions: np.ndarray  # (N, J) float64 in Options.joints order; NaN where missing
    missing_joints: set[str] = field(default_factory=set)
    extra_joints: set[str] = field(default_factory=set)


@dataclass
class ImageStream:
    camera: str
    topic: str
    stamps: np.ndarray  # int64 ns, receive order
    digests: list[bytes]
    width: int
    height: int
    encoding: str


@dataclass
class Event:
    stamp_ns: int
    kind: int
    episode_index: int
    task: str
    detail: str
    #: scene seed of the episode; -1 when unknown (or recorded before EpisodeEvent had `seed`)
    seed: int = -1
    #: STAGE_* bits; None when recorded before EpisodeEvent had `stages`
    stages: int | None = None


@dataclass
class BagData:
    path: Path
    state: JointStream
    action: JointStream
    cameras: dict[str, ImageStream]
    events: list[Event]
    custom_data: dict[str, str]


def discover_cameras(topics, opts: Options) -> list[str]:
    ns = re.escape(opts.topic("cameras/"))
    pat = re.compile(f"^{ns}([^/]+)/image_raw$")
    return sorted(m.group(1) for t in topics if (m := pat.match(t)))


class _JointCollector:
    def __init__(self, topic: str, joints: tuple[str, ...]):
        self.topic = topic
        self.joints = joints
        self.stamps: list[int] = []
        self.rows: list[np.ndarray] = []
        self.missing: set[str] = set()
        self.extra: set[str] = set()
        self._maps: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, msg) -> None:
        names = tuple(msg.name)
        m = self._maps.get(names)
        if m is None:
            pos = {n: i for i, n in enumerate(names)}
            self.missing |= {j for j in self.joints if j not in pos}
            self.extra |= {n for n in names if n not in self.joints}
            dst = np.array([k for k, j in enumerate(self.joints) if j in pos], dtype=np.intp)
            src = np.array([pos[j] for j in self.joints if j in pos], dtype=np.intp)
            m = self._maps[names] = (dst, src)
        dst, src = m
        row = np.full(len(self.joints), np.nan)
        values = np.asarray(msg.position, dtype=np.float64)
        ok = src < len(values)  # position shorter than name: treated as missing
        row[dst[ok]] = values[src[ok]]
        self.stamps.append(stamp_ns(msg.header))
        self.rows.append(row)

    def result(self) -> JointStream:
        return JointStream(
            self.topic,
            np.array(self.stamps, dtype=np.int64),
            np.array(self.rows, dtype=np.float64).reshape(-1, len(self.joints)),
            self.missing, self.extra,
        )


def _deserialize(bag: BagReader, m):
    try:
        return bag.deserialize(m)
    except Exception as exc:  # name bag and topic
        raise BagError(bag.path, f"cannot deserialize a {bag.topics.get(m.topic)} message: {exc}",
                       topic=m.topic) from exc


def read_bag(path: str | Path, opts: Options, progress=None) -> BagData:
    """First pass over one bag (see module doc). `progress(n)` is called per message."""
    path = Path(path)
    with BagReader(path) as bag:
        topics = bag.topics
        counts = bag.message_counts()
        if bag.message_count == 0:
            raise BagError(path, "the bag is empty (no messages)")
        state_t, action_t, events_t = (opts.topic(opts.state_topic), opts.topic(opts.action_topic),
                                       opts.topic(opts.events_topic))
        cameras = list(opts.cameras) if opts.cameras is not None else discover_cameras(topics, opts)
        if not cameras and opts.cameras is None:
            raise BagError(path, "no camera topics (expected " + opts.camera_topic("<name>") + ")")
        required = [state_t, action_t] + [opts.camera_topic(c) for c in cameras]
        for t in required:
            if t not in topics:
                raise BagError(path, "required topic missing from the bag (present: "
                               + ", ".join(sorted(topics)) + ")", topic=t)
            if counts.get(t, 0) == 0:
                raise BagError(path, "required topic has no messages", topic=t)
        expect = {state_t: "sensor_msgs/msg/JointState", action_t: "sensor_msgs/msg/JointState",
                  **{opts.camera_topic(c): "sensor_msgs/msg/Image" for c in cameras}}
        if events_t in topics:
            expect[events_t] = "soarm_msgs/msg/EpisodeEvent"
        for t, typ in expect.items():
            if topics[t] != typ:
                raise BagError(path, f"has type {topics[t]}, expected {typ}", topic=t)

        joints = {state_t: _JointCollector(state_t, opts.joints),
                  action_t: _JointCollector(action_t, opts.joints)}
        cam_by_topic = {opts.camera_topic(c): c for c in cameras}
        img: dict[str, dict] = {c: {"stamps": [], "digests": [], "layout": None} for c in cameras}
        events: list[Event] = []
        for m in bag.messages(list(expect), raw=True):
            if progress:
                progress(1)
            if m.topic in joints:
                joints[m.topic].add(_deserialize(bag, m))
            elif m.topic in cam_by_topic:
                c = cam_by_topic[m.topic]
                try:
                    msg = parse_image(m.raw)  # pixels not copied; ~20x faster than deserializing
                except ValueError as exc:
                    raise BagError(path, f"cannot read a sensor_msgs/msg/Image message: {exc}",
                                   topic=m.topic) from exc
                layout = (msg.encoding, int(msg.width), int(msg.height))
                rec = img[c]
                if rec["layout"] is None:
                    why = check_image_layout(msg.encoding, int(msg.width), int(msg.height),
                                             int(msg.step), len(msg.data))
                    if why:
                        raise BagError(path, why, topic=m.topic)
                    rec["layout"] = layout
                elif layout != rec["layout"]:
                    raise BagError(path, f"image layout changed from {rec['layout']} to {layout} "
                                   "(encoding, width, height) inside the recording", topic=m.topic)
                elif len(msg.data) < int(msg.step) * int(msg.height):
                    raise BagError(path, "truncated image data", topic=m.topic)
                rec["stamps"].append(stamp_ns(msg.header))
                # xxh3: ~80x faster than blake2b on a 640x480 frame; collisions only matter
                # between consecutive frames of one camera (frozen-camera detection)
                rec["digests"].append(xxhash.xxh3_64_digest(memoryview(msg.data)))
            else:
                e = _deserialize(bag, m)
                stages = getattr(e, "stages", None)  # absent in bags older than the field
                events.append(Event(stamp_ns(e.header), int(e.kind), int(e.episode_index), str(e.task),
                                    str(e.detail), int(getattr(e, "seed", -1)),
                                    None if stages is None else int(stages)))
        cams = {}
        for c in cameras:
            rec = img[c]
            enc, w, h = rec["layout"]
            cams[c] = ImageStream(c, opts.camera_topic(c), np.array(rec["stamps"], dtype=np.int64),
                                  rec["digests"], w, h, enc)
        return BagData(path, joints[state_t].result(), joints[action_t].result(), cams, events,
                       bag.custom_data)
