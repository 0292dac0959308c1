"""sensor_msgs/Image -> numpy without cv_bridge (not installable from PyPI).

`image_to_rgb` returns a view on the message's buffer whenever possible: rgb8 with
or without row padding is a (strided) view, bgr8 a channel-reversed view; no pixel
is copied until the tensor conversion. Anything else is refused with a message that
names the encoding and what to do.

`to_chw_float` turns that view into the float32 CHW tensor in [0, 1] that LeRobot
policies take (what LeRobot's datasets yield), optionally resized.
"""

from __future__ import annotations

import numpy as np

ACCEPTED_ENCODINGS = ("rgb8", "bgr8")


class ImageFormatError(ValueError):
    """The image cannot be used as a policy input (encoding, size, buffer)."""


def image_to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/Image (anything with its fields) as an HxWx3 uint8 RGB array view."""
    enc = msg.encoding.lower()
    if enc not in ACCEPTED_ENCODINGS:
        raise ImageFormatError(
            f"image encoding {msg.encoding!r} is not supported: publish rgb8 or bgr8 "
            f"(8-bit, 3 channels), e.g. set the camera driver's pixel format"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageFormatError(f"empty image ({w}x{h})")
    if step < 3 * w:
        raise ImageFormatError(f"image step {step} is smaller than 3*width ({3 * w})")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < h * step:
        raise ImageFormatError(
            f"image data has {buf.size} bytes, expected height*step = {h}*{step} = {h * step}"
        )
    rows = buf[: h * step].reshape(h, step)
    rgb = rows[:, : 3 * w].reshape(h, w, 3)
    if enc == "bgr8":
        rgb = rgb[:, :, ::-1]
    return rgb


def to_chw_float(rgb: np.ndarray, size: tuple[int, int] | None = None):
    """HxWx3 uint8 -> torch float32 (3, H, W) in [0, 1]; resized to size=(H, W) if given.

    Resizing is bilinear with antialiasing (torch), i.e. what torchvision's Resize does.
    """
    import torch
    import torch.nn.functional as F

    # The only pixel copy: uint8 HWC view -> float32 CHW.
    chw = np.array(rgb.transpose(2, 0, 1), dtype=np.float32, order="C")
    t = torch.from_numpy(chw).div_(255.0)
    if size is not None and tuple(t.shape[1:]) != tuple(size):
        t = F.interpolate(t[None], size=tuple(size), mode="bilinear", antialias=True, align_corners=False)[0]
    return t
