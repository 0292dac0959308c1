"""Recovering unfinished MCAP bags (`.<name>.partial` directories) in place.

A recorder killed (SIGKILL, power loss) or stopped by a write error leaves the hidden
`.<name>.partial` directory of `writer.BagWriter`: a data file without MCAP summary and
footer, possibly ending in a torn record, and no metadata.yaml. `recover_partial()`
keeps every complete chunk (with `writer.CHUNK_PERIOD_S` = 1 s: every message older than
about 1 s before the stop), cuts the torn tail, appends the MCAP summary and footer,
writes metadata.yaml (custom_data saved at the start, `soarm.ended_by: recovered`) and
renames the directory to `<name>`. It works in place: it needs a few kB of disk, not a
copy of the bag. `scan_partial()` says, without writing, what a recovery would keep.

    python -m soarm_act_policy.bags.recovery recordings/            # every .partial in there
    python -m soarm_act_policy.bags.recovery recordings/.episode_000003_20261130T120000Z.partial
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import BagError
from .writer import CUSTOM_DATA_FILE, RESERVE_FILE, fsync_path

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_MESSAGE_INDEX, OP_CHUNK_INDEX, OP_STATISTICS, OP_SUMMARY_OFFSET, OP_DATA_END = 0x07, 0x08, 0x0B, 0x0E, 0x0F
PARTIAL_SUFFIX = ".partial"
ENDED_BY = "recovered"


def is_partial(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX) and path.is_dir()


def final_path(partial: Path) -> Path:
    """`.<name>.partial` -> `<name>` beside it."""
    if not partial.name.startswith(".") or not partial.name.endswith(PARTIAL_SUFFIX):
        raise BagError(partial, "not an unfinished bag (expected a directory named .<name>.partial)")
    return partial.parent / partial.name[1:-len(PARTIAL_SUFFIX)]


def find_partials(directory: str | Path) -> list[Path]:
    """Unfinished bags in `directory`, sorted by name."""
    d = Path(directory)
    return sorted(p for p in d.iterdir() if is_partial(p)) if d.is_dir() else []


@dataclass
class _Chunk:
    start: int  # file offset of the chunk record
    end: int  # file offset after it
    t0: int
    t1: int
    compression: str
    compressed_size: int
    uncompressed_size: int
    #: channel id -> [(log_time, offset inside the uncompressed chunk)]
    index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    #: channel id -> file offset of its message index record (right after the chunk)
    index_offsets: dict[int, int] = field(default_factory=dict)
    index_end: int = 0  # file offset after the last message index record of the chunk
    digest: bytes = b""  # sha1 of the uncompressed records


@dataclass
class Scan:
    """What a recovery of one data file keeps."""

    data_file: Path
    size: int  # bytes in the file now
    keep: int  # bytes kept (up to the end of the last complete chunk)
    schemas: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)  # id -> name, encoding, data
    channels: dict[int, tuple[int, str, str, bytes]] = field(default_factory=dict)  # id -> schema, topic, enc, meta
    chunks: list[_Chunk] = field(default_factory=list)
    stop_reason: str = "end of file"

    @property
    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for c in self.chunks:
            for cid, msgs in c.index.items():
                out[cid] = out.get(cid, 0) + len(msgs)
        return out

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())

    @property
    def time_range(self) -> tuple[int, int] | None:
        if not self.chunks:
            return None
        return min(c.t0 for c in self.chunks), max(c.t1 for c in self.chunks)


def _string(buf: io.BytesIO) -> str:
    (n,) = struct.unpack("<I", _exact(buf, 4))
    return _exact(buf, n).decode()


def _bytes(buf: io.BytesIO) -> bytes:
    (n,) = struct.unpack("<I", _exact(buf, 4))
    return _exact(buf, n)


def _exact(buf, n: int) -> bytes:
    b = buf.read(n)
    if len(b) != n:
        raise ValueError("record ends early")
    return b


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            from backports import zstd
        return zstd.decompress(data)
    raise ValueError(f"unsupported chunk compression {compression!r}")


def _parse_records(data: bytes, scan: Scan, chunk: _Chunk | None) -> None:
    """Schema, channel and (inside a chunk) message records of `data`."""
    inner = io.BytesIO(data)
    while inner.tell() < len(data):
        offset = inner.tell()
        op = _exact(inner, 1)[0]
        (n,) = struct.unpack("<Q", _exact(inner, 8))
        body = io.BytesIO(_exact(inner, n))
        if op == OP_SCHEMA:
            (sid,) = struct.unpack("<H", _exact(body, 2))
            scan.schemas[sid] = (_string(body), _string(body), _bytes(body))
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack("<HH", _exact(body, 4))
            scan.channels[cid] = (sid, _string(body), _string(body), _bytes(body))
        elif op == OP_MESSAGE and chunk is not None:
            cid, _seq, log_time = struct.unpack("<HIQ", _exact(body, 14))
            if cid not in scan.channels:
                raise ValueError(f"message on unknown channel {cid}")
            chunk.index.setdefault(cid, []).append((log_time, offset))


def _parse_chunk(content: bytes, start: int, end: int, scan: Scan) -> _Chunk:
    rec = io.BytesIO(content)
    t0, t1, usize, crc = struct.unpack("<QQQI", _exact(rec, 28))
    compression = _string(rec)
    (csize,) = struct.unpack("<Q", _exact(rec, 8))
    data = _decompress(_exact(rec, csize), compression, usize)
    if len(data) != usize:
        raise ValueError("chunk size does not match its header")
    if crc and zlib.crc32(data) != crc:
        raise ValueError("chunk checksum mismatch")
    chunk = _Chunk(start, end, t0, t1, compression, csize, usize, index_end=end,
                   digest=hashlib.sha1(data).digest())
    _parse_records(data, scan, chunk)
    return chunk


def scan_partial(partial: str | Path, *, require_messages: bool = True) -> Scan:
    """Read the data file of an unfinished MCAP bag and find what can be kept (no writing).

    Raises BagError when nothing can be kept (no data file, bad header, no complete chunk
    with messages unless not `require_messages`)."""
    partial = Path(partial)
    files = sorted(partial.glob("*.mcap"))
    if len(files) != 1:
        raise BagError(partial, f"expected one .mcap data file, found {[f.name for f in files]} "
                       "(sqlite3 bags cannot be recovered here; try `sqlite3 FILE .recover`)")
    data_file = files[0]
    with open(data_file, "rb") as buf:  # read record by record: bags can be larger than memory
        scan = Scan(data_file, os.fstat(buf.fileno()).st_size, 0)
        _scan_records(buf, scan, partial)
    if require_messages and not scan.message_count:
        raise BagError(partial, f"{data_file.name}: no complete chunk with messages reached the disk "
                       f"({scan.size} bytes, stopped at {scan.stop_reason}): nothing to recover")
    return scan


def _scan_records(buf, scan: Scan, partial: Path) -> None:
    data_file, size = scan.data_file, scan.size
    if buf.read(8) != MAGIC:
        raise BagError(partial, f"{data_file.name} does not start with the MCAP magic: not recoverable")
    try:
        op = _exact(buf, 1)[0]
        (n,) = struct.unpack("<Q", _exact(buf, 8))
        _exact(buf, n)
        if op != OP_HEADER:
            raise ValueError("no header record")
        scan.keep = buf.tell()
    except ValueError as exc:
        raise BagError(partial, f"{data_file.name}: incomplete MCAP header ({exc}): not recoverable") from exc
    while buf.tell() < size:
        start = buf.tell()
        try:
            op = _exact(buf, 1)[0]
            (n,) = struct.unpack("<Q", _exact(buf, 8))
            if op == OP_DATA_END or op == OP_FOOTER:
                scan.stop_reason = "end of the data section"
                break
            if start + 9 + n > size:
                raise ValueError(f"a record of {n} bytes, the file ends after {size - start - 9}")
            content = _exact(buf, n)
            if op == OP_CHUNK:
                scan.chunks.append(_parse_chunk(content, start, buf.tell(), scan))
                scan.keep = buf.tell()  # its message indexes are rewritten: they may be torn
            elif op == OP_MESSAGE_INDEX and scan.chunks and scan.chunks[-1].index_end == start:
                (cid,) = struct.unpack_from("<H", content)
                scan.chunks[-1].index_offsets[cid] = start
                scan.chunks[-1].index_end = buf.tell()
            elif op in (OP_SCHEMA, OP_CHANNEL):
                _parse_records(bytes([op]) + struct.pack("<Q", n) + content, scan, None)  # kept in the summary
            elif op == OP_MESSAGE:
                scan.stop_reason = f"an unchunked message at byte {start} (not written by this project)"
                break
        except (ValueError, struct.error, KeyError) as exc:
            scan.stop_reason = f"a torn or invalid record at byte {start} ({exc})"
            break


def _record(out: io.BytesIO, op: int, body: bytes) -> None:
    out.write(bytes([op]) + struct.pack("<Q", len(body)) + body)


def _s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<I", len(b)) + b


def _b(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def _tail(scan: Scan, pending: Sequence[bytes] = ()) -> bytes:
    """What is appended at `scan.keep`: the last chunk's message indexes, the `pending` chunks
    (records of chunks the writer still held in memory, those not complete on disk already)
    with theirs, data end, summary and footer. Adds the pending chunks to `scan`.

    Readers (rosbags) expect a chunk's message indexes right after it: the earlier chunks keep
    the ones the writer put there, the last chunk (cut at its end) gets new ones."""
    out = io.BytesIO()
    base = scan.keep

    def write_index(chunk: _Chunk) -> None:
        chunk.index_offsets = {}
        for cid, msgs in sorted(chunk.index.items()):
            chunk.index_offsets[cid] = base + out.tell()
            entries = b"".join(struct.pack("<QQ", t, o) for t, o in msgs)
            _record(out, OP_MESSAGE_INDEX, struct.pack("<H", cid) + _b(entries))
        chunk.index_end = base + out.tell()

    if scan.chunks:
        write_index(scan.chunks[-1])
    on_disk = {c.digest for c in scan.chunks}
    for records in pending:
        if hashlib.sha1(records).digest() in on_disk:
            continue

        def content(t0: int, t1: int, records=records) -> bytes:
            return struct.pack("<QQQI", t0, t1, len(records), 0) + _s("") + struct.pack("<Q", len(records)) + records

        start = base + out.tell()
        chunk = _parse_chunk(content(0, 0), start, start + 9 + len(content(0, 0)), scan)
        stamps = [t for msgs in chunk.index.values() for t, _ in msgs]
        if not stamps:
            continue
        chunk.t0, chunk.t1 = min(stamps), max(stamps)
        _record(out, OP_CHUNK, content(chunk.t0, chunk.t1))
        scan.chunks.append(chunk)
        write_index(chunk)
    if not scan.message_count:
        return b""  # nothing to recover (the caller says so)
    _record(out, OP_DATA_END, struct.pack("<I", 0))
    summary_start = base + out.tell()
    for sid, (name, enc, data) in sorted(scan.schemas.items()):
        _record(out, OP_SCHEMA, struct.pack("<H", sid) + _s(name) + _s(enc) + _b(data))
    channels_start = base + out.tell()
    for cid, (sid, topic, enc, meta) in sorted(scan.channels.items()):
        _record(out, OP_CHANNEL, struct.pack("<HH", cid, sid) + _s(topic) + _s(enc) + _b(meta))
    chunks_start = base + out.tell()
    for c in scan.chunks:
        m = b"".join(struct.pack("<HQ", cid, off) for cid, off in sorted(c.index_offsets.items()))
        _record(out, OP_CHUNK_INDEX, struct.pack("<QQQQ", c.t0, c.t1, c.start, c.end - c.start) + _b(m)
                + struct.pack("<Q", c.index_end - c.end) + _s(c.compression)
                + struct.pack("<QQ", c.compressed_size, c.uncompressed_size))
    stats_start = base + out.tell()
    t0, t1 = scan.time_range
    counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(scan.counts.items()))
    _record(out, OP_STATISTICS, struct.pack("<QHIIIIQQ", scan.message_count, len(scan.schemas),
                                            len(scan.channels), 0, 0, len(scan.chunks), t0, t1) + _b(counts))
    offsets_start = base + out.tell()
    for op, a, b in ((OP_SCHEMA, summary_start, channels_start), (OP_CHANNEL, channels_start, chunks_start),
                     (OP_CHUNK_INDEX, chunks_start, stats_start), (OP_STATISTICS, stats_start, offsets_start)):
        if b > a:
            _record(out, OP_SUMMARY_OFFSET, bytes([op]) + struct.pack("<QQ", a, b - a))
    _record(out, OP_FOOTER, struct.pack("<QQI", summary_start, offsets_start, 0))
    out.write(MAGIC)
    return out.getvalue()


def _metadata(scan: Scan, custom: dict[str, str]) -> dict:
    from .typestore import make_typestore

    store = make_typestore()
    t0, t1 = scan.time_range
    counts = scan.counts
    topics = []
    for cid, (sid, topic, enc, meta) in sorted(scan.channels.items()):
        msgtype = scan.schemas[sid][0] if sid in scan.schemas else ""
        qos = []
        pairs = io.BytesIO(meta)  # the channel's metadata map: key/value strings
        while pairs.tell() < len(meta):
            key, value = _string(pairs), _string(pairs)
            if key == "offered_qos_profiles":
                qos = yaml.safe_load(value) or []
        try:
            digest = store.hash_rihs01(msgtype)
        except Exception:  # a type unknown to the typestore: no hash (an optional field)
            digest = ""
        topics.append({"topic_metadata": {"name": topic, "type": msgtype, "serialization_format": enc,
                                          "offered_qos_profiles": qos, "type_description_hash": digest},
                       "message_count": counts.get(cid, 0)})
    n = scan.message_count
    return {"rosbag2_bagfile_information": {
        "version": 9, "storage_identifier": "mcap", "relative_file_paths": [scan.data_file.name],
        "duration": {"nanoseconds": t1 - t0}, "starting_time": {"nanoseconds_since_epoch": t0},
        "message_count": n, "topics_with_message_count": topics, "compression_format": "",
        "compression_mode": "", "files": [{"path": scan.data_file.name, "starting_time":
                                           {"nanoseconds_since_epoch": t0},
                                           "duration": {"nanoseconds": t1 - t0}, "message_count": n}],
        "custom_data": custom or None, "ros_distro": "rosbags"}}


@dataclass
class Recovery:
    path: Path  # the recovered bag (final name)
    messages: int
    chunks: int
    last_log_time_ns: int
    dropped_bytes: int  # bytes cut after the last complete chunk (its index is rewritten)
    stop_reason: str

    def __str__(self) -> str:
        return (f"recovered {self.path}: {self.messages} messages in {self.chunks} chunks, newest log time "
                f"{self.last_log_time_ns * 1e-9:.3f} s; {self.dropped_bytes} bytes after the last complete "
                f"chunk cut off (its message index, rewritten, and what did not form a complete chunk: "
                f"{self.stop_reason})")


def recover_partial(partial: str | Path, pending: Sequence[bytes] = ()) -> Recovery:
    """Finish an unfinished MCAP bag in place and rename it to its final name.

    `pending`: records of chunks a writer stopped by a write error still held in memory
    (`BagWriter.pending`); appended unless already complete on disk. Raises BagError when it
    cannot be recovered (the directory then holds at most the torn tail less)."""
    partial = Path(partial)
    final = final_path(partial)
    if final.exists():
        raise BagError(partial, f"{final} exists already; move one of them away and retry")
    scan = scan_partial(partial, require_messages=not pending)
    (partial / RESERVE_FILE).unlink(missing_ok=True)  # the room to finish the bag
    cut = scan.keep
    tail = _tail(scan, pending)
    if not scan.message_count:
        raise BagError(partial, f"{scan.data_file.name}: no message reached the disk or memory: nothing to "
                       "recover")
    custom_file = partial / CUSTOM_DATA_FILE
    custom = yaml.safe_load(custom_file.read_text()) if custom_file.exists() else {}
    custom = {str(k): str(v) for k, v in (custom or {}).items()}
    custom["soarm.ended_by"] = ENDED_BY
    meta = yaml.safe_dump(_metadata(scan, custom), sort_keys=False)
    try:
        with open(scan.data_file, "r+b") as f:
            f.truncate(cut)
            f.seek(cut)
            f.write(tail)
            f.flush()
            os.fsync(f.fileno())
        tmp = partial / "metadata.yaml.tmp"
        tmp.write_text(meta)
        fsync_path(tmp)
        tmp.replace(partial / "metadata.yaml")
        custom_file.unlink(missing_ok=True)
        fsync_path(partial)
        partial.rename(final)
        fsync_path(final.parent)
    except OSError as exc:
        if pending:  # no room for the chunks from memory: keep at least what is on disk
            return recover_partial(partial)
        raise BagError(partial, f"recovery failed writing: {exc} (free some disk space and retry: "
                       f"python -m soarm_act_policy.bags.recovery {partial})") from exc
    return Recovery(final, scan.message_count, len(scan.chunks), scan.time_range[1], scan.size - cut,
                    scan.stop_reason)


def describe_partial(partial: str | Path) -> str:
    """Why an unfinished bag is not read, and how to recover it (for error messages and reports)."""
    partial = Path(partial)
    try:
        scan = scan_partial(partial)
    except BagError as exc:
        return f"unfinished recording (no metadata.yaml), not recoverable: {exc.reason}"
    return (f"unfinished recording (no metadata.yaml: the recorder was killed, stopped by a write error or is "
            f"still recording); {scan.message_count} messages in {len(scan.chunks)} chunks are recoverable: "
            f"restart the recorder on its output directory or run `python -m soarm_act_policy.bags.recovery "
            f"{partial}`")


def main(argv: list[str] | None = None) -> int:
    """Recover the given .partial directories (or every one in the given directories); exit 1 if any failed."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for a in args:
        p = Path(a)
        for partial in ([p] if is_partial(p) else find_partials(p)):
            try:
                print(recover_partial(partial))
            except BagError as exc:
                failed += 1
                print(f"not recovered: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
