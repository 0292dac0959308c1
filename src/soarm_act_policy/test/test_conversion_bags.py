"""rosbags access: project typestore, sqlite3/MCAP reading, atomic MCAP writing (no ROS)."""

import numpy as np
import pytest

from soarm_act_policy.bags import BagError, BagWriter, find_msg_dir, make_typestore, open_bag
from soarm_act_policy.bags.synthetic import episode_event, joint_state, write_messages
from soarm_act_policy.events import ENDED, STARTED


def test_typestore_reads_soarm_msgs_from_msg_files():
    assert (find_msg_dir() / "EpisodeEvent.msg").exists()
    store = make_typestore()
    assert "soarm_msgs/msg/EpisodeEvent" in store.fielddefs
    assert "sensor_msgs/msg/Image" in store.fielddefs
    # the hash rclpy/rosidl computed for the generated type (install space) matches
    generated = find_msg_dir() / "EpisodeEvent.json"
    if generated.exists():
        assert store.hash_rihs01("soarm_msgs/msg/EpisodeEvent") in generated.read_text()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_with_episode_events(tmp_path, storage):
    msgs = [("/episode_events", "soarm_msgs/msg/EpisodeEvent", 10, episode_event(10, STARTED, 4, "lift")),
            ("/joint_states", "sensor_msgs/msg/JointState", 20, joint_state(20, ["a", "b"], [0.5, -1.0])),
            ("/episode_events", "soarm_msgs/msg/EpisodeEvent", 30, episode_event(30, ENDED, 4, "lift"))]
    path = write_messages(tmp_path / "bag", msgs, storage=storage, custom_data={"soarm.task": "lift"})
    with open_bag(path) as bag:
        assert bag.topics == {"/episode_events": "soarm_msgs/msg/EpisodeEvent",
                              "/joint_states": "sensor_msgs/msg/JointState"}
        assert bag.custom_data == {"soarm.task": "lift"}
        got = list(bag.messages(["episode_events", "/joint_states"]))
    assert [m.log_time_ns for m in got] == [10, 20, 30]
    assert [got[0].msg.kind, got[0].msg.task, got[0].msg.episode_index] == [STARTED, "lift", 4]
    assert got[2].msg.kind == ENDED
    np.testing.assert_array_equal(got[1].msg.position, [0.5, -1.0])
    assert list(got[1].msg.name) == ["a", "b"]


def test_writer_is_atomic(tmp_path):
    w = BagWriter(tmp_path / "bag")
    w.add_topic("joint_states", "sensor_msgs/msg/JointState")
    w.write("joint_states", 1, joint_state(1, ["a"], [1.0]))
    assert not (tmp_path / "bag").exists()  # written aside until closed
    w.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with BagWriter(tmp_path / "bag2") as w2:
            w2.add_topic("joint_states", "sensor_msgs/msg/JointState")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BagError, match="exists already"):
        (tmp_path / "x").mkdir()
        BagWriter(tmp_path / "x")


@pytest.mark.parametrize("storage,suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_truncated_file_is_a_clear_error(tmp_path, storage, suffix):
    msgs = [("/joint_states", "sensor_msgs/msg/JointState", t, joint_state(t, ["a"], [1.0]))
            for t in range(1, 200)]
    path = write_messages(tmp_path / "bag", msgs, storage=storage)
    (f,) = path.glob("*" + suffix)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as err:
        with open_bag(path) as bag:
            list(bag.messages(["joint_states"]))
    assert str(path) in str(err.value)


def test_missing_bag_and_topic_errors_name_them(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        open_bag(tmp_path / "nope")
    path = write_messages(tmp_path / "bag", [("/a", "sensor_msgs/msg/JointState", 1,
                                              joint_state(1, ["a"], [1.0]))])
    with open_bag(path) as bag, pytest.raises(BagError, match="topic /b"):
        list(bag.messages(["b"]))
