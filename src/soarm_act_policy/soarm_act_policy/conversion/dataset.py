"""The LeRobot side: features, creating/resuming a dataset, atomic placement.

Datasets are written with LeRobot's own API (LeRobotDataset.create / resume,
add_frame, save_episode, finalize) into a staging directory beside `root` and moved
into place only when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .options import ROBOT_TYPE, ConversionError, Options

STATE, ACTION = "observation.state", "action"


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def make_features(opts: Options, camera_shapes: dict[str, tuple[int, int]]) -> dict:
    """LeRobot features: state/action float32 (J,) named `<joint>.pos`, one video per camera."""
    names = [f"{j}.pos" for j in opts.joints]
    feats = {
        STATE: {"dtype": "float32", "shape": (len(names),), "names": names},
        ACTION: {"dtype": "float32", "shape": (len(names),), "names": names},
    }
    for cam, (h, w) in sorted(camera_shapes.items()):
        feats[image_key(cam)] = {"dtype": "video", "shape": (h, w, 3),
                                 "names": ["height", "width", "channels"]}
    return feats


def check_compatible(root: Path, fps: int, features: dict) -> None:
    """Raise ConversionError when new episodes cannot be appended to the dataset at root."""
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise ConversionError(f"--append: {root} exists but is not a LeRobot dataset "
                              f"(no meta/info.json)")
    info = json.loads(info_path.read_text())
    if int(info.get("fps", -1)) != fps:
        raise ConversionError(f"--append: dataset {root} has fps {info.get('fps')}, conversion uses "
                              f"--fps {fps}")
    have = info.get("features", {})
    for key, ft in features.items():
        old = have.get(key)
        if old is None:
            raise ConversionError(f"--append: dataset {root} has no feature {key!r} "
                                  f"(it has {sorted(have)})")
        if tuple(old.get("shape", ())) != tuple(ft["shape"]) or old.get("dtype") != ft["dtype"] or (
                ft.get("names") and ft["dtype"] != "video" and old.get("names") != ft["names"]):
            raise ConversionError(f"--append: feature {key!r} differs: dataset has "
                                  f"{old.get('dtype')} {old.get('shape')} {old.get('names')}, "
                                  f"the bags give {ft['dtype']} {list(ft['shape'])} {ft.get('names')}")
    extra = [k for k, v in have.items() if v.get("dtype") == "video" and k not in features]
    if extra:
        raise ConversionError(f"--append: dataset {root} has cameras {extra} that the bags lack")


@contextlib.contextmanager
def staged_root(root: Path, append: bool):
    """Yield a work directory beside `root`; on success it replaces/creates `root`.

    New dataset: the work dir is renamed to root. Append: root is copied to the work
    dir, extended there, then the two are swapped. On any exception nothing under
    `root` changes and the staging directory is removed.
    """
    root = Path(root).absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{root.name}.converting-", dir=root.parent))
    work = stage / root.name
    try:
        if append and root.exists():
            shutil.copytree(root, work, symlinks=True)
        yield work
        if append and root.exists():
            old = stage / (root.name + ".previous")
            os.rename(root, old)
            try:
                os.rename(work, root)
            except BaseException:
                os.rename(old, root)
                raise
        else:
            if root.exists():
                raise ConversionError(f"{root} appeared while converting; not overwriting it")
            os.rename(work, root)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def open_dataset(repo_id: str, work: Path, opts: Options, features: dict, *, resume: bool,
                 image_writer_threads: int = 0):
    """LeRobotDataset in write mode at `work` (created, or resumed for appending).

    With `opts.streaming_encoding` frames go straight to LeRobot's video encoder threads
    (no PNG round trip, ~5x faster); `add_frame` below waits for room in the encoder
    queues so no frame is ever dropped, and `check_no_dropped_frames` verifies it.
    """
    import datasets
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    datasets.disable_progress_bars()  # a bar per parquet write of every episode; ours cover the work
    enc = RGBEncoderConfig(vcodec=opts.vcodec) if opts.vcodec else None
    kw = dict(rgb_encoder=enc, image_writer_threads=0 if opts.streaming_encoding else image_writer_threads,
              streaming_encoding=opts.streaming_encoding, encoder_queue_maxsize=ENCODER_QUEUE)
    if resume:
        return LeRobotDataset.resume(repo_id, root=work, **kw)
    return LeRobotDataset.create(repo_id, fps=opts.fps, features=features, root=work,
                                 robot_type=ROBOT_TYPE, use_videos=True, **kw)


#: Frames buffered per camera for the streaming encoder.
ENCODER_QUEUE = 30


def _streaming_encoder(ds):
    return getattr(getattr(ds, "writer", None), "_streaming_encoder", None)


def add_frame(ds, frame: dict) -> None:
    """ds.add_frame, first waiting while a streaming encoder queue is full (LeRobot would drop)."""
    enc = _streaming_encoder(ds)
    queues = getattr(enc, "_frame_queues", None) if enc is not None else None
    if queues and getattr(enc, "_episode_active", False):
        while any(q.full() for q in queues.values()):
            time.sleep(0.002)
    ds.add_frame(frame)


def check_no_dropped_frames(ds, episode: str) -> None:
    """Raise if LeRobot's streaming encoder dropped frames of the episode being saved."""
    enc = _streaming_encoder(ds)
    dropped = {k: v for k, v in (getattr(enc, "_dropped_frames", None) or {}).items() if v}
    if dropped:
        raise ConversionError(f"{episode}: the video encoder dropped frames {dropped}; nothing was "
                              "written. Run again with --no-streaming-encoding.")
