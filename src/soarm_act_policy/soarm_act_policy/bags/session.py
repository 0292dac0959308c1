"""One rosbag2 directory per episode: the recorder's bookkeeping, free of ROS.

Episode lifecycle (soarm_msgs/EpisodeEvent): STARTED opens a new bag (closing a running
one), the event itself is the bag's first message; ENDED and RESET are written and close
the bag; SUCCESS/FAILURE are written. start()/stop() do the same by hand. Bags are named
`episode_<NNNNNN>_<UTC time>` with a sequence number that continues the highest one in
the output directory, so names sort in recording order across restarts.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .reader import normalize_topic
from .writer import BagWriter

STARTED, SUCCESS, FAILURE, RESET, ENDED = 0, 1, 2, 3, 4
_NAME = re.compile(r"^\.?episode_(\d+)_")


class EpisodeRecorder:
    def __init__(self, output_dir: str | Path, topics: dict[str, str], *, storage: str = "mcap",
                 log: Callable[[str], None] = print):
        self.output_dir = Path(output_dir).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.topics = {normalize_topic(t): typ for t, typ in topics.items()}
        self.storage = storage
        self.log = log
        self.writer: BagWriter | None = None
        self.closed_bags: list[Path] = []
        self._seen_events: deque = deque(maxlen=64)
        self._seq = 1 + max((int(m.group(1)) for p in self.output_dir.iterdir()
                             if (m := _NAME.match(p.name))), default=-1)
        leftovers = sorted(p.name for p in self.output_dir.glob(".episode_*.partial"))
        if leftovers:
            self.log(f"unfinished bags from an earlier run (not valid recordings): {leftovers}")

    @property
    def recording(self) -> Path | None:
        return self.writer.path if self.writer is not None else None

    def add_topic(self, topic: str, msgtype: str) -> None:
        self.topics[normalize_topic(topic)] = msgtype
        if self.writer is not None:
            self.writer.add_topic(topic, msgtype)

    def start(self, *, task: str = "", episode_index: int | None = None, started_by: str = "service"
              ) -> Path:
        if self.writer is not None:
            self.stop("next episode")
        name = f"episode_{self._seq:06d}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._seq += 1
        custom = {"soarm.task": task, "soarm.started_by": started_by}
        if episode_index is not None:
            custom["soarm.episode_index"] = str(episode_index)
        self.writer = BagWriter(self.output_dir / name, storage=self.storage, custom_data=custom)
        for t, typ in self.topics.items():
            self.writer.add_topic(t, typ)
        self.log(f"recording {self.writer.path}" + (f" (task: {task!r})" if task else ""))
        return self.writer.path

    def stop(self, reason: str = "stop") -> Path | None:
        if self.writer is None:
            return None
        w, self.writer = self.writer, None
        w.set_custom_data("soarm.ended_by", reason)
        path = w.close()
        self.closed_bags.append(path)
        self.log(f"closed {path} ({w.message_count} messages, {reason})")
        return path

    def on_message(self, topic: str, time_ns: int, raw: bytes) -> None:
        if self.writer is not None:
            self.writer.write_raw(topic, time_ns, raw)

    def on_event(self, topic: str, time_ns: int, raw: bytes, *, kind: int, episode_index: int, task: str,
                 stamp_ns: int, auto_record: bool = True) -> None:
        """An EpisodeEvent (raw CDR plus its decoded fields) arrived."""
        key = (stamp_ns, kind, episode_index)
        if key in self._seen_events:  # transient-local re-delivery
            return
        self._seen_events.append(key)
        if auto_record and kind == STARTED:
            self.start(task=task, episode_index=episode_index, started_by="episode_events")
        self.on_message(topic, time_ns, raw)
        if auto_record and kind in (ENDED, RESET) and self.writer is not None:
            self.stop({ENDED: "ENDED", RESET: "RESET"}[kind])
