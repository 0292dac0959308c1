"""Reading rosbag2 recordings (sqlite3 and MCAP directories) without ROS.

Messages are deserialized with the project typestore (standard ROS 2 types and
soarm_msgs read from their .msg files); types the typestore does not know are taken
from the definitions embedded in the bag, if any.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import TypesysError, get_types_from_idl, get_types_from_msg
from rosbags.typesys.store import Typestore

from .errors import BagError
from .typestore import make_typestore

_READ_ERRORS = (ReaderError, SerdeError, TypesysError, OSError, KeyError, ValueError, AssertionError)


def normalize_topic(name: str) -> str:
    """Absolute topic name: `joint_states` -> `/joint_states`."""
    return name if name.startswith("/") else "/" + name


@dataclass(frozen=True)
class BagMessage:
    topic: str
    log_time_ns: int  # receive (log) time recorded by the recorder
    msg: object | None  # deserialized message (None when read raw)
    raw: bytes | memoryview | None = None


class BagReader:
    """A rosbag2 directory opened for reading; use as a context manager.

    Every failure is raised as BagError naming the bag and the topic.
    """

    def __init__(self, path: str | Path, typestore: Typestore | None = None):
        self.path = Path(path)
        self._store = typestore
        self._reader: Reader | None = None
        self._extra_types: Typestore | None = None
        self._types: dict[str, str] | None = None

    # -- lifecycle
    def open(self) -> "BagReader":
        if not self.path.exists():
            raise BagError(self.path, "does not exist")
        if not self.path.is_dir() or not (self.path / "metadata.yaml").exists():
            raise BagError(self.path, "not a rosbag2 directory (no metadata.yaml)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except _READ_ERRORS as exc:
            self._reader = None
            raise BagError(self.path, f"cannot open (corrupt or truncated file?): {exc}") from exc
        self._store = self._store or make_typestore()
        self._register_embedded_types()
        return self

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def __enter__(self) -> "BagReader":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata
    @property
    def reader(self) -> Reader:
        if self._reader is None:
            raise BagError(self.path, "not open")
        return self._reader

    @property
    def topics(self) -> dict[str, str]:
        """topic name -> message type (e.g. '/joint_states' -> 'sensor_msgs/msg/JointState')."""
        return {c.topic: c.msgtype for c in self.reader.connections}

    def message_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        return counts

    @property
    def message_count(self) -> int:
        return self.reader.message_count

    @property
    def custom_data(self) -> dict[str, str]:
        meta = getattr(self.reader.storage, "metadata", None)
        return dict(getattr(meta, "custom", None) or {})

    # -- messages
    def messages(self, topics: Iterable[str], *, raw: bool = False) -> Iterator[BagMessage]:
        """Messages of `topics` in log-time order; unknown topics are an error."""
        wanted = {normalize_topic(t) for t in topics}
        known = set(self.topics)
        missing = sorted(wanted - known)
        if missing:
            raise BagError(self.path, f"topic not in bag (bag has: {', '.join(sorted(known))})",
                           topic=", ".join(missing))
        conns = [c for c in self.reader.connections if c.topic in wanted]
        store = self._store
        it = self.reader.messages(connections=conns)
        topic = None
        while True:
            try:
                conn, t, data = next(it)
            except StopIteration:
                return
            except _READ_ERRORS as exc:
                raise BagError(self.path, f"cannot read messages (corrupt or truncated file?): {exc}",
                               topic=topic) from exc
            topic = conn.topic
            if raw:
                yield BagMessage(conn.topic, t, None, data)
                continue
            try:
                msg = self._deserialize(store, data, conn.msgtype)
            except _READ_ERRORS as exc:
                raise BagError(self.path, f"cannot deserialize a {conn.msgtype} message: {exc}",
                               topic=conn.topic) from exc
            yield BagMessage(conn.topic, t, msg)

    def deserialize(self, m: BagMessage) -> object:
        """Deserialize a message read with raw=True."""
        if self._types is None:
            self._types = self.topics
        return self._deserialize(self._store, m.raw, self._types[m.topic])

    def _deserialize(self, store: Typestore, data, msgtype: str):
        if msgtype in store.fielddefs:
            return store.deserialize_cdr(data, msgtype)
        if self._extra_types is not None and msgtype in self._extra_types.fielddefs:
            return self._extra_types.deserialize_cdr(data, msgtype)
        raise TypesysError(f"unknown message type {msgtype} (no definition in the bag or typestore)")

    def _register_embedded_types(self) -> None:
        """Types unknown to the project typestore, from definitions embedded in the bag."""
        from rosbags.typesys import Stores, get_typestore

        types: dict = {}
        for c in self.reader.connections:
            if c.msgtype in self._store.fielddefs or c.msgdef.format == MessageDefinitionFormat.NONE:
                continue
            try:
                if c.msgdef.format == MessageDefinitionFormat.MSG:
                    types.update(get_types_from_msg(c.msgdef.data, c.msgtype))
                else:
                    sep = "=" * 80 + "\n"
                    for part in c.msgdef.data.split(sep):
                        if part.startswith("IDL: "):
                            types.update(get_types_from_idl(part.split("\n", 1)[1]))
            except TypesysError:
                continue  # unreadable definition of a topic we may never read
        if types:
            self._extra_types = get_typestore(Stores.EMPTY)
            self._extra_types.register(types)


def open_bag(path: str | Path, typestore: Typestore | None = None) -> BagReader:
    """Open a rosbag2 directory (sqlite3 or MCAP) for reading."""
    return BagReader(path, typestore).open()
