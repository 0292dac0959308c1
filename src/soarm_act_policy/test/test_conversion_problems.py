"""Bad recordings: clear errors naming bag and topic, nothing left behind; the quality report
and the --on-problem policies; atomic output when writing fails."""

import json
import os

import numpy as np
import pytest

from soarm_act_policy.bags import BagWriter
from soarm_act_policy.bags.synthetic import DemoSpec, joint_value, stamps, write_demo_bag
from soarm_act_policy.conversion import ConversionError, Options, convert
from soarm_act_policy.conversion.convert import scan

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")
REPO = "soarm_test/problems"


def assert_nothing_written(tmp_path, root):
    assert not root.exists()
    assert not root.parent.exists() or not [p for p in root.parent.iterdir() if p.name.startswith(f".{root.name}")]


def _rename_joint(topic, msg):
    if topic == "/joint_states":
        msg.name = ["elbow" if n == "elbow_flex" else n for n in msg.name]
    return msg


def _encoding(topic, msg):
    if topic == "/cameras/wrist/image_raw":
        msg.encoding = "yuv422"
    return msg


def _backwards():
    swapped = {}

    def tf(topic, msg):
        if topic == "/joint_commands":
            k = len(swapped)
            swapped[k] = msg
            if k == 20:  # stamp of message 20 goes back before message 19
                msg.header.stamp.nanosec = max(0, msg.header.stamp.nanosec - 30_000_000)
        return msg
    return tf


def _nan(topic, msg):
    if topic == "/joint_states" and msg.header.stamp.nanosec // 100_000_000 == 5:
        msg.position = msg.position.copy()
        msg.position[2] = np.nan
    return msg


def _drop_wrist(topic, msg):
    return None if topic == "/cameras/wrist/image_raw" else msg


def _unstamped(topic, msg):
    if topic == "/joint_commands":
        msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
    return msg


CASES = {
    "unstamped": (_unstamped, {}, ["/joint_commands", "does not stamp"]),
    "unknown_encoding": (_encoding, {}, ["/cameras/wrist/image_raw", "yuv422"]),
    "joint_names": (_rename_joint, {}, ["/joint_states", "elbow_flex"]),
    "backwards": (_backwards(), {}, ["/joint_commands", "backwards"]),
    "nan": (_nan, {}, ["/joint_states", "NaN"]),
    "missing_camera": (_drop_wrist, {"cameras": ("front", "wrist")}, ["/cameras/wrist/image_raw", "missing"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_recording_fails_clearly_and_writes_nothing(tmp_path, case):
    tf, opt, words = CASES[case]
    good = write_demo_bag(tmp_path / "good", DemoSpec(duration=1.0), custom_data={"soarm.task": "t"})
    bad = write_demo_bag(tmp_path / "bad", DemoSpec(duration=1.0), transform=tf,
                         custom_data={"soarm.task": "t"})
    root = tmp_path / "out" / "ds"
    with pytest.raises(ConversionError) as err:
        convert([good, bad], REPO, root, Options(**opt))
    msg = str(err.value)
    assert str(bad) in msg and str(good) not in msg
    for w in words:
        assert w in msg
    assert_nothing_written(tmp_path, root)


def test_empty_and_truncated_bags(tmp_path):
    empty = tmp_path / "empty"
    w = BagWriter(empty)
    w.add_topic("joint_states", "sensor_msgs/msg/JointState")
    w.close()
    trunc = write_demo_bag(tmp_path / "trunc", DemoSpec(duration=1.0))
    (f,) = trunc.glob("*.mcap")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    root = tmp_path / "ds"
    with pytest.raises(ConversionError, match=f"bag {empty}: the bag is empty"):
        convert([empty], REPO, root)
    with pytest.raises(ConversionError, match=f"bag {trunc}.*(corrupt|truncated)"):
        convert([trunc], REPO, root, Options(task="t"))
    with pytest.raises(ConversionError, match="nothing_here: does not exist"):
        convert([tmp_path / "nothing_here"], REPO, root)
    assert_nothing_written(tmp_path, root)


def test_no_task_is_an_error_unless_given(tmp_path):
    bag = write_demo_bag(tmp_path / "b", DemoSpec(duration=0.5))
    with pytest.raises(ConversionError, match="--task"):
        scan([bag], Options())
    (ep,) = scan([bag], Options(task="lift"))[0]
    assert ep.task == "lift" and ep.status == "planned"


def test_quality_report_fields(tmp_path):
    def tf(topic, msg):
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - 100.0
        if topic == "/joint_states" and 0.51 < t < 1.19:
            return None  # samples at 0.5 s and 1.2 s remain: a 0.7 s gap
        if topic == "/cameras/wrist/image_raw":
            msg.data = np.zeros_like(msg.data)  # frozen camera
        if topic == "/cameras/front/image_raw" and 0.3 < t < 0.32:
            return [msg, msg]  # one duplicated frame
        if topic == "/cameras/front/image_raw" and 1.5 < t < 1.6:
            return None  # 3 dropped frames
        return msg

    bag = write_demo_bag(tmp_path / "b", DemoSpec(duration=2.0), transform=tf)
    eps, failed, _ = scan([bag], Options(task="x", on_problem="warn", frozen_s=1.0))
    (ep,) = eps
    r = ep.report(30)
    js, front, wrist = (r["streams"][t] for t in ("/joint_states", "/cameras/front/image_raw",
                                                  "/cameras/wrist/image_raw"))
    assert js["largest_gap_s"] == pytest.approx(0.7, abs=1e-6)
    assert js["nan"] == 0 and js["missing_joints"] == [] and js["backwards"] == 0
    assert front["duplicated"] == 1 and front["dropped"] == 3 and front["frozen_frames"] == 0
    assert front["rate_hz"] == pytest.approx(30, rel=0.01)
    assert wrist["frozen_s"] == pytest.approx(2.0, abs=0.05)
    assert r["frames"] == len(ep.grid) and r["duration_s"] == pytest.approx(len(ep.grid) / 30)
    kinds = sorted((p["kind"], p["topic"]) for p in r["problems"])
    assert kinds == [("frozen_camera", "/cameras/wrist/image_raw"), ("gap", "/joint_states")]
    assert ep.status == "kept_with_warnings"
    eps, _, _ = scan([bag], Options(task="x", on_problem="skip", frozen_s=1.0))
    assert eps[0].status == "skipped"


def test_identical_frames_of_a_static_scene_are_not_a_frozen_camera(tmp_path):
    def tf(topic, msg):
        if topic == "/joint_states":
            msg.position = msg.position * 0 + 0.2  # the arm stands still ...
        if topic.startswith("/cameras/"):
            msg.data = msg.data * 0 + 7  # ... and a noise-free renderer shows the same image
        return msg

    bag = write_demo_bag(tmp_path / "b", DemoSpec(duration=2.0), transform=tf)
    (ep,) = scan([bag], Options(task="x", frozen_s=1.0))[0]
    front = ep.streams["/cameras/front/image_raw"]
    assert front["frozen_s"] == pytest.approx(2.0, abs=0.05) and front["frozen_joint_motion"] == 0.0
    assert ep.problems == [] and ep.status == "planned"


def test_state_hold_rule(tmp_path):
    spec = DemoSpec(duration=1.0, state_rate=20.0)
    bag = write_demo_bag(tmp_path / "b", spec)
    (ep,) = scan([bag], Options(task="x", state_rule="hold"))[0]
    st = stamps(spec.t0, spec.duration, spec.state_rate)
    for k, t in enumerate(ep.grid):
        s = max(s for s in st if s <= t)
        want = [joint_value(j, s * 1e-9 - spec.t0) for j in range(6)]
        np.testing.assert_allclose(ep.state[k], want, atol=2e-7)
    (lin,) = scan([bag], Options(task="x", state_rule="linear"))[0]
    assert np.abs(lin.state - ep.state).max() > 1e-3  # the rules really differ at 20 Hz


def test_skip_writes_the_good_episodes_and_reports_the_rest(tmp_path):
    good = write_demo_bag(tmp_path / "a_good", DemoSpec(duration=0.5))
    nan = write_demo_bag(tmp_path / "b_nan", DemoSpec(duration=1.0), transform=_nan)
    bad = write_demo_bag(tmp_path / "c_enc", DemoSpec(duration=0.5), transform=_encoding)
    root = tmp_path / "ds"
    result = convert([good, nan, bad], REPO, root, Options(task="x", on_problem="skip"))
    assert [e.status for e in result.episodes] == ["written", "skipped"]
    assert result.failed_bags[0]["bag"] == str(bad)
    report = json.loads((root / "quality_report.json").read_text())
    assert report["episodes"][1]["problems"][0]["kind"] == "nan"
    assert report["failed_bags"][0]["topic"] == "/cameras/wrist/image_raw"

    # a failure while writing leaves the existing dataset exactly as it was
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    original = LeRobotDataset.save_episode

    def failing(self, *a, **kw):
        raise OSError("disk full (injected)")

    LeRobotDataset.save_episode = failing
    try:
        with pytest.raises(OSError, match="injected"):
            convert([good], REPO, root, Options(task="x"), append=True)
        with pytest.raises(OSError, match="injected"):
            convert([good], REPO, tmp_path / "new", Options(task="x"))
    finally:
        LeRobotDataset.save_episode = original
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files
    assert_nothing_written(tmp_path, tmp_path / "new")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
