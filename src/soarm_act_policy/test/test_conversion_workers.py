"""bag_to_lerobot's parallel encoding: the dataset does not depend on --workers or on
skipping LeRobot's per-row image embedding; codec/preset choices reach the videos."""

import json
import os

import av
import numpy as np
import pandas as pd
import pytest

from soarm_act_policy.bags.synthetic import DemoSpec, write_demo_bag
from soarm_act_policy.conversion import ConversionError, Options, convert
from soarm_act_policy.conversion.cli import build_parser

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    d = tmp_path_factory.mktemp("bags")
    for i in range(3):  # three tiny episodes, one per bag, different lengths and contents
        write_demo_bag(d / f"episode_{i}", DemoSpec(duration=0.6 + 0.2 * i, t0=100.0 + 10 * i, height=48, width=64))
    return d


def _parquets(root, sub):
    files = sorted((root / sub).rglob("*.parquet"))
    assert files, f"no parquet under {root / sub}"
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_two_workers_write_the_same_dataset_as_one(bags, tmp_path):
    """workers=1 encodes in a thread of this process, workers=2 in two spawned processes."""
    opts = Options(task="t", vcodec="h264")
    one = convert([bags], "t/serial", tmp_path / "one", opts, log=lambda s: None, workers=1)
    two = convert([bags], "t/parallel", tmp_path / "two", opts, log=lambda s: None, workers=2)
    assert one.written_frames == two.written_frames > 0 and len(one.written) == len(two.written) == 3
    a, b = tmp_path / "one", tmp_path / "two"
    pd.testing.assert_frame_equal(_parquets(a, "data"), _parquets(b, "data"))
    pd.testing.assert_frame_equal(_parquets(a, "meta/episodes"), _parquets(b, "meta/episodes"))
    assert json.loads((a / "meta/stats.json").read_text()) == json.loads((b / "meta/stats.json").read_text())
    info_a, info_b = (json.loads((r / "meta/info.json").read_text()) for r in (a, b))
    assert info_a == info_b and info_a["total_frames"] == one.written_frames
    videos_a = sorted(p.relative_to(a) for p in a.rglob("*.mp4"))
    assert videos_a == sorted(p.relative_to(b) for p in b.rglob("*.mp4")) and len(videos_a) == 2
    for rel in videos_a:
        assert _frames(a / rel) == _frames(b / rel) == one.written_frames
        assert (a / rel).read_bytes() == (b / rel).read_bytes()  # libx264 is deterministic
    for result in (one, two):  # every stage's CPU time is counted, the worker processes' reading too
        assert all(s > 0 for s in result.cpu.seconds.values()), result.cpu.seconds
        assert "CPU s by stage: pass 1 " in result.summary()


def test_codec_and_preset_reach_the_videos(bags, tmp_path):
    convert([bags / "episode_0"], "t/h264", tmp_path / "ds", Options(task="t", vcodec="h264", preset="ultrafast"),
            log=lambda s: None)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    video = info["features"]["observation.images.front"]["info"]
    assert video["video.codec"] == "h264" and video["video.preset"] == "ultrafast"
    for codec in ("vp9", "hevc"):
        with pytest.raises(ConversionError, match="--vcodec"):
            convert([bags], "t/x", tmp_path / "bad", Options(task="t", vcodec=codec), log=lambda s: None)
    with pytest.raises(ConversionError, match="--preset"):
        convert([bags], "t/x", tmp_path / "bad", Options(task="t", vcodec="h264", preset="warp"), log=lambda s: None)
    with pytest.raises(ConversionError, match="--workers"):
        convert([bags], "t/x", tmp_path / "bad", Options(task="t"), log=lambda s: None, workers=0)
    args = build_parser().parse_args(["b", "--repo-id", "a/b", "--root", "r", "--vcodec", "h264", "--workers", "2",
                                      "--preset", "veryfast"])
    assert (args.vcodec, args.workers, args.preset) == ("h264", 2, "veryfast")


def test_skipped_image_embedding_is_an_identity_for_video_datasets():
    """The step skip_image_embedding leaves out returns the same table for our features."""
    import datasets
    from lerobot.datasets.feature_utils import get_hf_features_from_features
    from lerobot.datasets.io_utils import embed_images

    from soarm_act_policy.conversion.dataset import make_features

    features = make_features(Options(), {"front": (4, 6)})
    hf = get_hf_features_from_features(features)
    assert set(hf) == {"observation.state", "action"}  # cameras are videos: no image column
    rows = {k: [np.arange(6, dtype=np.float32) + i for i in range(3)] for k in hf}
    ds = datasets.Dataset.from_dict(rows, features=hf, split="train")
    embedded = embed_images(ds)
    assert embedded.features == ds.features
    assert embedded.with_format("arrow")[:].equals(ds.with_format("arrow")[:])


def test_image_stats_are_lerobots_to_the_bit():
    """videos.image_stats (the conversion's video statistics) equals LeRobot's get_feature_stats:
    values, dtypes and shapes, for full-range, narrow, constant and saturated channels, and for
    frames whose float32 sums pass 2**24 (LeRobot's means then round at every addition: the
    constant-200 frames' mean is 195.6, not 200)."""
    from lerobot.datasets.compute_stats import get_feature_stats

    from soarm_act_policy.conversion.videos import _axis0_sum_is_sequential, image_stats

    assert _axis0_sum_is_sequential()  # else image_stats is LeRobot's own function (slow path)
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (40, 3, 30, 40), dtype=np.uint8)
    saturated = full.copy()
    saturated[:, 1], saturated[:, 2] = 0, 255
    ramp = (np.arange(12 * 3 * 24 * 32) % 256).astype(np.uint8).reshape(12, 3, 24, 32)
    cases = [full, saturated, ramp, rng.integers(10, 13, (7, 3, 5, 9), dtype=np.uint8),
             np.full((3, 3, 4, 4), 200, np.uint8), np.zeros((2, 3, 1, 1), np.uint8),
             rng.integers(0, 256, (30, 3, 96, 128), dtype=np.uint8), np.full((30, 3, 96, 128), 200, np.uint8),
             rng.integers(0, 256, (4, 1, 5, 6), dtype=np.uint8), rng.integers(0, 256, (4, 4, 5, 6), dtype=np.uint8),
             rng.integers(0, 256, (1, 3, 4, 4), dtype=np.uint8)]  # one frame: LeRobot's own path
    for frames in cases:
        want = get_feature_stats(frames, axis=(0, 2, 3), keepdims=False)
        got = image_stats(frames)
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            np.testing.assert_array_equal(got[key], value, err_msg=f"{key} of {frames.shape}")


def test_cached_task_index_answers_as_lerobot(tmp_path):
    """dataset.cached_task_index: the same index as LeRobot's lookup, also for a task added
    after it was asked for (None is not remembered)."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    from soarm_act_policy.conversion.dataset import make_features, open_dataset

    opts = Options(task="t")
    ds = open_dataset("t/tasks", tmp_path / "ds", opts, make_features(opts, {"front": (4, 6)}), resume=False)
    meta = ds.meta
    meta.save_episode_tasks(["pick", "place"])
    for _ in range(2):
        assert [meta.get_task_index(t) for t in ("pick", "place", "stack")] == [
            LeRobotDatasetMetadata.get_task_index(meta, t) for t in ("pick", "place", "stack")] == [0, 1, None]
    meta.save_episode_tasks(["stack"])
    assert meta.get_task_index("stack") == LeRobotDatasetMetadata.get_task_index(meta, "stack") == 2
    ds.finalize()
