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
from pathlib import Path

from . import corrections
from .options import ROBOT_TYPE, ConversionError, Options

STATE, ACTION = "observation.state", "action"


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def make_features(opts: Options, camera_shapes: dict[str, tuple[int, int]], intervention: bool = False) -> dict:
    """LeRobot features: state/action float32 (J,) named `<joint>.pos`, one video per camera, and
    with `intervention` the per-frame bool (1,) `intervention` (conversion.corrections)."""
    names = [f"{j}.pos" for j in opts.joints]
    feats = {
        STATE: {"dtype": "float32", "shape": (len(names),), "names": names},
        ACTION: {"dtype": "float32", "shape": (len(names),), "names": names},
    }
    if intervention:
        feats[corrections.FEATURE] = dict(corrections.FEATURE_SPEC)
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

    With `opts.streaming_encoding` LeRobot's writer is set up for streamed videos (no PNG
    round trip); the caller replaces its encoder with `use_encoded_videos`. Otherwise
    frames are written as PNG files and LeRobot encodes each episode at save_episode.
    The encoder settings (`opts.video_settings()`) are recorded in meta/info.json.
    The returned object only writes: its video decoding backend is pyav, so LeRobot does not
    import torchcodec to pick one (~1 s per conversion here; the backend is not stored).
    Task indices are looked up once per task and episode instead of once per row
    (`cached_task_index`).
    """
    import datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    datasets.disable_progress_bars()  # a bar per parquet write of every episode; ours cover the work
    kw = dict(rgb_encoder=opts.video_settings().encoder_config(),
              image_writer_threads=0 if opts.streaming_encoding else image_writer_threads,
              streaming_encoding=opts.streaming_encoding, video_backend="pyav")
    if resume:
        ds = LeRobotDataset.resume(repo_id, root=work, **kw)
    else:
        ds = LeRobotDataset.create(repo_id, fps=opts.fps, features=features, root=work,
                                   robot_type=ROBOT_TYPE, use_videos=True, **kw)
    cached_task_index(ds.meta)
    return ds


def cached_task_index(meta) -> None:
    """Memoise `meta.get_task_index` (LeRobotDatasetMetadata) on this object.

    LeRobot's save_episode looks up the task index of every row (a pandas `.loc` each,
    ~0.1 ms) although an episode has one task. Tasks are only ever appended
    (save_episode_tasks), so an index once found never changes; unknown tasks (None) are
    not remembered. tests/test_conversion_workers.py checks the answers are LeRobot's.
    """
    lookup = meta.get_task_index
    found: dict[str, int] = {}

    def get_task_index(task: str) -> int | None:
        index = found.get(task)
        if index is None:
            index = lookup(task)
            if index is not None:
                found[task] = index
        return index

    meta.get_task_index = get_task_index


def use_encoded_videos(ds, videos):
    """Put `videos` (videos.EncodedVideos) in the place of the writer's streaming encoder."""
    writer = getattr(ds, "writer", None)
    if writer is None or not hasattr(writer, "_streaming_encoder"):
        raise ConversionError("this LeRobot version has no streaming video writer (ds.writer."
                              "_streaming_encoder); install the pinned lerobot (requirements.lock) or "
                              "run with --no-streaming-encoding")
    writer._streaming_encoder = videos
    return videos


@contextlib.contextmanager
def skip_image_embedding(features: dict):
    """While active, LeRobot's writer does not map episode rows through `embed_images`.

    LeRobot 0.6 passes every saved episode through `io_utils.embed_images`, a per-row
    `datasets.Dataset.map(embed_table_storage)` that only changes tables holding `image`
    features (it embeds the PNG bytes). Our datasets have none (cameras are videos), so
    it returns the same table, at ~4.5 ms per row here: more than encoding a 128x96 frame
    of both cameras. With image features (or another LeRobot layout) nothing is changed.
    tests/test_conversion_speed.py checks that the skipped step is an identity.
    """
    from lerobot.datasets import dataset_writer

    if any(ft.get("dtype") == "image" for ft in features.values()) or not hasattr(dataset_writer, "embed_images"):
        yield
        return
    original = dataset_writer.embed_images
    dataset_writer.embed_images = _same_table
    try:
        yield
    finally:
        dataset_writer.embed_images = original


def _same_table(dataset):
    return dataset

