"""sensor_msgs/Image -> HxWx3 uint8 RGB with numpy (no cv_bridge)."""

from __future__ import annotations

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
