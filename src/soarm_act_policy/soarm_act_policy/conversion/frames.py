"""Second pass over a bag: the camera frames the episodes selected, in grid order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from ..bags import BagError, BagReader
from .images import parse_image, to_rgb
from .episodes import BagEpisode


def iter_frames(episodes: list[BagEpisode], cameras: list[str], topics: dict[str, str]
                ) -> Iterator[tuple[BagEpisode, int, dict[str, np.ndarray]]]:
    """Yield (episode, frame k, {camera: HxWx3 uint8}) for every grid frame of `episodes` in order.

    `episodes` are of one bag, in time order; `topics` maps camera -> image topic.
    Frames are decoded once, only when selected, and dropped when no longer needed.
    """
    if not episodes:
        return
    bag_path = episodes[0].bag
    order = [(p, k) for p in episodes for k in range(p.frames)]
    need = {c: np.concatenate([p.image_index[c] for p in episodes]) for c in cameras}
    remaining = {c: Counter(need[c].tolist()) for c in cameras}
    cache: dict[str, dict[int, np.ndarray]] = {c: {} for c in cameras}
    received = {c: 0 for c in cameras}
    cam_of = {topics[c]: c for c in cameras}
    g = 0
    with BagReader(bag_path) as bag:
        for m in bag.messages(list(cam_of), raw=True):
            c = cam_of[m.topic]
            i = received[c]
            received[c] += 1
            if remaining[c].get(i):
                try:
                    cache[c][i] = to_rgb(parse_image(m.raw))
                except Exception as exc:  # name bag and topic
                    raise BagError(bag_path, f"cannot decode image {i}: {exc}", topic=m.topic) from exc
            while g < len(order) and all(int(need[c][g]) in cache[c] for c in cameras):
                ep, k = order[g]
                yield ep, k, {c: cache[c][int(need[c][g])] for c in cameras}
                for c in cameras:
                    j = int(need[c][g])
                    remaining[c][j] -= 1
                    if remaining[c][j] == 0:
                        del cache[c][j]
                g += 1
    if g < len(order):
        raise BagError(bag_path, f"frames changed between reads: {len(order) - g} selected images "
                       "not found in the second pass")
