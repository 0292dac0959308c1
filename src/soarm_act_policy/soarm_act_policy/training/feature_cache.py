"""Memoise a frozen vision backbone during training: each distinct image is run through it once.

When ACT trains with its backbone frozen (``--lr-backbone 0``), the backbone is a fixed,
deterministic function: LeRobot builds it with ``FrozenBatchNorm2d`` (no running statistics),
it has no dropout, and its weights never change. Every epoch then recomputes the same feature
map for the same dataset frame, which on a CPU is about half of an update. This cache keys
each image of a batch by a digest of its exact bytes (the normalised tensor that reaches the
backbone) and returns the stored feature map when it has one.

Contract:
- Outputs are the uncached backbone's: a hit returns the tensor the same module produced for
  the same bytes earlier (possibly in a batch of other frames, so equal up to the float
  rounding that batching itself changes). A batch mixes hits and misses freely; the misses go
  through the backbone together, in one call.
- Only for a backbone without gradients: ``attach`` refuses one with trainable parameters
  (its output would change as it trains, and the cache would hide that).
- Images that are augmented differently each time never hit; they cost one digest each
  (about 20 us for a 96x128 frame) and are not stored once the budget is full.
- Memory is bounded by ``max_bytes``: once full, new feature maps are computed and not stored.
- The module's parameters, buffers and ``state_dict`` are untouched (the cache is an instance
  attribute replacing ``forward``), so checkpoints are exactly LeRobot's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

#: Default memory budget for stored feature maps.
DEFAULT_MAX_BYTES = 1 << 30


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored_bytes: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class FrozenBackboneCache:
    """Feature maps of a frozen backbone by image digest (see the module docstring)."""

    def __init__(self, backbone: torch.nn.Module, key: str = "feature_map", max_bytes: int = DEFAULT_MAX_BYTES):
        if any(p.requires_grad for p in backbone.parameters()):
            raise ValueError("the backbone has trainable parameters: only a frozen backbone (--lr-backbone 0) "
                             "can be cached")
        self.backbone = backbone
        self.key = key
        self.max_bytes = int(max_bytes)
        self.stats = CacheStats()
        self._features: dict[bytes, torch.Tensor] = {}
        self._forward = backbone.forward

    @staticmethod
    def digest(image: torch.Tensor) -> bytes:
        """Digest of one image's exact bytes (dtype and shape included)."""
        t = image.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().numpy().tobytes())
        return h.digest()

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The backbone's output dict for a batch (B, C, H, W), hits from the cache."""
        keys = [self.digest(img) for img in images]
        fresh: dict[bytes, torch.Tensor] = {}
        missing = [i for i, k in enumerate(keys) if k not in self._features]
        if missing:
            with torch.no_grad():
                computed = self._forward(images[missing])[self.key]
            for row, i in enumerate(missing):
                fresh[keys[i]] = feature = computed[row].clone()
                size = feature.numel() * feature.element_size()
                if keys[i] not in self._features and self.stats.stored_bytes + size <= self.max_bytes:
                    self._features[keys[i]] = feature
                    self.stats.stored_bytes += size
        self.stats.hits += len(keys) - len(missing)
        self.stats.misses += len(missing)
        return {self.key: torch.stack([fresh[k] if k in fresh else self._features[k] for k in keys])}

    def attach(self) -> FrozenBackboneCache:
        """Route the backbone module's calls through this cache (undo with `detach`)."""
        self.backbone.forward = self
        return self

    def detach(self) -> None:
        self.backbone.__dict__.pop("forward", None)


def cache_frozen_backbone(policy, max_bytes: int = DEFAULT_MAX_BYTES) -> FrozenBackboneCache | None:
    """Attach a cache to an ACT policy's backbone when it is frozen; None (nothing done) otherwise."""
    backbone = getattr(getattr(policy, "model", None), "backbone", None)
    if backbone is None or any(p.requires_grad for p in backbone.parameters()):
        return None
    cache = FrozenBackboneCache(backbone, max_bytes=max_bytes).attach()
    log.info("frozen backbone: feature maps cached by image (up to %d MiB)", max_bytes >> 20)
    return cache
