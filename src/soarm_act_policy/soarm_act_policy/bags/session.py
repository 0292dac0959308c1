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

Durability: unfinished bags (`.<name>.partial`, left by a killed recorder) are recovered
when the recorder starts (`recovery.recover_partial`: every chunk that reached the disk,
i.e. all but about the last `chunk_period` s). An OS error while writing (disk full) never
escapes: the bag is finished the same way with every message up to the failed write, the
error is logged and counted (`write_errors`). Every bag starts by writing `reserve_bytes`
into its directory (deleted to make room for finishing it): while that fails, new episodes
are refused (logged, counted).
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
from .errors import BagError
from .reader import normalize_topic
from .recovery import find_partials, recover_partial
from .typestore import make_typestore
from .writer import CHUNK_PERIOD_S, RESERVE_BYTES, BagWriter, BagWriteError, Opener

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
    """`log` gets progress lines, `log_error` (default `log`) write errors and refusals;
    `opener` (like `open`) opens the files written (test seam for disk errors)."""

    def __init__(self, output_dir: str | Path, topics: dict[str, str], *, storage: str = "mcap",
                 close_timeout: float = 2.0, pre_roll: int = 30, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, chunk_period: float = CHUNK_PERIOD_S,
                 reserve_bytes: int = RESERVE_BYTES, opener: Opener = open,
                 log_error: Callable[[str], None] | None = None):
        self.output_dir = Path(output_dir).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.topics: dict[str, str] = {}
        self._stamped: dict[str, bool] = {}
        self._pre: dict[str, deque] = {}
        self.pre_roll = int(pre_roll)
        self.storage = storage
        self.close_timeout = float(close_timeout)
        self.log = log
        self.log_error = log_error or log
        self.clock = clock
        self.chunk_period = float(chunk_period)
        self.reserve_bytes = int(reserve_bytes)
        self.opener = opener
        #: OS errors while writing and episodes refused for them, since the start
        self.write_errors = 0
        self.last_error = ""
        self.current: _Bag | None = None
        self.closing: list[_Bag] = []
        for t, typ in topics.items():
            self.add_topic(t, typ)
        self.closed_bags: list[Path] = []
        self.recovered: list[Path] = []
        self._seen_events: deque = deque(maxlen=64)
        self._seq = 1 + max((int(m.group(1)) for p in self.output_dir.iterdir()
                             if (m := _NAME.match(p.name))), default=-1)
        for partial in find_partials(self.output_dir):
            if _NAME.match(partial.name):
                self._recover(partial, "unfinished bag of an earlier run")

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

    # -- disk errors
    def _error(self, text: str) -> None:
        self.write_errors += 1
        self.last_error = text
        self.log_error(f"write error #{self.write_errors}: {text}")

    def _recover(self, partial: Path, why: str, pending=()) -> Path | None:
        try:
            result = recover_partial(partial, pending)
        except BagError as exc:
            self.log_error(f"{why} not recovered, left as {partial.name} (bag_to_lerobot lists it): {exc}")
            return None
        self.recovered.append(result.path)
        self.log(f"{why}: {result}")
        return result.path

    def _failed(self, b: _Bag, exc: BagWriteError) -> None:
        """A write of bag `b` failed: drop it from the open bags, finish it with what is on disk."""
        if b is self.current:
            self.current = None
        if b in self.closing:
            self.closing.remove(b)
        self._error(str(exc) + ("; new episodes are refused until there is space again" if exc.disk_full
                                else ""))
        path = self._recover(b.writer.tmp, "bag stopped by the write error", b.writer.pending)
        if path is not None:
            self.closed_bags.append(path)

    def _write(self, b: _Bag, topic: str, time_ns: int, raw: bytes) -> None:
        try:
            b.write(topic, time_ns, raw)
        except BagWriteError as exc:
            self._failed(b, exc)

    # -- opening and closing
    def start(self, *, task: str = "", episode_index: int | None = None, started_by: str = "service",
              start_ns: int | None = None) -> Path:
        """Open a bag; raises BagWriteError (logged, counted) when the disk has no room."""
        if self.current is not None:
            self._end_current(start_ns, "next episode")
        name = f"episode_{self._seq:06d}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._seq += 1
        custom = {"soarm.task": task, "soarm.started_by": started_by}
        if episode_index is not None:
            custom["soarm.episode_index"] = str(episode_index)
        try:
            writer = BagWriter(self.output_dir / name, storage=self.storage, custom_data=custom,
                               chunk_period=self.chunk_period, opener=self.opener, clock=self.clock,
                               reserve_bytes=self.reserve_bytes)
        except BagWriteError as exc:
            self._error(f"not recording this episode: {exc}")
            raise
        for t, typ in self.topics.items():
            writer.add_topic(t, typ)
        self.current = _Bag(writer, start_ns)
        path = writer.path
        if start_ns is not None:  # messages that arrived before the event but belong to the episode
            for topic, buf in self._pre.items():
                for stamp, t, raw in buf:
                    if stamp >= start_ns and self.current is not None:
                        self._write(self.current, topic, t, raw)
        self.log(f"recording {path}" + (f" (task: {task!r})" if task else ""))
        return path

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
        b.writer.set_custom_data("soarm.ended_by", b.reason)
        try:
            path = b.writer.close()
        except BagWriteError as exc:
            self._failed(b, exc)
            return
        self.closing.remove(b)
        self.closed_bags.append(path)
        self.log(f"closed {path} ({b.writer.message_count} messages, {b.reason})")

    def tick(self) -> None:
        """Close bags whose topics all moved past their end (or that waited long enough); hand
        chunks older than `chunk_period` to the disk."""
        now = self.clock()
        for b in list(self.closing):
            if b.written_topics <= b.passed_topics or now >= b.deadline:
                self._close(b)
        for b in self._open_bags():
            try:
                b.writer.flush(force=False)
            except BagWriteError as exc:
                self._failed(b, exc)

    def close_all(self, reason: str = "shutdown") -> None:
        if self.current is not None:
            self._end_current(None, reason)
        for b in list(self.closing):
            self._close(b)

    # -- messages
    def on_message(self, topic: str, time_ns: int, raw: bytes) -> None:
        stamp = cdr_stamp_ns(raw) if self._stamped.get(topic) else time_ns
        for b in list(self.closing):
            if b.takes(stamp):
                self._write(b, topic, time_ns, raw)
            elif b.end_ns is not None and stamp > b.end_ns:
                b.passed_topics.add(topic)
        if self.current is not None and self.current.takes(stamp):
            self._write(self.current, topic, time_ns, raw)
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
                self._write(self.current, topic, time_ns, raw)
            return
        if kind == STARTED:
            try:
                self.start(task=task, episode_index=episode_index, started_by="episode_events",
                           start_ns=stamp_ns)
            except BagWriteError:
                return  # refused: logged and counted by start()
            if self.current is not None:
                self._write(self.current, topic, time_ns, raw)
        elif kind in (ENDED, RESET):
            if self.current is not None and self.current.takes(stamp_ns):
                b = self.current
                self._write(b, topic, time_ns, raw)
                if b is self.current:
                    self._end_current(stamp_ns, EVENT_NAMES[kind])
        else:  # SUCCESS / FAILURE: into the episode whose window holds the stamp
            for b in self._open_bags():
                if b.takes(stamp_ns):
                    self._write(b, topic, time_ns, raw)
        if self.closing:
            self.tick()
