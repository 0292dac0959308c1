"""Unit tests of the evaluation report (ROS-free): stats, JSON, PNG."""

import json

import pytest

from soarm_act_policy.evaluation.report import (
    STAGES, EpisodeResult, format_stage_rates, latency_stats, stage_names, stage_rates, summarize, write_json,
    write_plot,
)

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def test_latency_stats():
    s = latency_stats([0.03, 0.01, float("nan"), 0.02, 0.04, None])
    assert s["count"] == 4
    assert s["mean"] == pytest.approx(0.025) and s["median"] == pytest.approx(0.025) and s["max"] == 0.04
    assert 0.035 < s["p95"] <= 0.04
    assert latency_stats([]) == {"count": 0}


def episodes():
    a = EpisodeResult(index=0, seed=1000, episode_index=3, success=True, time_to_success=4.5, duration=4.6,
                      skipped={"stale": 1, "missing": 0, "no_action": 2}, control_steps=138, stages=15,
                      trajectory_t=[0.0, 0.5, 1.0], trajectory_q=[[0.0] * 6, [0.1] * 6, [0.2] * 6])
    b = EpisodeResult(index=1, seed=1001, episode_index=4, success=False, duration=10.0,
                      skipped={"stale": 0, "missing": 3, "no_action": 0}, stages=1)
    return [a, b]


def test_summary_counts_and_json(tmp_path):
    eps = episodes()
    rep = summarize(eps, [0.05, 0.06], {"num_episodes": 2})
    assert rep["successes"] == 1 and rep["success_rate"] == 0.5 and rep["mean_time_to_success"] == 4.5
    assert rep["skipped_total"] == {"stale": 1, "missing": 3, "no_action": 2}
    assert rep["episodes"][0]["seed"] == 1000 and "trajectory_t" not in rep["episodes"][0]
    path = write_json(rep, tmp_path / "out" / "eval_report.json")
    back = json.loads(path.read_text())
    assert back["episodes"][1]["success"] is False and back["latency"]["count"] == 2
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["eval_report.json"]  # no temp files left
    assert back["stage_rates"] == {"reached": 1.0, "grasped": 0.5, "placed": 0.5, "released": 0.5}
    assert back["stage_episodes"] == 2
    assert back["episodes"][0]["stages"] == 15 and back["episodes"][1]["stage_names"] == ["reached"]


def test_stage_bits_equal_the_episode_event_constants():
    msg = pytest.importorskip("soarm_msgs.msg", reason="soarm_msgs not built (colcon build)")
    E = msg.EpisodeEvent
    assert dict(STAGES) == {"reached": E.STAGE_REACHED, "grasped": E.STAGE_GRASPED,
                            "placed": E.STAGE_PLACED, "released": E.STAGE_RELEASED}


def test_stage_rates_over_known_episodes_only():
    assert stage_names(None) == [] and stage_names(6) == ["grasped", "placed"]
    assert stage_rates([None, None]) is None and format_stage_rates(None) == "unknown"
    rates = stage_rates([1, 3, None, 0])  # None (unknown) does not count
    assert rates == pytest.approx({"reached": 2 / 3, "grasped": 1 / 3, "placed": 0.0, "released": 0.0})
    assert format_stage_rates(rates) == "reached 67 %, grasped 33 %, placed 0 %, released 0 %"
    rep = summarize([EpisodeResult(index=0, seed=1)], [], {})  # a driver without stages (mock, real arm)
    assert rep["stage_rates"] is None and rep["stage_episodes"] == 0


def test_summary_of_nothing():
    rep = summarize([], [], {})
    assert rep["success_rate"] == 0.0 and rep["mean_time_to_success"] is None and rep["stage_rates"] is None


def test_plot_is_png(tmp_path):
    path = write_plot(episodes(), [0.05, 0.07, 0.06], JOINTS, tmp_path / "eval_report.png", title="t")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
