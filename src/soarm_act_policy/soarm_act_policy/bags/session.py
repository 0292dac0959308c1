"""One rosbag2 directory per episode: the recorder's bookkeeping, free of ROS.

Messages go to bags by their header stamps, not by the order a busy process happens to
handle them in, so a recorder lagging behind its topics still files every message
under the right episode:
- STARTED (stamp s) opens a bag for stamps >= s; the event is written into it, and so
  are the messages already received with stamps >= s (a short per-topic pre-roll).
- ENDED/RESET (stamp e) is written and the bag stops taking new stamps > e; it stays
  open ("closing") until every topic it recorded delivered a stamp > e, or
  `close_timeout` seconds passed, then it is closed. A STARTED while a bag is open ends
  that bag at the new start stamp. SUCCESS/FAILURE go to the bag whose window has them.
- start()/stop() (services) record everything received in between.
Bags are named `episode_<NNNNNN>_<UTC time>`, the number continuing the highest one in
the output directory, so names sort in recording order across restarts.
"""

from __future__ import annotations

import re
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..events import ENDED, EVENT_NAMES, RESET, STARTED
from .reader import normalize_topic
from .typestore import make_typestore
from .writer import BagWriter

_NAME = re.compile(r"^\.?episode_(\d+)_")


def has_header(msgtype: str) -> bool:
    """True when the message's first field is a std_msgs/Header (stamp readable from raw CDR)."""
    fields = make_typestore().fielddefs.get(msgtype)
    if not fields or not fields[1]:
        return False
    name, (_, sub) = fields[1][0]
    return name == "header" and sub == "std_msgs/msg/Header"


def cdr_stamp_ns(raw: bytes) -> int:
    """header.stamp (ns) of a serialized message whose first field is std_msgs/Header."""
    little = raw[1] & 1
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


@dataclass
class _Bag:
    writer: BagWriter
    start_ns: int | None  # None: takes every stamp (manual recording)
    end_ns: int | None = None
    deadline: float = 0.0  # monotonic time after which a closing bag is closed anyway
    reason: str = ""
    written_topics: set = field(default_factory=set)
    passed_topics: set = field(default_factory=set)

    def takes(self, stamp: int) -> bool:
        return (self.start_ns is None or stamp >= self.start_ns) and (self.end_ns is None or stamp <= self.end_ns)

    def write(self, topic: str, time_ns: int, raw: bytes) -> None:
        self.writer.write_raw(topic, time_ns, raw)
        self.written_topics.add(topic)


class EpisodeRecorder:
    def __init__(self, output_dir: str | Path, topics: dict[str, str], *, storage: str = "mcap",
                 close_timeout: float = 2.0, pre_roll: int = 30, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic):
        self.output_dir = Path(output_dir).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.topics: dict[str, str] = {}
        self._stamped: dict[str, bool] = {}
        self._pre: dict[str, deque] = {}
        self.pre_roll = int(pre_roll)
        self.storage = storage
        self.close_timeout = float(close_timeout)
        self.log = log
        self.clock = clock
        self.current: _Bag | None = None
        self.closing: list[_Bag] = []
        for t, typ in topics.items():
            self.add_topic(t, typ)
        self.closed_bags: list[Path] = []
        self._seen_events: deque = deque(maxlen=64)
        self._seq = 1 + max((int(m.group(1)) for p in self.output_dir.iterdir()
                             if (m := _NAME.match(p.name))), default=-1)
        leftovers = sorted(p.name for p in self.output_dir.glob(".episode_*.partial"))
        if leftovers:
            self.log(f"unfinished bags from an earlier run (not valid recordings): {leftovers}")

    @property
    def recording(self) -> Path | None:
        return self.current.writer.path if self.current is not None else None

    def add_topic(self, topic: str, msgtype: str) -> None:
        topic = normalize_topic(topic)
        self.topics[topic] = msgtype
        self._stamped[topic] = has_header(msgtype)
        self._pre.setdefault(topic, deque(maxlen=self.pre_roll))
        for b in self._open_bags():
            b.writer.add_topic(topic, msgtype)

    def _open_bags(self) -> list[_Bag]:
        return self.closing + ([self.current] if self.current else [])

    # -- opening and closing
    def start(self, *, task: str = "", episode_index: int | None = None, started_by: str = "service",
              start_ns: int | None = None) -> Path:
        if self.current is not None:
            self._end_current(start_ns, "next episode")
        name = f"episode_{self._seq:06d}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._seq += 1
        custom = {"soarm.task": task, "soarm.started_by": started_by}
        if episode_index is not None:
            custom["soarm.episode_index"] = str(episode_index)
        writer = BagWriter(self.output_dir / name, storage=self.storage, custom_data=custom)
        for t, typ in self.topics.items():
            writer.add_topic(t, typ)
        self.current = _Bag(writer, start_ns)
        if start_ns is not None:  # messages that arrived before the event but belong to the episode
            for topic, buf in self._pre.items():
                for stamp, t, raw in buf:
                    if stamp >= start_ns:
                        self.current.write(topic, t, raw)
        self.log(f"recording {writer.path}" + (f" (task: {task!r})" if task else ""))
        return writer.path

    def _end_current(self, end_ns: int | None, reason: str) -> None:
        b, self.current = self.current, None
        b.end_ns, b.reason = end_ns, reason
        b.deadline = self.clock() + self.close_timeout
        self.closing.append(b)
        if end_ns is None:
            self._close(b)

    def stop(self, reason: str = "stop", *, end_ns: int | None = None, wait: bool = False) -> Path | None:
        """End the running bag. It closes now, or (wait=True) once its topics passed end_ns."""
        if self.current is None:
            return None
        path = self.current.writer.path
        self._end_current(end_ns if wait else None, reason)
        return path

    def _close(self, b: _Bag) -> None:
        self.closing.remove(b)
        b.writer.set_custom_data("soarm.ended_by", b.reason)
        path = b.writer.close()
        self.closed_bags.append(path)
        self.log(f"closed {path} ({b.writer.message_count} messages, {b.reason})")

    def tick(self) -> None:
        """Close bags whose topics all moved past their end (or that waited long enough)."""
        now = self.clock()
        for b in list(self.closing):
            if b.written_topics <= b.passed_topics or now >= b.deadline:
                self._close(b)

    def close_all(self, reason: str = "shutdown") -> None:
        if self.current is not None:
            self._end_current(None, reason)
        for b in list(self.closing):
            self._close(b)

    # -- messages
    def on_message(self, topic: str, time_ns: int, raw: bytes) -> None:
        stamp = cdr_stamp_ns(raw) if self._stamped.get(topic) else time_ns
        for b in self.closing:
            if b.takes(stamp):
                b.write(topic, time_ns, raw)
            elif b.end_ns is not None and stamp > b.end_ns:
                b.passed_topics.add(topic)
        if self.current is not None and self.current.takes(stamp):
            self.current.write(topic, time_ns, raw)
        if self.pre_roll:
            self._pre[topic].append((stamp, time_ns, raw))
        if self.closing:
            self.tick()

    def on_event(self, topic: str, time_ns: int, raw: bytes, *, kind: int, episode_index: int, task: str,
                 stamp_ns: int, auto_record: bool = True) -> None:
        """An EpisodeEvent (raw CDR plus its decoded fields) arrived."""
        key = (stamp_ns, kind, episode_index)
        if key in self._seen_events:  # transient-local re-delivery
            return
        self._seen_events.append(key)
        for b in self.closing:  # events arrive in publish order: this one comes after the end
            b.passed_topics.add(topic)
        if not auto_record:
            if self.current is not None:
                self.current.write(topic, time_ns, raw)
            return
        if kind == STARTED:
            self.start(task=task, episode_index=episode_index, started_by="episode_events", start_ns=stamp_ns)
            self.current.write(topic, time_ns, raw)
        elif kind in (ENDED, RESET):
            if self.current is not None and self.current.takes(stamp_ns):
                self.current.write(topic, time_ns, raw)
                self._end_current(stamp_ns, EVENT_NAMES[kind])
        else:  # SUCCESS / FAILURE: into the episode whose window holds the stamp
            for b in self._open_bags():
                if b.takes(stamp_ns):
                    b.write(topic, time_ns, raw)
        if self.closing:
            self.tick()
