"""sensor_msgs/Image -> HxWx3 uint8 RGB with numpy (no cv_bridge).

`parse_image` reads a serialized (CDR) Image without building the message: the pixel
data stays a view of the bag's buffer (no copy), ~20x faster than deserializing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

#: encoding -> (channels, channel order to get RGB)
ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}


def check_image_layout(encoding: str, width: int, height: int, step: int, nbytes: int) -> str | None:
    """Why an image cannot be converted, or None when it can."""
    if encoding not in ENCODINGS:
        return (f"unsupported image encoding {encoding!r} (supported: {', '.join(ENCODINGS)}); "
                "publish rgb8 images")
    channels = ENCODINGS[encoding][0]
    if width <= 0 or height <= 0:
        return f"empty image {width}x{height}"
    if step < width * channels:
        return f"row step {step} smaller than width*channels = {width * channels}"
    if nbytes < step * height:
        return f"image data has {nbytes} bytes, expected step*height = {step * height}"
    return None


def to_rgb(msg) -> np.ndarray:
    """RGB uint8 array (height, width, 3) of a (rosbags) sensor_msgs/Image."""
    channels, order = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    rows = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if order == (0, 1, 2) and channels == 3:
        return np.ascontiguousarray(rows)
    return np.ascontiguousarray(rows[:, :, list(order)])


@dataclass(slots=True)  # not frozen: 2.5x cheaper to build, once per image
class _Stamp:
    sec: int
    nanosec: int


@dataclass(slots=True)
class _Header:
    stamp: _Stamp


@dataclass(slots=True)
class RawImage:
    """The fields of a sensor_msgs/Image that the conversion uses; `data` views the buffer."""

    header: _Header
    height: int
    width: int
    encoding: str
    step: int
    data: np.ndarray


#: byte order -> (sec, nanosec, frame_id length), (height, width, encoding length), (step, data length)
_LAYOUT = {e: (struct.Struct(e + "iII"), struct.Struct(e + "III"), struct.Struct(e + "II")) for e in "<>"}


def parse_image(raw) -> RawImage:
    """A serialized (CDR, either byte order) sensor_msgs/Image; ValueError when malformed."""
    buf = memoryview(raw)
    if len(buf) < 4 or buf[0] != 0 or buf[1] not in (0, 1):
        raise ValueError("not a CDR-encoded message")
    head, size, data_len = _LAYOUT["<" if buf[1] == 1 else ">"]
    # Offsets count from the 4-byte encapsulation header: a u32 sits at o with (o - 4) % 4 == 0,
    # i.e. o % 4 == 0. Strings are a u32 length (with the NUL) and the bytes.
    try:
        sec, nanosec, n = head.unpack_from(buf, 4)  # header.stamp, header.frame_id length
        o = 16 + n
        o += -o % 4
        height, width, n = size.unpack_from(buf, o)  # and the encoding's length
        o += 12
        if o + n > len(buf):
            raise ValueError(f"truncated Image message: encoding needs {n} bytes")
        encoding = bytes(buf[o:o + n]).rstrip(b"\0").decode()
        o += n + 1  # and is_bigendian
        o += -o % 4
        step, n = data_len.unpack_from(buf, o)
        o += 8
    except struct.error as exc:
        raise ValueError(f"truncated Image message: {exc}") from exc
    if o + n > len(buf):
        raise ValueError(f"truncated Image message: data needs {n} bytes, {len(buf) - o} present")
    data = np.frombuffer(buf, dtype=np.uint8, count=n, offset=o)
    return RawImage(_Header(_Stamp(sec, nanosec)), height, width, encoding, step, data)
