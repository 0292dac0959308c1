"""bag_to_lerobot end to end on bags written here with rosbags (sqlite3 + MCAP).

Expected values are computed in this file from the closed-form signals of
`bags.synthetic`, independently of the conversion's alignment code.
"""

import json
import os

import numpy as np
import pytest

from soarm_act_policy.joints import JOINT_NAMES as JOINTS
from soarm_act_policy.bags.synthetic import DemoSpec, frame_image, joint_value, stamps, write_demo_bag
from soarm_act_policy.conversion import Options, convert
from soarm_act_policy.conversion.cli import main as cli_main

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")

REPO = "soarm_test/demo"
# Bag A (MCAP): two episodes delimited by episode_events. Bag B (sqlite3): no events,
# task from --task, joint names in a shuffled order.
SPEC_A = DemoSpec(duration=2.0, t0=100.0, episodes=[(0.1, 0.9, "pick the cube"), (1.0, 1.9, "place the cube")],
                  seeds=(11, 12), stages=(0, 7))
SHUFFLED = ("gripper", "elbow_flex", "shoulder_pan", "wrist_roll", "shoulder_lift", "wrist_flex")
SPEC_B = DemoSpec(duration=1.5, t0=300.0, joint_names=SHUFFLED)


def expected_episode(spec: DemoSpec, start: float | None, end: float | None, fps: int = 30):
    """Grid, state (linear), action (hold), image indices (newest not newer) by brute force."""
    def window(ts):
        lo = -np.inf if start is None else round((spec.t0 + start) * 1e9)
        hi = np.inf if end is None else round((spec.t0 + end) * 1e9)
        return [int(t) for t in ts if lo <= t <= hi]

    st = window(stamps(spec.t0, spec.duration, spec.state_rate))
    cm = window(stamps(spec.t0, spec.duration, spec.command_rate, 0.002))
    cams = {c: stamps(spec.t0, spec.duration, spec.camera_rate, spec.camera_phase * (k + 1))
            for k, c in enumerate(spec.cameras)}
    cams_w = {c: window(v) for c, v in cams.items()}
    t0 = max([st[0], cm[0]] + [v[0] for v in cams_w.values()])
    t1 = min([st[-1], cm[-1]] + [v[-1] for v in cams_w.values()])
    grid = []
    k = 0
    while True:
        t = t0 + round(k * 1e9 / fps)
        if t > t1:
            break
        grid.append(t)
        k += 1
    name_idx = [spec.joint_names.index(j) for j in JOINTS]
    state, action, imgs = [], [], {c: [] for c in spec.cameras}
    for t in grid:
        before = max(s for s in st if s <= t)
        after = min((s for s in st if s > t), default=None)
        va = np.array([joint_value(i, (before * 1e-9) - spec.t0) for i in name_idx])
        if after is None or before == t:
            state.append(va)
        else:
            vb = np.array([joint_value(i, (after * 1e-9) - spec.t0) for i in name_idx])
            w = (t - before) / (after - before)
            state.append(va + w * (vb - va))
        c_t = max(s for s in cm if s <= t)
        action.append([joint_value(i, c_t * 1e-9 - spec.t0, spec.command_offset) for i in name_idx])
        for c in spec.cameras:
            imgs[c].append(max(i for i, s in enumerate(cams[c]) if s <= t))
    return np.array(grid), np.array(state), np.array(action), imgs


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    d = tmp_path_factory.mktemp("bags")
    return write_demo_bag(d / "a_mcap", SPEC_A, "mcap"), write_demo_bag(d / "b_sqlite", SPEC_B, "sqlite3")


@pytest.fixture(scope="module")
def converted(bags, tmp_path_factory):
    root = tmp_path_factory.mktemp("out") / "ds"
    result = convert(list(bags), REPO, root, Options(task="wave"))
    return root, result


def load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(REPO, root=root)


def test_dataset_layout_and_metadata(converted):
    root, result = converted
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["robot_type"] == "so101_follower" and info["fps"] == 30
    names = [f"{j}.pos" for j in JOINTS]
    for key in ("observation.state", "action"):
        assert info["features"][key]["dtype"] == "float32"
        assert info["features"][key]["shape"] == [6] and info["features"][key]["names"] == names
    for cam in ("front", "wrist"):
        ft = info["features"][f"observation.images.{cam}"]
        assert ft["dtype"] == "video" and ft["shape"] == [48, 64, 3]
    assert [e.status for e in result.episodes] == ["written"] * 3
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_episodes_split_by_events_and_tasks(converted):
    root, result = converted
    ds = load(root)
    assert ds.meta.total_episodes == 3
    tasks = [ds[int(ds.meta.episodes[i]["dataset_from_index"])]["task"] for i in range(3)]
    assert tasks == ["pick the cube", "place the cube", "wave"]
    report = json.loads((root / "quality_report.json").read_text())
    assert [e["task"] for e in report["episodes"]] == tasks
    assert [e["ended_by"] for e in report["episodes"]] == ["ENDED", "ENDED", "end of bag"]


@pytest.mark.parametrize("ep,spec,window", [(0, SPEC_A, (0.1, 0.9)), (1, SPEC_A, (1.0, 1.9)),
                                            (2, SPEC_B, (None, None))])
def test_values_on_the_grid(converted, ep, spec, window):
    root, result = converted
    ds = load(root)
    grid, state, action, imgs = expected_episode(spec, *window)
    lo, hi = int(ds.meta.episodes[ep]["dataset_from_index"]), int(ds.meta.episodes[ep]["dataset_to_index"])
    assert hi - lo == len(grid)
    data = ds.hf_dataset.with_format("numpy")[lo:hi]
    np.testing.assert_allclose(np.stack(data["observation.state"]), state, atol=2e-7)
    np.testing.assert_allclose(np.stack(data["action"]), action, atol=2e-7)
    np.testing.assert_allclose(np.asarray(data["timestamp"]), np.arange(len(grid)) / 30, atol=1e-6)
    assert result.episodes[ep].report(30)["start_stamp_s"] == pytest.approx(grid[0] * 1e-9)


def test_images_equal_within_codec_tolerance(converted):
    root, _ = converted
    ds = load(root)
    for ep, spec, window in [(1, SPEC_A, (1.0, 1.9)), (2, SPEC_B, (None, None))]:
        _, _, _, imgs = expected_episode(spec, *window)
        lo = int(ds.meta.episodes[ep]["dataset_from_index"])
        n = len(imgs["front"])
        for k in sorted({0, 1, n // 2, n - 1}):
            item = ds[lo + k]
            for c, cam in enumerate(spec.cameras):
                got = (item[f"observation.images.{cam}"].numpy().transpose(1, 2, 0) * 255.0)
                want = frame_image(imgs[cam][k], c, spec.height, spec.width).astype(np.float32)
                err = np.abs(got - want).mean()
                assert err < 4.0, f"episode {ep} frame {k} {cam}: mean abs error {err:.2f}"
                # and it is closer to the selected frame than to its neighbours
                for other in (imgs[cam][k] - 1, imgs[cam][k] + 1):
                    if other >= 0:
                        o = frame_image(other, c, spec.height, spec.width).astype(np.float32)
                        assert np.abs(got - o).mean() > err + 5


def test_act_training_step_on_the_dataset(converted):
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    root, _ = converted
    meta = load(root).meta
    cfg = ACTConfig(chunk_size=4, n_action_steps=4, dim_model=32, n_heads=2, dim_feedforward=64,
                    n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8,
                    pretrained_backbone_weights=None, device="cpu")
    policy = make_policy(cfg, ds_meta=meta)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    ds = LeRobotDataset(REPO, root=root, delta_timestamps={"action": [i / 30 for i in range(4)]})
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True)))
    policy.train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    loss, _ = policy.forward(pre(batch))
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()


def test_seeds_in_the_episode_metadata(converted):
    """Each episode's scene seed (its STARTED event's), stages and start offset are columns of
    LeRobot's per-episode metadata, visible through LeRobotDataset."""
    from soarm_act_policy.conversion.episode_meta import read_episode_columns

    root, result = converted
    eps = load(root).meta.episodes
    assert [eps[i]["soarm/seed"] for i in range(3)] == [11, 12, -1]  # bag B has no events
    assert [eps[i]["soarm/stages"] for i in range(3)] == [0, 7, -1]
    cols = read_episode_columns(root)
    assert [cols[i]["soarm/seed"] for i in range(3)] == [11, 12, -1]
    assert cols[0]["tasks"] == ["pick the cube"] and cols[2]["soarm/outcome"] == ""
    grid0 = expected_episode(SPEC_A, 0.1, 0.9)[0][0]
    assert cols[0]["soarm/start_offset_s"] == pytest.approx(grid0 * 1e-9 - 100.1, abs=1e-9)
    assert 0 < cols[0]["soarm/start_offset_s"] < 0.04 and cols[2]["soarm/start_offset_s"] == 0.0
    report = [e for e in result.report()["episodes"]]
    assert [e["seed"] for e in report] == [11, 12, -1] and report[1]["stages"] == 7


def test_bag_recorded_before_the_seed_field(tmp_path):
    """EpisodeEvent without `seed`/`stages` (bags recorded before they existed) still converts:
    with the definition embedded in the bag, or, without one, the known earlier definition."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from soarm_act_policy.bags import open_bag
    from soarm_act_policy.bags.reader import LEGACY_DEFINITIONS
    from soarm_act_policy.bags.synthetic import T_EVENT, _header, demo_messages
    from soarm_act_policy.events import STARTED
    from soarm_act_policy.conversion.episode_meta import read_episode_columns

    old = get_typestore(Stores.ROS2_KILTED)
    old.register(get_types_from_msg(LEGACY_DEFINITIONS[T_EVENT][0], T_EVENT))
    spec = DemoSpec(duration=1.0, t0=50.0, episodes=[(0.1, 0.9, "old task")], cameras=("front",))
    # embedded old definition (MCAP, via our writer with the old typestore)
    from soarm_act_policy.bags import BagWriter

    with BagWriter(tmp_path / "bags" / "a", typestore=old) as w:
        for topic, typ, t, make in demo_messages(spec):
            msg = make()
            if typ == T_EVENT:
                msg = old.types[T_EVENT](header=_header(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec),
                                         episode_index=msg.episode_index, task=msg.task, kind=msg.kind,
                                         detail=msg.detail)
            w.add_topic(topic, typ)
            w.write(topic, t, msg)
    # no embedded definition at all (sqlite3): the legacy definition reads it
    raw = old.serialize_cdr(old.types[T_EVENT](header=_header(5), episode_index=2, task="x", kind=STARTED,
                                               detail=""), T_EVENT)
    wr = Writer(tmp_path / "nodef", version=9, storage_plugin=StoragePlugin.SQLITE3)
    wr.open()
    wr.write(wr.add_connection("/episode_events", T_EVENT, msgdef="", rihs01="none"), 5, raw)
    wr.close()
    with open_bag(tmp_path / "nodef") as bag:
        (m,) = list(bag.messages(["/episode_events"]))
    assert (m.msg.episode_index, m.msg.task, getattr(m.msg, "seed", -1)) == (2, "x", -1)

    result = convert([tmp_path / "bags"], REPO, tmp_path / "ds")
    (ep,) = result.episodes
    assert ep.status == "written" and ep.task == "old task" and ep.segment.seed == -1
    assert ep.segment.stages is None
    cols = read_episode_columns(tmp_path / "ds")
    assert cols[0]["soarm/seed"] == -1 and cols[0]["soarm/stages"] == -1


def test_cli_append_and_dry_run(bags, tmp_path, capsys):
    a, b = bags
    root = tmp_path / "ds"
    assert cli_main([str(a), "--repo-id", REPO, "--root", str(root), "--quiet"]) == 0
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert cli_main([str(b), "--repo-id", REPO, "--root", str(root), "--quiet", "--dry-run",
                     "--task", "wave"]) == 0
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # dry run wrote nothing
    out = capsys.readouterr().out
    assert "would write 1 episodes" in out and '"frames": 45' in out
    # appending to an existing dataset without --append is refused
    assert cli_main([str(b), "--repo-id", REPO, "--root", str(root), "--quiet", "--task", "w"]) == 1
    assert cli_main([str(b), "--repo-id", REPO, "--root", str(root), "--quiet", "--append", "--no-streaming-encoding",
                     "--task", "wave"]) == 0
    ds = load(root)
    assert ds.meta.total_episodes == 3 and ds.meta.total_frames == len(ds)
    # the appended episode (a new episode file) has the same per-episode columns
    assert [ds.meta.episodes[i]["soarm/seed"] for i in range(3)] == [11, 12, -1]
    report = json.loads((root / "quality_report.json").read_text())
    assert [e["dataset_episode_index"] for e in report["episodes"]] == [0, 1, 2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
