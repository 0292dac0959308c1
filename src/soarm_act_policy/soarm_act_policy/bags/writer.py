"""Writing rosbag2 MCAP directories with rosbags, atomically.

The bag is written into a hidden `.<name>.partial` directory beside its final path
and renamed into place by `close()`; an aborted or crashed write never leaves a
directory with the final name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys.store import Typestore

from .errors import BagError
from .reader import normalize_topic
from .typestore import make_typestore

STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def partial_path(final: Path) -> Path:
    return final.parent / f".{final.name}.partial"


class BagWriter:
    """One rosbag2 directory written aside and moved to `path` on close."""

    def __init__(self, path: str | Path, *, storage: str = "mcap", typestore: Typestore | None = None,
                 custom_data: dict[str, str] | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise BagError(self.path, "exists already, not overwriting")
        if storage not in STORAGE:
            raise BagError(self.path, f"unknown storage {storage!r} (use one of {sorted(STORAGE)})")
        self.tmp = partial_path(self.path)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store = typestore or make_typestore()
        self._writer = Writer(self.tmp, version=9, storage_plugin=STORAGE[storage])
        for k, v in (custom_data or {}).items():
            self._writer.set_custom_data(k, str(v))
        self._writer.open()
        self._conns: dict[str, Connection] = {}
        self.message_count = 0
        self.closed = False

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, str(value))

    def add_topic(self, topic: str, msgtype: str) -> None:
        topic = normalize_topic(topic)
        if topic in self._conns:
            return
        try:
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        except (WriterError, KeyError) as exc:
            raise BagError(self.path, f"cannot add topic of type {msgtype}: {exc}", topic=topic) from exc

    def has_topic(self, topic: str) -> bool:
        return normalize_topic(topic) in self._conns

    def write_raw(self, topic: str, time_ns: int, data: bytes | memoryview) -> None:
        """Write one CDR-serialized message (as received from DDS, no re-encoding)."""
        conn = self._conns.get(normalize_topic(topic))
        if conn is None:
            raise BagError(self.path, "topic not added before writing", topic=topic)
        self._writer.write(conn, int(time_ns), data)
        self.message_count += 1

    def write(self, topic: str, time_ns: int, msg: object) -> None:
        """Serialize a rosbags message object and write it."""
        conn = self._conns.get(normalize_topic(topic))
        if conn is None:
            raise BagError(self.path, "topic not added before writing", topic=topic)
        self.write_raw(topic, time_ns, self._store.serialize_cdr(msg, conn.msgtype))

    def close(self) -> Path:
        """Finish the bag and move it into place; returns the final path."""
        if self.closed:
            return self.path
        self.closed = True
        try:
            self._writer.close()
            self.tmp.rename(self.path)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.abort()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.abort()
