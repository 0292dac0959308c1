"""Writing rosbag2 directories with rosbags, atomically and durably.

The bag is written into a hidden `.<name>.partial` directory beside its final path
and renamed into place by `close()` after its files and directory were fsynced; an
aborted or crashed write never leaves a directory with the final name. The data file
is named as `ros2 bag record` names it, `<name>_0.mcap` (`<name>_0.db3` for sqlite3).

MCAP durability: messages are collected in MCAP chunks; a chunk is closed and handed to
the operating system (not fsynced) at least every `chunk_period` seconds (on a write or
on `flush()`), so after a SIGKILL everything older than about `chunk_period` is in the
file and `bags.recovery.recover_partial()` turns the `.partial` directory into a normal
bag. An OS error while writing (disk full: `BagWriteError.disk_full`) leaves the
`.partial` directory in place for that recovery; the writer accepts no further writes.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import yaml
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from .errors import BagError
from .reader import normalize_topic
from .typestore import make_typestore

STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
SUFFIX = {"mcap": "mcap", "sqlite3": "db3"}
#: Seconds between MCAP chunks reaching the OS (the most a SIGKILL or a full disk loses).
CHUNK_PERIOD_S = 1.0
#: File in a `.partial` directory holding the bag's custom_data until it is closed.
CUSTOM_DATA_FILE = ".custom_data.yaml"
#: File in a `.partial` directory reserving disk space to finish the bag (deleted to do so).
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 4 << 20

#: `open(path, mode)` for the files the recorder writes into; the test seam for I/O errors.
Opener = Callable[[Path, str], BinaryIO]


def partial_path(final: Path) -> Path:
    return final.parent / f".{final.name}.partial"


def data_file_name(bag_name: str, storage: str = "mcap") -> str:
    """`<bag>_0.mcap`: the name `ros2 bag record` gives the first file of a bag."""
    return f"{bag_name}_0.{SUFFIX[storage]}"


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _McapStorage(McapWriter):
    """rosbags' MCAP storage handing every chunk to the OS at once, and keeping the records of
    the chunk being written until it is there: after a write error it is still in memory
    (`BagWriter.pending`)."""

    def __init__(self, path, compression):
        super().__init__(path, compression)
        self.unflushed: list[bytes] = []

    def close_chunk(self) -> None:
        self.unflushed = [self.chunk.bio.getvalue()]
        super().close_chunk()
        self.bio.flush()
        self.unflushed = []


class BagWriteError(BagError):
    """The operating system refused a write (disk full, I/O error); `errno` says which.

    The bag's `.partial` directory is kept: `bags.recovery.recover_partial()` finishes it
    with the chunks that reached the disk.
    """

    def __init__(self, bag: str | Path, message: str, errno: int | None):
        super().__init__(bag, message)
        self.errno = errno

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno_codes.ENOSPC, errno_codes.EDQUOT)


class BagWriter:
    """One rosbag2 directory written aside and moved to `path` on close.

    `opener` (like `open`) opens the MCAP data file and the reserve for writing; tests pass
    one whose writes fail. `reserve_bytes` are written into the `.partial` directory at the
    start (no room: BagWriteError, no bag) and deleted to make room for finishing the bag.
    `clock` (monotonic seconds) times the chunk period.
    """

    def __init__(self, path: str | Path, *, storage: str = "mcap", typestore: Typestore | None = None,
                 custom_data: dict[str, str] | None = None, chunk_period: float = CHUNK_PERIOD_S,
                 opener: Opener | None = None, clock: Callable[[], float] = time.monotonic,
                 reserve_bytes: int = 0):
        self.path = Path(path)
        if self.path.exists():
            raise BagError(self.path, "exists already, not overwriting")
        if storage not in STORAGE:
            raise BagError(self.path, f"unknown storage {storage!r} (use one of {sorted(STORAGE)})")
        self.storage = storage
        self.tmp = partial_path(self.path)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store = typestore or make_typestore()
        self._writer = Writer(self.tmp, version=9, storage_plugin=STORAGE[storage])
        self._writer.STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _McapStorage}
        self.custom_data = {k: str(v) for k, v in (custom_data or {}).items()}
        self.chunk_period = float(chunk_period)
        self._clock = clock
        self._conns: dict[str, Connection] = {}
        self.message_count = 0
        self.closed = False
        self.failed: BagWriteError | None = None
        #: after a write error: the records of the MCAP chunks that may not have reached the disk
        self.pending: list[bytes] = []
        try:
            for k, v in self.custom_data.items():
                self._writer.set_custom_data(k, v)
            self._writer.open()
            self._write_reserve(opener or open, int(reserve_bytes))
            if storage == "mcap":
                self._adopt_mcap_file(opener or open)
            self._save_custom_data()
        except OSError as exc:
            self._drop_file()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise BagWriteError(self.path, f"cannot create the bag: {exc}", exc.errno) from exc
        self._flushed_at = self._clock()

    @property
    def data_path(self) -> Path:
        """The data file inside the (partial) bag directory."""
        return self.tmp / data_file_name(self.path.name, self.storage)

    def _write_reserve(self, opener: Opener, size: int) -> None:
        if size <= 0:
            return
        with opener(self.tmp / RESERVE_FILE, "wb") as f:
            block = bytes(min(size, 1 << 16))
            for off in range(0, size, len(block)):
                f.write(block[: size - off])

    def _adopt_mcap_file(self, opener: Opener) -> None:
        """Rename rosbags' MCAP file to `<bag>_0.mcap` and write it through `opener`."""
        st = self._writer.storage
        if not all(hasattr(st, a) for a in ("path", "bio", "chunk", "close_chunk")):
            raise BagError(self.path, "this rosbags version's MCAP writer is not supported (need "
                           "path/bio/chunk/close_chunk); install the version of requirements.lock")
        st.bio.close()  # the MCAP header reaches the file
        st.path.rename(self.data_path)
        st.path = self.data_path
        st.bio = opener(self.data_path, "r+b")
        st.bio.seek(0, os.SEEK_END)

    def _save_custom_data(self) -> None:
        """custom_data beside the data file, for a recovery after a crash."""
        (self.tmp / CUSTOM_DATA_FILE).write_text(yaml.safe_dump(self.custom_data))

    def set_custom_data(self, key: str, value: str) -> None:
        self.custom_data[key] = str(value)
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
        """Write one CDR-serialized message (as received from DDS, no re-encoding).

        Raises BagWriteError when the OS refuses the write (then and afterwards)."""
        if self.failed is not None:
            raise self.failed
        conn = self._conns.get(normalize_topic(topic))
        if conn is None:
            raise BagError(self.path, "topic not added before writing", topic=topic)
        try:
            self._writer.write(conn, int(time_ns), data)
            self.message_count += 1
            self.flush(force=False)
        except OSError as exc:
            raise self._fail(exc, "writing a message") from exc

    def write(self, topic: str, time_ns: int, msg: object) -> None:
        """Serialize a rosbags message object and write it."""
        conn = self._conns.get(normalize_topic(topic))
        if conn is None:
            raise BagError(self.path, "topic not added before writing", topic=topic)
        self.write_raw(topic, time_ns, self._store.serialize_cdr(msg, conn.msgtype))

    def flush(self, force: bool = True) -> None:
        """MCAP: close the pending chunk and hand it to the OS (without force: only when
        `chunk_period` s passed since the last time). Raises BagWriteError on an OS error."""
        if self.storage != "mcap" or self.closed or self.failed is not None:
            return
        now = self._clock()
        if not force and now - self._flushed_at < self.chunk_period:
            return
        self._flushed_at = now
        st = self._writer.storage
        try:
            if st.chunk.msgs:
                st.close_chunk()
            st.bio.flush()
        except OSError as exc:
            raise self._fail(exc, "writing a chunk") from exc

    def _fail(self, exc: OSError, what: str) -> BagWriteError:
        hint = ("the disk is full: free space in " + str(self.path.parent)) if exc.errno in (
            errno_codes.ENOSPC, errno_codes.EDQUOT) else "check the disk"
        self.failed = BagWriteError(self.path, f"{what} failed: {exc.strerror or exc} ({hint}); what reached "
                                    f"the disk is kept in {self.tmp}", exc.errno)
        st = self._writer.storage
        if isinstance(st, _McapStorage):
            current = st.chunk.bio.getvalue() if st.chunk.msgs else b""
            self.pending = st.unflushed + ([current] if current and current not in st.unflushed else [])
        self._drop_file()
        with contextlib.suppress(OSError):
            (self.tmp / RESERVE_FILE).unlink(missing_ok=True)  # room to finish the bag
        return self.failed

    def _drop_file(self) -> None:
        """Close the data file without writing more (its buffered tail is lost)."""
        st = self._writer.storage
        bio = getattr(st, "bio", None)
        if bio is not None and not bio.closed:
            raw = getattr(bio, "raw", None)
            with contextlib.suppress(OSError, ValueError):
                (raw or bio).close()
            with contextlib.suppress(OSError, ValueError):
                bio.close()
        self._writer.storage = None

    def close(self) -> Path:
        """Finish the bag, fsync it and move it into place; returns the final path.

        Raises BagWriteError on an OS error (the `.partial` directory is kept)."""
        if self.failed is not None:
            raise self.failed
        if self.closed:
            return self.path
        self.closed = True
        try:
            (self.tmp / RESERVE_FILE).unlink(missing_ok=True)  # room for the summary
            self._writer.close()
            (self.tmp / CUSTOM_DATA_FILE).unlink(missing_ok=True)
            self._rename_sqlite_file()
            for f in (self.data_path, self.tmp / "metadata.yaml", self.tmp):
                fsync_path(f)
            self.tmp.rename(self.path)
            fsync_path(self.path.parent)
        except OSError as exc:
            raise self._fail(exc, "finishing the bag") from exc
        return self.path

    def _rename_sqlite_file(self) -> None:
        """sqlite3: rosbags names the file after the (hidden) directory; rename it."""
        if self.storage != "sqlite3":
            return
        old = self.tmp / f"{self.tmp.name}.db3"
        old.rename(self.data_path)
        meta = self.tmp / "metadata.yaml"
        doc = yaml.safe_load(meta.read_text())
        info = doc["rosbag2_bagfile_information"]
        info["relative_file_paths"] = [self.data_path.name]
        for f in info.get("files") or []:
            f["path"] = self.data_path.name
        meta.write_text(yaml.safe_dump(doc, sort_keys=False))

    def abort(self) -> None:
        """Drop everything written so far."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._writer.storage is not None:
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
