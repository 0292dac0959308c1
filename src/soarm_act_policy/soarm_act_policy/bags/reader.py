"""Reading rosbag2 recordings (sqlite3 and MCAP directories) without ROS.

Messages are deserialized with the project typestore (standard ROS 2 types and
soarm_msgs read from their .msg files); types the typestore does not know are taken
from the definitions embedded in the bag, if any. A type the typestore knows but the
bag recorded with other fields (a soarm_msgs message from before a field was added,
e.g. EpisodeEvent without `seed`/`stages`) is read with the bag's own definition, or,
when the bag embeds none, with the known earlier definitions (`LEGACY_DEFINITIONS`).
Fields such a message lacks are simply absent: read them with `getattr(msg, f, default)`.
"""

from __future__ import annotations

import struct
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

#: Earlier definitions of project messages, tried (newest first) when a bag without embedded
#: definitions holds messages the current definition cannot read.
LEGACY_DEFINITIONS: dict[str, tuple[str, ...]] = {
    # before `int64 seed` and `uint8 stages` (2026-11-30)
    "soarm_msgs/msg/EpisodeEvent": (
        "std_msgs/Header header\nint32 episode_index\nstring task\nuint8 kind\nstring detail\n",
    ),
}


def _field_names(fielddefs, msgtype: str) -> list[str]:
    return [name for name, _ in fielddefs[msgtype][1]]


def _store_with(types: dict) -> Typestore:
    """The standard ROS 2 types plus `types` (which may redefine a project type)."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(types)
    return store


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
        #: (topic, msgtype) -> typestore holding the bag's own (different) definition
        self._own_types: dict[tuple[str, str], Typestore] = {}
        #: msgtype -> typestore of the legacy definition that read it (bags without definitions)
        self._legacy: dict[str, Typestore] = {}
        self._types: dict[str, str] | None = None

    # -- lifecycle
    def open(self) -> "BagReader":
        if not self.path.exists():
            raise BagError(self.path, "does not exist")
        if not (self.path / "metadata.yaml").exists() and self.path.name.endswith(".partial"):
            from .recovery import describe_partial

            raise BagError(self.path, describe_partial(self.path))
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
                msg = self._deserialize(self._own_types.get((conn.topic, conn.msgtype), store), data,
                                        conn.msgtype)
            except _READ_ERRORS as exc:
                raise BagError(self.path, f"cannot deserialize a {conn.msgtype} message: {exc}",
                               topic=conn.topic) from exc
            yield BagMessage(conn.topic, t, msg)

    def deserialize(self, m: BagMessage) -> object:
        """Deserialize a message read with raw=True."""
        if self._types is None:
            self._types = self.topics
        msgtype = self._types[m.topic]
        return self._deserialize(self._own_types.get((m.topic, msgtype), self._store), m.raw, msgtype)

    def _deserialize(self, store: Typestore, data, msgtype: str):
        if msgtype in self._legacy:
            return self._legacy[msgtype].deserialize_cdr(data, msgtype)
        if msgtype in store.fielddefs:
            try:
                return store.deserialize_cdr(data, msgtype)
            except (*_READ_ERRORS, struct.error) as exc:
                for definition in LEGACY_DEFINITIONS.get(msgtype, ()) if store is self._store else ():
                    legacy = _store_with(get_types_from_msg(definition, msgtype))
                    try:
                        msg = legacy.deserialize_cdr(data, msgtype)
                    except (*_READ_ERRORS, struct.error):
                        continue
                    self._legacy[msgtype] = legacy
                    return msg
                if isinstance(exc, struct.error):
                    raise ValueError(str(exc)) from exc
                raise
        if self._extra_types is not None and msgtype in self._extra_types.fielddefs:
            return self._extra_types.deserialize_cdr(data, msgtype)
        raise TypesysError(f"unknown message type {msgtype} (no definition in the bag or typestore)")

    def _register_embedded_types(self) -> None:
        """Types unknown to the project typestore, from definitions embedded in the bag."""
        from rosbags.typesys import Stores, get_typestore

        types: dict = {}
        for c in self.reader.connections:
            if c.msgdef.format == MessageDefinitionFormat.NONE or not (c.msgdef.data or "").strip():
                continue
            known = c.msgtype in self._store.fielddefs
            if known and not c.msgtype.startswith("soarm_msgs/"):
                continue  # standard types: the typestore's definition (stable within a distribution)
            try:
                if c.msgdef.format == MessageDefinitionFormat.MSG:
                    own = get_types_from_msg(c.msgdef.data, c.msgtype)
                else:
                    own = {}
                    sep = "=" * 80 + "\n"
                    for part in c.msgdef.data.split(sep):
                        if part.startswith("IDL: "):
                            own.update(get_types_from_idl(part.split("\n", 1)[1]))
            except TypesysError:
                continue  # unreadable definition of a topic we may never read
            if not known:
                types.update(own)
            elif c.msgtype in own and [n for n, _ in own[c.msgtype][1]] != _field_names(
                    self._store.fielddefs, c.msgtype):
                # recorded with another version of a project message: read it as recorded
                try:
                    self._own_types[(c.topic, c.msgtype)] = _store_with(own)
                except TypesysError:
                    continue
        if types:
            self._extra_types = get_typestore(Stores.EMPTY)
            self._extra_types.register(types)


def open_bag(path: str | Path, typestore: Typestore | None = None) -> BagReader:
    """Open a rosbag2 directory (sqlite3 or MCAP) for reading."""
    return BagReader(path, typestore).open()
