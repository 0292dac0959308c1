"""replay's ROS-free core: actions by joint name, units, window timing and stamps, state error."""

import math
import os

import numpy as np
import pytest

from soarm_act_policy.joints import JOINT_NAMES
from soarm_act_policy.replay.core import (ReplayError, ReplayResult, Timeline, WindowSchedule, feature_names,
                                          format_table, guess_units, joint_columns, lead_in_time, load_dataset,
                                          make_window, state_error, summarize)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")
SHUFFLED = ("gripper", "elbow_flex", "shoulder_pan", "wrist_roll", "shoulder_lift", "wrist_flex")


def test_joint_columns_by_name():
    names = [f"{j}.pos" for j in SHUFFLED] + ["extra_motor.pos"]
    cols = joint_columns(names)
    assert [names[c] for c in cols] == [f"{j}.pos" for j in JOINT_NAMES]
    assert list(joint_columns(list(JOINT_NAMES))) == list(range(6))  # bare names too
    assert feature_names({"names": {"motors": list(SHUFFLED)}}) == list(SHUFFLED)  # older LeRobot layout
    assert feature_names({"names": None}) == []
    with pytest.raises(ReplayError, match=r"no column for joints \['gripper'\]"):
        joint_columns([f"{j}.pos" for j in JOINT_NAMES[:5]])


def test_units_guess():
    rad = np.array([[0.1, -1.2, 1.3, 1.0, 0.0, 0.3]])
    assert guess_units(rad, ours=False)[0] == "radians"
    assert guess_units(rad * 180 / math.pi, ours=False)[0] == "lerobot_degrees"
    assert guess_units(rad * 180 / math.pi, ours=True)[0] == "radians"  # written by bag_to_lerobot


def test_windows_are_stamped_when_their_first_point_is_due():
    fps, n = 30.0, 100
    actions = np.arange(n)[:, None] * np.ones((1, 6)) * 0.01
    tl = Timeline(origin=50.0, fps=fps, frames=n)
    w = make_window(actions, tl, 10, 30)
    assert w.stamp == pytest.approx(50.0 + 10 / fps)
    np.testing.assert_allclose(w.times_from_start, np.arange(30) / fps, atol=1e-12)
    np.testing.assert_allclose(w.positions, actions[10:40])
    end = make_window(actions, tl, 90, 30)  # clipped at the last frame
    assert len(end.positions) == 10 and end.end_time == pytest.approx(tl.end)
    assert tl.next_due(50.0) == 1 and tl.next_due(49.0) == 0 and tl.next_due(50.0 + 5.5 / fps) == 6
    assert tl.next_due(1e9) == n


def test_schedule_never_lets_the_published_trajectory_run_out():
    """Polled every 2 ms of a clock: windows every period, each from the next due frame,
    and at every moment the published trajectory reaches past the next publication."""
    fps, n, period, size = 30.0, 200, 0.1, 30
    actions = np.random.default_rng(0).normal(size=(n, 6))
    tl = Timeline(origin=12.34, fps=fps, frames=n)
    schedule = WindowSchedule(actions, tl, size, period)
    t = tl.origin + 0.004  # the first poll comes a little after frame 0 is due
    sent = []
    while not schedule.finished and t < tl.end + 1:
        w = schedule.poll(t)
        if w is not None:
            sent.append((t, w))
        t += 0.002
    assert schedule.finished
    first_t, first = sent[0]
    assert first.first == 0 and first.stamp == pytest.approx(tl.origin)  # frame 0, even if just past
    for (t_pub, w), nxt in zip(sent, sent[1:] + [(None, None)]):
        assert w.stamp == pytest.approx(tl.time(w.first), abs=1e-9)  # stamped at its first point's due time
        np.testing.assert_allclose(w.times_from_start, np.arange(len(w.positions)) / fps, atol=1e-9)
        np.testing.assert_allclose(w.positions, actions[w.first:w.first + len(w.positions)])
        if w is not first:
            assert t_pub < w.stamp <= t_pub + 1 / fps + 1e-9  # the next frame due after now
        if nxt[0] is not None:
            assert nxt[0] - t_pub == pytest.approx(period, abs=0.0025)
            # covers well past the next publication (or to the episode's last frame)
            assert w.end_time >= min(nxt[0] + 0.5, tl.end - 1e-9)
    # the last windows reach the last frame; publishing stops with < 2 frames ahead
    assert sent[-1][1].first + len(sent[-1][1].positions) == n
    assert tl.frames - tl.next_due(sent[-1][0] + period) < 2
    # frames played: every frame is in some window at its due time
    covered = set()
    for _, w in sent:
        covered.update(range(w.first, w.first + len(w.positions)))
    assert covered == set(range(n))


def test_lead_in_moves_to_the_first_frame_first():
    actions = np.full((50, 6), 0.5)
    assert lead_in_time(np.full(6, 0.49), actions[0], 0.5, 0.05) == 0.0
    lead = lead_in_time(np.zeros(6), actions[0], 0.5, 0.05)
    assert lead == pytest.approx(1.0)
    # time the recording already had before its first frame counts
    assert lead_in_time(np.zeros(6), actions[0], 0.5, 0.05, available=0.6) == pytest.approx(0.4)
    assert lead_in_time(np.zeros(6), actions[0], 0.5, 0.05, available=2.0) == 0.0
    t_started = 3.0
    tl = Timeline(t_started + lead, 30.0, 50)
    schedule = WindowSchedule(actions, tl, 30, 0.1, first_stamp=t_started)
    w = schedule.poll(t_started + 0.01)
    assert w.stamp == t_started and w.times_from_start[0] == pytest.approx(lead)
    assert np.all(np.diff(w.times_from_start) > 0)


def test_state_error_resamples_on_frame_times():
    frame_t = 10.0 + np.arange(60) / 30.0
    recorded = np.stack([np.sin(frame_t + j) for j in range(6)], axis=1)
    t = 10.0 + np.arange(-3, 130) / 60.0 + 0.004  # replayed at 60 Hz, other phase
    q = np.stack([np.sin(t + j) for j in range(6)], axis=1)
    err = state_error(frame_t, recorded, t, q)
    assert err.frames == 60 and max(err.rms) < 1e-4  # linear interpolation of a smooth curve
    q[:, 2] += 0.01
    err = state_error(frame_t, recorded, t, q)
    assert err.rms[2] == pytest.approx(0.01, abs=1e-4) and err.max_abs[2] == pytest.approx(0.01, abs=1e-4)
    assert state_error(frame_t, recorded, t[:40], q[:40]).frames < 60  # only frames inside the samples
    assert state_error(frame_t, recorded, [], []) is None


def test_report_and_table():
    from soarm_act_policy.replay.core import ReplayDataset

    rs = [ReplayResult(0, 100, success=True, time_to_success=9.4, stages=15, state_rms=[0.01] * 6,
                       state_max_abs=[0.02] * 6, state_frames=300, recorded_outcome="success"),
          ReplayResult(1, 101, stages=3, state_rms=[0.03] * 6, state_max_abs=[0.05] * 6, state_frames=100),
          ReplayResult(2, -1, error="reset failed: x")]
    rep = summarize(rs, ReplayDataset("r", "/x", 30.0, "radians", "test", []), {})
    assert rep["successes"] == 1 and rep["errors"] == 1 and rep["recorded_successes"] == 1
    assert rep["stage_counts"] == {"reached": 2, "grasped": 2, "placed": 1, "released": 1}
    assert rep["state_rms"]["gripper"] == pytest.approx(math.sqrt((0.01**2 * 300 + 0.03**2 * 100) / 400), abs=1e-6)
    assert rep["episodes"][0]["stage_names"] == ["reached", "grasped", "placed", "released"]
    assert rep["episodes"][0]["state_rms"]["shoulder_pan"] == 0.01
    table = format_table(rs)
    assert "success" in table and "ERROR" in table and "  10.0" in table


# ---------------------------------------------------------------------------- datasets
def _foreign_dataset(root, degrees: bool):
    """A LeRobot dataset as LeRobot's own SO-101 recording makes it: joints in another
    order, degrees and gripper 0..100, no soarm columns."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    names = [f"{j}.pos" for j in SHUFFLED]
    feats = {k: {"dtype": "float32", "shape": (6,), "names": names} for k in ("action", "observation.state")}
    ds = LeRobotDataset.create("someone/so101_data", fps=10, features=feats, root=root, robot_type="so101_follower",
                               use_videos=False)
    rad = np.array([[0.1 * k, -0.2, 0.3, 0.4, -0.5 + 0.01 * k, 0.2 + 0.05 * k] for k in range(12)])  # JOINT_NAMES order
    from soarm_act_policy.units import JointUnits

    vals = JointUnits("lerobot_degrees").to_policy(rad) if degrees else rad
    order = [JOINT_NAMES.index(j) for j in SHUFFLED]
    for ep in range(2):
        for k in range(12):
            row = (vals[k] + ep)[order] if not degrees else vals[k][order]
            ds.add_frame({"action": row.astype(np.float32), "observation.state": row.astype(np.float32),
                          "task": "stack"})
        ds.save_episode()
    ds.finalize()
    return rad


def test_load_a_lerobot_degrees_dataset(tmp_path):
    rad = _foreign_dataset(tmp_path / "ds", degrees=True)
    d = load_dataset("someone/so101_data", tmp_path / "ds", [1])
    assert d.units == "lerobot_degrees" and d.fps == 10 and d.total_episodes == 2
    (ep,) = d.episodes
    assert ep.index == 1 and ep.seed == -1 and ep.task == "stack" and ep.frames == 12
    np.testing.assert_allclose(ep.actions, rad, atol=1e-4)  # mapped by name, back in radians
    np.testing.assert_allclose(ep.states, rad, atol=1e-4)
    with pytest.raises(ReplayError, match="do not exist"):
        load_dataset("someone/so101_data", tmp_path / "ds", [5])


def test_load_our_dataset_with_seeds(tmp_path):
    from soarm_act_policy.bags.synthetic import DemoSpec, write_demo_bag
    from soarm_act_policy.conversion import convert

    spec = DemoSpec(duration=2.0, t0=100.0, episodes=[(0.1, 0.9, "pick"), (1.0, 1.9, "place")], seeds=(7, 8),
                    cameras=("front",))
    write_demo_bag(tmp_path / "bags" / "a", spec)
    result = convert([tmp_path / "bags"], "soarm_test/replay", tmp_path / "ds")
    d = load_dataset("soarm_test/replay", tmp_path / "ds")
    assert d.units == "radians" and [e.seed for e in d.episodes] == [7, 8]
    assert [e.task for e in d.episodes] == ["pick", "place"]
    for ep, converted in zip(d.episodes, result.episodes):
        np.testing.assert_allclose(ep.actions, converted.action, atol=1e-6)
        np.testing.assert_allclose(ep.states, converted.state, atol=1e-6)
        assert ep.start_offset_s == pytest.approx(converted.start_offset_s)
