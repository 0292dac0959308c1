"""The driver node as a real process over DDS, mock backend."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from soarm_driver.robot import UPPER_LIMITS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: helpers beside us
from test_driver_helpers import JOINTS, Collector, SceneAfterReset, Status, start_driver, stamp_s, trajectory

pytestmark = pytest.mark.dds

UPPER = list(UPPER_LIMITS)


def positions(msg):
    by_name = dict(zip(msg.name, msg.position))
    return np.array([by_name[n] for n in JOINTS])


def now_s(ros):
    return ros.node.get_clock().now().nanoseconds * 1e-9


def publisher(ros):
    from trajectory_msgs.msg import JointTrajectory

    pub = ros.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
    ros.wait_for(lambda: pub.get_subscription_count() > 0, 20, what="driver's joint_trajectory subscription")
    time.sleep(0.5)  # our side matched first; give the driver's reader time to match us too
    return pub


def publish_until(ros, pub, msg, predicate, timeout: float, what: str, every: float = 0.25):
    """Publish `msg` every `every` s until predicate() holds (AssertionError naming `what` after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(msg)
        try:
            ros.wait_for(predicate, every, what=what)
            return
        except AssertionError:
            continue
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


def test_joint_states_names_rate_and_commands(start_node, ros_node):
    proc, states, commands = start_driver(start_node, ros_node)
    ros_node.wait_for(lambda: len(states) >= 40, 20, what="40 joint_states")
    msgs = states.snapshot()
    assert all(list(m.name) == JOINTS and len(m.position) == 6 and len(m.velocity) == 6 for m in msgs)
    # rate from the stamps (not from arrival times)
    stamps = np.array([stamp_s(m.header.stamp) for m in msgs])
    assert np.all(np.diff(stamps) > 0)
    rate = 1.0 / np.median(np.diff(stamps))
    assert 27.0 <= rate <= 33.0, rate  # within 10 % of state_rate_hz 30
    cmd = commands.last()
    assert cmd is not None and list(cmd.name) == JOINTS
    np.testing.assert_allclose(positions(cmd), 0.0, atol=1e-9)  # holds home pose at start


def test_trajectory_interpolated_and_reached(start_node, ros_node):
    proc, states, commands = start_driver(start_node, ros_node)
    pub = publisher(ros_node)
    target1 = np.array([0.3, -0.2, 0.2, 0.1, -0.3, 0.5])
    target2 = np.array([0.5, -0.4, 0.4, 0.2, -0.5, 1.0])
    start = now_s(ros_node) + 1.0
    pub.publish(trajectory([(0.6, target1), (1.2, target2)], stamp=start))
    ros_node.wait_for(
        lambda: commands.last() is not None and stamp_s(commands.last().header.stamp) > start + 1.5, 20,
        what="trajectory end"
    )
    checked = 0
    for m in commands.snapshot():
        t = stamp_s(m.header.stamp) - start
        q = positions(m)
        if t < 0:
            np.testing.assert_allclose(q, 0.0, atol=1e-9)  # not before its stamp
        elif 0.6 <= t <= 1.2:
            expected = target1 + (t - 0.6) / 0.6 * (target2 - target1)
            np.testing.assert_allclose(q, expected, atol=1e-6)
            checked += 1
        elif t > 1.2:
            np.testing.assert_allclose(q, target2, atol=1e-9)
    # ~36 control ticks at 60 Hz fall in that 0.6 s window on a quiet machine; how many is a timing
    # figure (CI under load once saw 9), so only "some" is asserted: each one checked is exact
    assert checked >= 3
    ros_node.wait_for(lambda: np.allclose(positions(states.last()), target2, atol=1e-3), 5, what="measured = target")


def test_newer_trajectory_replaces_older(start_node, ros_node):
    proc, states, commands = start_driver(start_node, ros_node)
    pub = publisher(ros_node)
    t0 = now_s(ros_node) + 1.0  # both start in the future, whatever the delivery delay
    pub.publish(trajectory([(3.0, [1.0] * 6)], stamp=t0))
    t1 = t0 + 0.5
    second = [-0.5] * 5 + [0.0]
    pub.publish(trajectory([(0.5, second)], stamp=t1))
    ros_node.wait_for(
        lambda: commands.last() is not None and stamp_s(commands.last().header.stamp) > t1 + 0.8, 20,
        what="second trajectory end"
    )
    goals = [(stamp_s(m.header.stamp), positions(m)) for m in commands.snapshot()]
    peak = max(q[0] for _, q in goals)
    # the first ran from t0 to t1 (0.5 s of 3 s towards 1.0: 0.167) before being replaced
    assert 0.14 < peak < 0.19, peak
    final = goals[-1][1]
    np.testing.assert_allclose(final, second, atol=1e-9)


def test_clamped_to_limits_and_velocity_limited(start_node, ros_node):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    proc, states, commands = start_driver(start_node, ros_node, params={"max_joint_velocity": [1.0],
                                                                       "status_period": 0.2})
    status = Status(ros_node)
    diagnostics = Collector(ros_node, DiagnosticArray, "/diagnostics")
    pub = publisher(ros_node)
    pub.publish(trajectory([(0.0, [5.0, 5.0, 5.0, 5.0, 5.0, 5.0])]))
    ros_node.wait_for(
        lambda: commands.last() is not None and np.allclose(positions(commands.last()), UPPER, atol=1e-9),
        15,
        what="goals at the upper limits",
    )
    goals = [(stamp_s(m.header.stamp), positions(m)) for m in commands.snapshot()]
    assert max(q.max() for _, q in goals) <= max(UPPER) + 1e-9
    for (ta, qa), (tb, qb) in zip(goals, goals[1:]):
        dt = tb - ta
        # velocity limit 1 rad/s between any two goals (stamps = tick times)
        assert np.all(np.abs(qb - qa) <= 1.0 * dt + 1e-6), (dt, qb - qa)
    ros_node.wait_for(lambda: status.get("clamped") == 1, 5, what="the clamped command counted in ~/status")

    def backend_diagnostics():  # /diagnostics: the backend's state and counters as key/values
        for arr in reversed(diagnostics.snapshot()):
            for d in arr.status:
                if d.name == "driver: robot backend":
                    return d, {kv.key: kv.value for kv in d.values}
        return None, {}

    ros_node.wait_for(lambda: backend_diagnostics()[1].get("commands clamped") == "1", 5, what="/diagnostics")
    diag, values = backend_diagnostics()
    # OK, or WARN when this machine is too loaded for 60 ticks/s (the level follows the measured rate)
    assert diag.level in (DiagnosticStatus.OK, DiagnosticStatus.WARN) and values["state"] == "ENABLED"
    assert values["backend"] == "mock" and diag.hardware_id == "so101 (mock)"
    assert values["commands accepted"] == "1" and values["control rate (Hz)"] == "60"


BAD_COMMANDS = [
    (JOINTS, [0.3, 0.3, float("nan"), 0.3, 0.3, 0.3], "NaN or inf"),
    (JOINTS, [0.3, 0.3, float("inf"), 0.3, 0.3, 0.3], "NaN or inf"),
    (JOINTS[:5] + ["gripper_jaw"], [0.3] * 6, "unknown joint names"),
    (JOINTS[:5], [0.3] * 5, "missing joints"),
]


def test_bad_commands_rejected_arm_does_not_move(start_node, ros_node):
    proc, states, commands = start_driver(start_node, ros_node, params={"command_timeout": 0.0})
    status = Status(ros_node)
    pub = publisher(ros_node)
    for n, (names, values, reason) in enumerate(BAD_COMMANDS, start=1):
        pub.publish(trajectory([(0.0, values)], names=names))
        ros_node.wait_for(lambda: status.get("rejected", 0) >= n, 10, what=f"rejection of a {reason} command")
        ros_node.wait_for(lambda: reason in proc.log(), 5, what=f"'{reason}' in the driver log")
    # a bad point among good ones rejects the whole trajectory
    pub.publish(trajectory([(0.5, [0.3] * 6), (1.0, [0.3, float("nan"), 0, 0, 0, 0])]))
    ros_node.wait_for(lambda: status.get("rejected", 0) >= len(BAD_COMMANDS) + 1, 10, what="rejection")
    time.sleep(0.3)
    for m in commands.snapshot() + states.snapshot():
        np.testing.assert_allclose(positions(m), 0.0, atol=1e-9)
    assert status.last().accepted == 0
    assert status.last().stages == -1  # the mock cannot tell task stages
    # a good command afterwards is executed
    pub.publish(trajectory([(0.0, [0.1] * 6)]))
    ros_node.wait_for(lambda: np.allclose(positions(commands.last()), 0.1), 10, what="good command executed")


def test_time_and_size_rules_and_stamp_offset(start_node, ros_node):
    """Issue 12: a stamped trajectory that ended before its receipt, one with too many points and one
    ending too late are rejected with the reason in ~/status; ~/status.stamp_offset shows the skew."""
    proc, states, commands = start_driver(start_node, ros_node, params={
        "command_timeout": 0.0, "max_trajectory_points": 100, "max_trajectory_duration": 10.0})
    status = Status(ros_node)
    pub = publisher(ros_node)
    t = now_s(ros_node)
    publish_until(ros_node, pub, trajectory([(0.0, [0.3] * 6), (1.0, [0.3] * 6)], stamp=t - 5.0),
                  lambda: status.get("rejected", 0) >= 1, 10, what="rejection of a trajectory in the past")
    st = status.last()
    assert st.last_rejection.startswith("trajectory ends in the past: header.stamp"), st.last_rejection
    assert 5.0 <= st.stamp_offset < 6.0 and 5.0 <= st.stamp_offset_mean < 6.0  # a sender 5 s behind
    pub.publish(trajectory([(0.01 * i, [0.3] * 6) for i in range(101)]))
    ros_node.wait_for(lambda: "more than max_trajectory_points (100)" in status.get("last_rejection"), 10,
                      what="rejection of 101 points")
    pub.publish(trajectory([(0.0, [0.3] * 6)], stamp=now_s(ros_node) + 20.0))
    ros_node.wait_for(lambda: "more than max_trajectory_duration (10 s)" in status.get("last_rejection"), 10,
                      what="rejection of a far-future start")
    assert "trajectory ends in the past" in proc.log()
    # a synchronised sender: stamped now, executed; the offset is the transport latency
    pub.publish(trajectory([(0.5, [0.2] * 6)], stamp=now_s(ros_node)))
    ros_node.wait_for(lambda: np.allclose(positions(commands.last()), 0.2), 10, what="stamped command executed")
    ros_node.wait_for(lambda: status.get("accepted") == 1, 10, what="status after the stamped command")
    assert -0.05 < status.last().stamp_offset < 0.5, status.last().stamp_offset
    for m in commands.snapshot():  # nothing rejected moved the arm
        assert np.all(positions(m) <= 0.2 + 1e-9)


def test_watchdog_holds_when_stream_stops(start_node, ros_node):
    proc, states, commands = start_driver(
        start_node, ros_node, params={"max_joint_velocity": [0.5], "command_timeout": 0.5}
    )
    status = Status(ros_node)
    pub = publisher(ros_node)
    for i in range(5):  # a 20 Hz stream ...
        pub.publish(trajectory([(0.0, [0.01 * i] * 6)]))
        time.sleep(0.05)
    pub.publish(trajectory([(0.0, [1.5] * 6)]))  # ... whose last goal is 3 s away at 0.5 rad/s, then silence
    ros_node.wait_for(lambda: status.get("watchdog_trips", 0) == 1, 10, what="watchdog trip")
    held = positions(commands.last())
    assert held[0] < 1.0
    time.sleep(0.5)
    np.testing.assert_allclose(positions(commands.last()), held, atol=1e-9)
    assert "watchdog" in proc.log()


def test_disabled_arm_does_not_move_until_enabled(start_node, ros_node):
    from std_srvs.srv import SetBool

    proc, states, commands = start_driver(start_node, ros_node)
    status = Status(ros_node)
    pub = publisher(ros_node)
    resp = ros_node.call(SetBool, "/driver/enable", SetBool.Request(data=False), timeout=20)
    assert resp.success, resp.message
    ros_node.wait_for(lambda: status.state() == "DISABLED", 5, what="DISABLED status")
    # joint_commands published before the disable can still be in flight: count only those stamped
    # after the tick that applied it (the DISABLED status's stamp). Not the newest joint state seen
    # then: the test's executor may take the status before the joint state of the previous
    # (still enabled) tick, whose command would then count as late (a rerun in a clean-clone CI).
    t_disabled = stamp_s(status.last().header.stamp)
    # Published until the driver reacts: the first message after `publisher()` can still be
    # lost while the driver's reader has not discovered our writer (seen under CI load).
    publish_until(ros_node, pub, trajectory([(0.0, [0.4] * 6)]), lambda: status.get("rejected", 0) >= 1, 10,
                  what="rejection while disabled")
    time.sleep(0.3)
    late = [m for m in commands.snapshot() if stamp_s(m.header.stamp) > t_disabled]
    assert not late, f"{len(late)} joint_commands sent while torque is off"
    np.testing.assert_allclose(positions(states.last()), 0.0, atol=1e-9)
    assert ros_node.call(SetBool, "/driver/enable", SetBool.Request(data=True), timeout=20).success
    pub.publish(trajectory([(0.0, [0.4] * 6)]))
    ros_node.wait_for(lambda: np.allclose(positions(states.last()), 0.4, atol=1e-3), 10, what="motion after enable")


def test_reset_episode_event_sequence_and_seeded_scene(start_node, ros_node):
    from soarm_msgs.msg import EpisodeEvent
    from soarm_msgs.srv import ResetEpisode

    proc, states, commands = start_driver(start_node, ros_node, params={"home_pose": [0.2, 0.0, 0.0, 0.0, 0.0, 0.3]})
    scene = SceneAfterReset(ros_node)
    events = scene.events
    home = np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.3])

    r1 = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(task="stack it", seed=7, randomize=True),
                       timeout=30)
    assert r1.success and r1.episode_index == 0 and r1.seed_used == 7, r1.message
    ros_node.wait_for(lambda: np.allclose(positions(states.last()), home, atol=0.05), 5, what="arm at home")
    cube_a = scene.cube(0)
    r2 = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=8, randomize=True), timeout=30)
    assert r2.success and r2.episode_index == 1
    cube_b = scene.cube(1)
    r3 = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=7, randomize=True), timeout=30)
    assert r3.success and r3.episode_index == 2
    np.testing.assert_allclose(scene.cube(2), cube_a, atol=1e-4)  # same seed, same scene
    assert np.linalg.norm(cube_a[:2] - cube_b[:2]) > 0.005  # another seed, another scene
    r4 = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=-1, randomize=False), timeout=30)
    assert r4.success and r4.seed_used >= 0

    ros_node.wait_for(lambda: len(events) >= 11, 5, what="11 episode events")
    seq = [(e.kind, e.episode_index) for e in events.snapshot()]
    E = EpisodeEvent
    assert seq == [
        (E.RESET, 0), (E.STARTED, 0),
        (E.ENDED, 0), (E.RESET, 1), (E.STARTED, 1),
        (E.ENDED, 1), (E.RESET, 2), (E.STARTED, 2),
        (E.ENDED, 2), (E.RESET, 3), (E.STARTED, 3),
    ]  # fmt: skip
    evs = events.snapshot()
    assert evs[1].task == "stack it" and evs[4].task == "Put the cube in the target zone"
    assert "seed 7" in evs[1].detail
    # seed and stages are the sim's: the mock has no seeded scene and no task stages
    assert all(e.seed == -1 and e.stages == 0 for e in evs)


def test_camera_images_and_info(start_node, ros_node):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    proc, states, commands = start_driver(start_node, ros_node)
    front = Collector(ros_node, Image, "cameras/front/image_raw", qos_profile_sensor_data)
    wrist = Collector(ros_node, Image, "cameras/wrist/image_raw", qos_profile_sensor_data)
    info = Collector(ros_node, CameraInfo, "cameras/front/camera_info", qos_profile_sensor_data)
    ros_node.wait_for(lambda: len(front) >= 20 and len(wrist) >= 5 and len(info) >= 1, 20, what="camera images")
    f, w, i = front.last(), wrist.last(), info.last()
    assert (f.encoding, f.width, f.height, f.step, len(f.data)) == ("rgb8", 64, 48, 192, 64 * 48 * 3)
    assert (w.width, w.height, len(w.data)) == (32, 24, 32 * 24 * 3)
    assert f.header.frame_id == "front_camera_optical_frame" and w.header.frame_id == "wrist_camera_optical_frame"
    assert (i.width, i.height) == (64, 48) and i.k[0] > 0 and i.k[2] == pytest.approx(32.0)
    stamps = np.array([stamp_s(m.header.stamp) for m in front.snapshot()])
    rate = 1.0 / np.median(np.diff(stamps))
    assert 27.0 <= rate <= 33.0, rate  # within 10 % of fps 30, from the stamps
    before = np.frombuffer(bytes(front.last().data), np.uint8)
    publisher(ros_node).publish(trajectory([(0.0, [0.8] * 6)]))
    ros_node.wait_for(lambda: np.allclose(positions(states.last()), 0.8, atol=1e-3), 10, what="arm moved")
    time.sleep(0.2)
    after = np.frombuffer(bytes(front.last().data), np.uint8)
    assert np.count_nonzero(before != after) > 100  # the image follows the arm


def test_task_success_published_once_per_episode(start_node, ros_node):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from soarm_msgs.msg import EpisodeEvent
    from soarm_msgs.srv import ResetEpisode

    # integers where floats are declared (YAML `fps: 30`) are accepted
    params = {"mock.success_after": 0.3, "state_rate_hz": 30, "cameras.front.fps": 30}
    proc, states, commands = start_driver(start_node, ros_node, params=params)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    events = Collector(ros_node, EpisodeEvent, "episode_events", latched)

    def successes():
        return [e.episode_index for e in events.snapshot() if e.kind == EpisodeEvent.SUCCESS]

    time.sleep(0.6)
    assert successes() == []  # no episode running, no outcome
    for index in (0, 1):
        r = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=index), timeout=30)
        assert r.success and r.episode_index == index
        ros_node.wait_for(lambda: index in successes(), 10, what=f"SUCCESS of episode {index}")
        time.sleep(0.5)
        assert successes().count(index) == 1  # once, although the task keeps reporting success


@pytest.mark.parametrize("params, message", [
    ({"backend": "nope"}, "unknown backend 'nope'"),
    ({"backend": "mock", "real_time_factor": 0.0}, "real_time_factor must be > 0"),
    ({"backend": "mock", "cameras.front.width": 0}, "(cameras.front.width/height/fps)"),
])
def test_invalid_configuration_exits_with_clear_message(start_node, params, message):
    proc = start_node("soarm_driver", "driver", params=params)
    proc.proc.wait(timeout=60)
    assert proc.proc.returncode == 2
    assert message in proc.log() and "Traceback" not in proc.log()
