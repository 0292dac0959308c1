"""Two separate processes exchange soarm_msgs types over real DDS."""

import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.dds

SERVER = textwrap.dedent(
    """
    import rclpy
    import rclpy.qos
    from rclpy.node import Node
    from soarm_msgs.msg import EpisodeEvent
    from soarm_msgs.srv import ResetEpisode

    rclpy.init()
    node = Node("episode_server")
    # The project's QoS for episode_events: reliable, transient local (late joiners get it).
    qos = rclpy.qos.QoSProfile(depth=10, durability=rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(EpisodeEvent, "episode_events", qos)
    count = [0]

    def on_reset(request, response):
        count[0] += 1
        response.success = True
        response.message = "reset to home"
        response.episode_index = count[0]
        response.seed_used = request.seed
        ev = EpisodeEvent()
        ev.header.stamp = node.get_clock().now().to_msg()
        ev.kind = EpisodeEvent.STARTED
        ev.episode_index = count[0]
        ev.task = request.task
        ev.detail = "seed %d" % request.seed
        pub.publish(ev)
        return response

    node.create_service(ResetEpisode, "reset_episode", on_reset)
    print("ready", flush=True)
    rclpy.spin(node)
    """
)


def test_episode_event_and_reset_service_between_processes(ros_node, tmp_path):
    from soarm_msgs.msg import EpisodeEvent
    from soarm_msgs.srv import ResetEpisode

    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=log, stderr=subprocess.STDOUT)
    try:
        received = []
        from rclpy.qos import DurabilityPolicy, QoSProfile

        qos = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        ros_node.node.create_subscription(EpisodeEvent, "episode_events", received.append, qos)
        ros_node.wait_for(
            lambda: ros_node.node.count_publishers("episode_events") > 0, 60, what="server's publisher"
        )
        req = ResetEpisode.Request(task="pick the cube", seed=42, randomize=True)
        resp = ros_node.call(ResetEpisode, "reset_episode", req, timeout=60)
        assert resp.success and resp.episode_index == 1 and resp.seed_used == 42
        ros_node.wait_for(lambda: len(received) >= 1, 10, what="EpisodeEvent from the server")
        ev = received[0]
        assert ev.kind == EpisodeEvent.STARTED
        assert ev.task == "pick the cube" and ev.episode_index == 1 and ev.detail == "seed 42"
        resp2 = ros_node.call(ResetEpisode, "reset_episode", ResetEpisode.Request(seed=7), timeout=10)
        assert resp2.episode_index == 2 and resp2.seed_used == 7
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.close()
        if server.returncode not in (0, -2, -9, 1, 130):
            print(open(tmp_path / "server.log").read())
