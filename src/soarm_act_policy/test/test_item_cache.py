"""The sample memo returns exactly what the LeRobot video dataset returns, decoding each sample once."""

from __future__ import annotations

import pickle

import torch

from soarm_act_policy.training.item_cache import DecodedOnce, wrap


def video_dataset(root, delta_timestamps=None, image_transforms=None):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from soarm_act_policy.training.synthetic import make_synthetic_dataset

    if not root.exists():
        make_synthetic_dataset(root, repo_id="local/memo", episodes=2, frames=12, width=64, height=48)
    return LeRobotDataset("local/memo", root=root, delta_timestamps=delta_timestamps,
                          image_transforms=image_transforms)


def assert_same_sample(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_memo_equals_the_dataset_and_decodes_each_sample_once(tmp_path):
    plain = video_dataset(tmp_path / "ds", delta_timestamps={"action": [i / 30 for i in range(5)]})
    memo = wrap(video_dataset(tmp_path / "ds", delta_timestamps={"action": [i / 30 for i in range(5)]}))
    assert isinstance(memo, DecodedOnce) and set(memo.image_keys) == set(plain.meta.camera_keys)
    decoded = []
    inner = memo.dataset.__class__.__getitem__
    memo.dataset.__class__ = type("Counting", (memo.dataset.__class__,),
                                  {"__getitem__": lambda s, i: (decoded.append(i), inner(s, i))[1]})
    for _ in range(2):  # two epochs
        for i in (0, 5, 13, 23):
            assert_same_sample(memo[i], plain[i])
    assert decoded == [0, 5, 13, 23] and memo.hits == 4
    key = plain.meta.camera_keys[0]
    assert memo._items[5][key].pixels.dtype == torch.uint8  # stored compactly
    got = memo[5]
    got[key].zero_()  # a caller changing its sample does not change the memo
    assert_same_sample(memo[5], plain[5])
    # what LeRobot reads from the dataset passes through; a spawned worker gets a working copy
    assert memo.num_frames == plain.num_frames and memo.meta.camera_keys == plain.meta.camera_keys
    assert len(memo) == len(plain)
    fresh = wrap(video_dataset(tmp_path / "ds", delta_timestamps={"action": [i / 30 for i in range(5)]}))
    fresh[13]
    clone = pickle.loads(pickle.dumps(fresh))
    assert_same_sample(clone[13], plain[13])
    assert clone.hits == 1


def test_uint8_frames_stay_uint8(tmp_path):
    """A dataset that returns uint8 frames (LeRobot's return_uint8) gets them back as uint8, not / 255."""
    ds = video_dataset(tmp_path / "ds")
    key = ds.meta.camera_keys[0]

    class Uint8Frames(torch.utils.data.Dataset):
        meta = ds.meta

        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            item = dict(ds[i])
            item[key] = (item[key] * 255).round().to(torch.uint8)
            return item

    memo = wrap(Uint8Frames())
    first, again = memo[3], memo[3]
    assert again[key].dtype == torch.uint8 and torch.equal(first[key], again[key]) and memo.hits == 1


def test_budget_and_augmentation(tmp_path):
    ds = video_dataset(tmp_path / "ds")
    one = DecodedOnce(ds, ds.meta.camera_keys)
    one[0]
    per_sample = one.stored_bytes
    small = DecodedOnce(ds, ds.meta.camera_keys, max_bytes=2 * per_sample)
    for i in range(4):
        small[i]
    assert small.stored_bytes == 2 * per_sample and sorted(small._items) == [0, 1]

    from torchvision.transforms import v2

    augmented = video_dataset(tmp_path / "ds", image_transforms=v2.ColorJitter(brightness=0.5))
    assert wrap(augmented) is augmented  # samples differ every time: nothing to memoise
