"""The recorder's episode bookkeeping and topic list, without DDS."""

import importlib.util
from pathlib import Path

import pytest

from soarm_act_policy.bags import open_bag
from soarm_act_policy.bags.session import EpisodeRecorder
from soarm_act_policy.events import ENDED, RESET, STARTED, SUCCESS
from soarm_act_policy.bags.synthetic import episode_event, joint_state
from soarm_act_policy.bags.topics import load_topics

REPO = Path(__file__).resolve().parents[3]


def _raw(msg, typ):
    from soarm_act_policy.bags import make_typestore

    return make_typestore().serialize_cdr(msg, typ)


def test_bags_follow_episode_events_and_names_sort(tmp_path):
    (tmp_path / "episode_000041_20260101T000000Z").mkdir()  # an earlier session
    rec = EpisodeRecorder(tmp_path, {"joint_states": "sensor_msgs/msg/JointState",
                                     "episode_events": "soarm_msgs/msg/EpisodeEvent"})
    js = lambda t: _raw(joint_state(t, ["a"], [t * 1.0]), "sensor_msgs/msg/JointState")  # noqa: E731

    def ev(t, kind, idx, task=""):
        rec.on_event("/episode_events", t, _raw(episode_event(t, kind, idx, task), "soarm_msgs/msg/EpisodeEvent"),
                     kind=kind, episode_index=idx, task=task, stamp_ns=t)

    rec.on_message("/joint_states", 1, js(1))  # before any episode: not recorded
    ev(10, STARTED, 0, "pick")
    ev(10, STARTED, 0, "pick")  # transient-local re-delivery: ignored
    rec.on_message("/joint_states", 11, js(11))
    assert rec.recording is not None and not rec.recording.exists()  # written aside
    ev(12, SUCCESS, 0)
    ev(13, ENDED, 0)
    assert rec.recording is None
    ev(14, RESET, 1)
    rec.on_message("/joint_states", 15, js(15))  # between episodes: not recorded
    ev(16, STARTED, 1, "place")
    rec.on_message("/joint_states", 17, js(17))
    ev(18, STARTED, 2, "stack")  # closes episode 1
    rec.on_message("/joint_states", 19, js(19))
    rec.close_all("shutdown")
    names = sorted(p.name for p in rec.closed_bags)
    assert [n[:14] for n in names] == ["episode_000042", "episode_000043", "episode_000044"]
    assert sorted(p.name for p in tmp_path.iterdir())[1:] == names
    content = []
    for bag in sorted(rec.closed_bags):
        with open_bag(bag) as b:
            content.append([(m.topic, m.log_time_ns) for m in b.messages(["joint_states", "episode_events"])])
            assert b.custom_data["soarm.started_by"] == "episode_events"
    assert content == [[("/episode_events", 10), ("/joint_states", 11), ("/episode_events", 12),
                        ("/episode_events", 13)],
                       [("/episode_events", 16), ("/joint_states", 17)],
                       [("/episode_events", 18), ("/joint_states", 19)]]
    with open_bag(sorted(rec.closed_bags)[1]) as b:
        assert b.custom_data["soarm.task"] == "place" and b.custom_data["soarm.ended_by"] == "next episode"


def test_manual_start_stop_without_auto_record(tmp_path):
    rec = EpisodeRecorder(tmp_path, {"joint_states": "sensor_msgs/msg/JointState",
                                     "episode_events": "soarm_msgs/msg/EpisodeEvent"}, storage="sqlite3")
    assert rec.stop() is None
    path = rec.start(task="wave")
    raw = _raw(episode_event(5, ENDED, 0), "soarm_msgs/msg/EpisodeEvent")
    rec.on_event("/episode_events", 5, raw, kind=ENDED, episode_index=0, task="", stamp_ns=5,
                 auto_record=False)  # recorded, but not closing the bag: auto_record off
    assert rec.recording == path
    assert rec.stop() == path and path.exists() and list(path.glob("*.db3"))


def test_topic_list_is_shared_with_record_launch():
    topics = load_topics()
    assert [t.name for t in topics][:3] == ["joint_states", "joint_commands", "episode_events"]
    spec = importlib.util.spec_from_file_location("record_launch", REPO / "launch" / "record.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # no `launch` import at module level
    names = mod.topic_names(namespace="arm1")
    assert names == [f"/arm1/{t.name}" for t in topics]
    cmd = mod.record_command("out", names, use_sim_time=True)
    assert cmd[:7] == ["ros2", "bag", "record", "-s", "mcap", "-o", "out"]
    assert cmd[cmd.index("--topics") + 1:] == names and "--use-sim-time" in cmd


def test_bad_topic_file_is_a_clear_error(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("topics:\n  - name: joint_states\n")
    with pytest.raises(ValueError, match="needs 'name' and 'type'"):
        load_topics(f)


def test_lagging_recorder_files_messages_by_stamp(tmp_path):
    """Events handled before (or after) the data they enclose: bags still split by stamps."""
    now = [0.0]
    rec = EpisodeRecorder(tmp_path, {"joint_states": "sensor_msgs/msg/JointState",
                                     "episode_events": "soarm_msgs/msg/EpisodeEvent"},
                          close_timeout=5.0, clock=lambda: now[0])
    js = lambda t: rec.on_message("/joint_states", 1000 + t, _raw(joint_state(t, ["a"], [1.0]),  # noqa: E731
                                                                   "sensor_msgs/msg/JointState"))

    def ev(t, kind, idx):
        rec.on_event("/episode_events", 1000 + t, _raw(episode_event(t, kind, idx), "soarm_msgs/msg/EpisodeEvent"),
                     kind=kind, episode_index=idx, task="", stamp_ns=t)

    js(5)       # before the episode: pre-roll only
    js(12)      # stamped inside episode 0, handled before its STARTED (pre-roll)
    ev(10, STARTED, 0)
    ev(20, ENDED, 0)
    js(15)      # late: still goes to episode 0, which waits for it
    assert len(rec.closing) == 1 and not rec.closed_bags
    js(21)      # joint_states moved past the end ...
    assert len(rec.closing) == 1  # ... but episode_events has not yet
    ev(30, STARTED, 1)  # now it has: episode 0 closes
    assert len(rec.closed_bags) == 1
    js(31)
    ev(40, ENDED, 1)
    now[0] = 6.0  # episode_events never passes 40: the timeout closes episode 1
    rec.tick()
    assert len(rec.closed_bags) == 2
    stamps = []
    for bag in rec.closed_bags:
        with open_bag(bag) as b:
            stamps.append([(m.topic[1:2], m.msg.header.stamp.nanosec) for m in b.messages(["joint_states",
                                                                                           "episode_events"])])
    assert [sorted(s, key=lambda x: x[1]) for s in stamps] == [
        [("e", 10), ("j", 12), ("j", 15), ("e", 20)], [("e", 30), ("j", 31), ("e", 40)]]


def test_unknown_message_type_in_topic_list_is_refused(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("topics:\n  - {name: odd, type: my_pkg/msg/Odd}\n")
    with pytest.raises(ValueError, match="my_pkg/msg/Odd"):
        load_topics(f)
