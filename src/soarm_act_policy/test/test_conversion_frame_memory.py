"""conversion.frame_memory: pass 1's images feed the encoder within a memory budget, so a bag is
read once; the dataset is the same as reading every bag twice."""

import importlib
import json
import os
import threading
import time

import pandas as pd
import pytest

from soarm_act_policy.bags.synthetic import DemoSpec, write_demo_bag
from soarm_act_policy.conversion import Options, convert
from soarm_act_policy.conversion.frame_memory import FrameMemory, KeptFrames

os.environ.setdefault("HF_HUB_OFFLINE", "1")
videos = importlib.import_module("soarm_act_policy.conversion.videos")


def test_keeping_waits_for_other_bags_and_gives_up_on_what_never_fits():
    memory = FrameMemory(100)
    first, second = KeptFrames(memory), KeptFrames(memory)
    first.keep("front", b"x" * 60)
    first.keep("wrist", b"y" * 30)
    assert memory.used == 90 and first.complete
    kept_at = []

    def keep_second():
        second.keep("front", b"z" * 40)  # waits: 90 + 40 > 100
        kept_at.append(time.monotonic())

    t = threading.Thread(target=keep_second)
    t.start()
    time.sleep(0.2)
    assert not kept_at, "kept beyond the budget"
    freed_at = time.monotonic()
    first.free("front", 0)  # what the first bag's job does after the image's last step
    t.join(5)
    assert kept_at and kept_at[0] >= freed_at and memory.used == 70
    assert second.take("front", 0) == b"z" * 40
    with pytest.raises(RuntimeError, match="after it was freed"):
        first.take("front", 0)
    first.drop()
    second.keep("front", b"w" * 70)  # 110 bytes for one bag: never fits, so it keeps nothing
    assert not second.complete and second.raw == {} and memory.used == 0
    second.keep("front", b"v")  # nor anything after
    assert memory.used == 0


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    d = tmp_path_factory.mktemp("bags")
    for i in range(3):  # ~0.3, 0.4, 0.5 MB of images each
        write_demo_bag(d / f"episode_{i}", DemoSpec(duration=0.6 + 0.2 * i, t0=100.0 + 10 * i, height=48, width=64))
    return d


def _dataset(root):
    data = pd.concat([pd.read_parquet(f) for f in sorted((root / "data").rglob("*.parquet"))], ignore_index=True)
    stats = json.loads((root / "meta/stats.json").read_text())
    mp4 = {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.mp4"))}
    return data, stats, mp4


@pytest.mark.parametrize("budget_mb,reads_again", [(1, False), (0, True)])
def test_kept_images_write_the_dataset_that_reading_twice_writes(bags, tmp_path, monkeypatch, budget_mb,
                                                                 reads_again):
    """1 MB holds two of the three bags' images, not all three: keeping the third waits for the
    first bag's job to free images (unless it already has), and no bag is read a second time.
    0: every bag is read twice, as the reference (two worker processes) always does."""
    second_reads = []
    read_again = videos.iter_frames
    monkeypatch.setattr(videos, "iter_frames", lambda eps, *a: second_reads.append(eps[0].bag) or read_again(eps, *a))
    opts = Options(task="t", vcodec="h264")
    kept = convert([bags], "t/kept", tmp_path / "kept", opts, log=lambda s: None, frame_memory_mb=budget_mb)
    assert len(second_reads) == (3 if reads_again else 0), second_reads
    reference = convert([bags], "t/ref", tmp_path / "ref", opts, log=lambda s: None, workers=2)  # reads twice
    assert kept.written_frames == reference.written_frames > 0
    (data, stats, mp4), (ref_data, ref_stats, ref_mp4) = _dataset(tmp_path / "kept"), _dataset(tmp_path / "ref")
    pd.testing.assert_frame_equal(data, ref_data)
    assert stats == ref_stats and mp4 == ref_mp4 and len(mp4) == 2


def test_a_bag_larger_than_the_budget_is_read_again(tmp_path, monkeypatch):
    bag = tmp_path / "big"
    write_demo_bag(bag, DemoSpec(duration=0.5, t0=100.0, height=240, width=320))  # ~3.5 MB of images
    second_reads = []
    read_again = videos.iter_frames
    monkeypatch.setattr(videos, "iter_frames", lambda eps, *a: second_reads.append(eps[0].bag) or read_again(eps, *a))
    result = convert([bag], "t/big", tmp_path / "ds", Options(task="t", vcodec="h264"), log=lambda s: None,
                     frame_memory_mb=1)
    assert second_reads == [bag] and result.written_frames > 0
