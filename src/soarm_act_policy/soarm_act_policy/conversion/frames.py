"""Second pass over a bag: the camera frames the episodes selected, in grid order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from ..bags import BagError, BagReader
from .episodes import BagEpisode
from .frame_memory import KeptFrames
from .images import parse_image, to_rgb


def iter_frames(episodes: list[BagEpisode], cameras: list[str], topics: dict[str, str]
                ) -> Iterator[tuple[BagEpisode, int, dict[str, np.ndarray]]]:
    """Yield (episode, frame k, {camera: HxWx3 uint8}) for every grid frame of `episodes` in order.

    `episodes` are of one bag, in time order; `topics` maps camera -> image topic.
    Frames are decoded once, only when selected, and dropped when no longer needed.
    """
    if not episodes:
        return
    bag_path = episodes[0].bag
    order, need, remaining = _selection(episodes, cameras)
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


def iter_kept_frames(episodes: list[BagEpisode], cameras: list[str], kept: KeptFrames
                     ) -> Iterator[tuple[BagEpisode, int, dict[str, np.ndarray]]]:
    """As iter_frames, from the images pass 1 kept (`kept.complete`) instead of the bag.

    Each image is freed after the last grid step that uses it (unused ones at once); whatever
    is left is freed when the iteration ends, also on an error.
    """
    try:
        if not episodes:
            return
        order, need, remaining = _selection(episodes, cameras)
        for c in cameras:
            for i in range(len(kept.raw.get(c, ()))):
                if not remaining[c].get(i):
                    kept.free(c, i)
        for g, (ep, k) in enumerate(order):
            images = {}
            for c in cameras:
                i = int(need[c][g])
                try:
                    images[c] = to_rgb(parse_image(kept.take(c, i)))
                except (ValueError, KeyError, IndexError) as exc:  # name bag and camera
                    raise BagError(ep.bag, f"cannot decode image {i} of camera {c}: {exc}") from exc
            yield ep, k, images
            for c in cameras:
                i = int(need[c][g])
                remaining[c][i] -= 1
                if remaining[c][i] == 0:
                    kept.free(c, i)
    finally:
        kept.drop()


def _selection(episodes: list[BagEpisode], cameras: list[str]) -> tuple[list, dict, dict]:
    """The grid steps in order [(episode, k)], per camera the image index of each step, and how
    many steps use each image."""
    order = [(p, k) for p in episodes for k in range(p.frames)]
    need = {c: np.concatenate([p.image_index[c] for p in episodes]) for c in cameras}
    return order, need, {c: Counter(need[c].tolist()) for c in cameras}
