"""Decode each training sample's video frames once: a memo in front of a LeRobotDataset.

A LeRobot video dataset decodes the frames of every sample it returns, every epoch. Without
image augmentation a sample is a fixed function of its index, so after the first epoch the
decoding repeats work; on a 2-core CPU with the backbone's features cached
(``feature_cache``) it is the larger half of an update. ``DecodedOnce`` returns a stored copy
of a sample it has returned before.

Contract:
- ``ds[i]`` equals the wrapped dataset's ``ds[i]``: same keys, dtypes, shapes and values.
  Images (float32 in [0, 1] as LeRobot decodes them) are stored as uint8 and restored by
  ``/ 255``; this is exact because LeRobot's decoders produce them that way. The first image
  stored is checked; if it does not round-trip exactly (another decoder, depth, transforms),
  images are stored as they are.
- Refused (``wrap`` returns the dataset itself) when the dataset applies image transforms:
  its samples differ every time.
- Memory is bounded by ``max_bytes``; past it, samples are decoded as before and not stored.
- Everything else (``meta``, ``episodes``, ``num_frames``, ...) is the wrapped dataset's. With
  DataLoader workers each worker holds its own memo (LeRobot keeps workers alive across
  epochs: ``persistent_workers``); each sample index goes to one worker per epoch, so the
  memos together hold the dataset about once per worker.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 << 30


class _Uint8Image:
    """A float image in [0, 1] stored as its uint8 pixels (restored by / 255)."""

    __slots__ = ("pixels",)

    def __init__(self, pixels: torch.Tensor):
        self.pixels = pixels


def _nbytes(value) -> int:
    if isinstance(value, _Uint8Image):
        value = value.pixels
    return value.numel() * value.element_size() if isinstance(value, torch.Tensor) else 0


class DecodedOnce(torch.utils.data.Dataset):
    """A memo of a map-style dataset's samples (see the module docstring)."""

    def __init__(self, dataset, image_keys, max_bytes: int = DEFAULT_MAX_BYTES):
        self.dataset = dataset
        self.image_keys = tuple(image_keys)
        self.max_bytes = int(max_bytes)
        self.stored_bytes = 0
        self.hits = 0
        self._items: dict[int, dict] = {}
        self._uint8_exact: bool | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        # only called for attributes this object lacks: everything LeRobot reads from a dataset
        if name == "dataset":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, idx: int) -> dict:
        stored = self._items.get(idx)
        if stored is not None:
            self.hits += 1
            return {k: self._restore(k, v) for k, v in stored.items()}
        item = self.dataset[idx]
        packed = {k: self._pack(k, v) for k, v in item.items()}
        size = sum(_nbytes(v) for v in packed.values())
        if self.stored_bytes + size <= self.max_bytes:
            self._items[idx] = packed
            self.stored_bytes += size
        return item

    def _pack(self, key, value):
        if isinstance(value, torch.Tensor):
            if key in self.image_keys and value.dtype == torch.float32 and self._images_as_uint8(value):
                return _Uint8Image((value * 255).round().to(torch.uint8))
            return value.clone()
        return value

    @staticmethod
    def _restore(key, value):
        if isinstance(value, _Uint8Image):
            return value.pixels.to(torch.float32) / 255
        if isinstance(value, torch.Tensor):
            return value.clone()
        return value

    def _images_as_uint8(self, image: torch.Tensor) -> bool:
        if self._uint8_exact is None:
            self._uint8_exact = bool(torch.equal((image * 255).round().to(torch.uint8).to(torch.float32) / 255, image))
            if not self._uint8_exact:
                log.info("decoded frames are not k/255: the sample memo stores them as float32")
        return self._uint8_exact


def wrap(dataset, max_bytes: int = DEFAULT_MAX_BYTES):
    """`DecodedOnce(dataset)` for a LeRobot dataset without image transforms; the dataset itself otherwise."""
    if getattr(dataset, "image_transforms", None) is not None:
        log.info("image transforms on: every epoch decodes its frames (no sample memo)")
        return dataset
    keys = list(getattr(getattr(dataset, "meta", None), "camera_keys", []) or [])
    return DecodedOnce(dataset, keys, max_bytes=max_bytes)
