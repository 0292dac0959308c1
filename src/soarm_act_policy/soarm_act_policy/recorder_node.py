"""recorder: demonstrations from live topics into rosbag2 MCAP directories, one per episode.

Subscribes the topics of config/record_topics.yaml as serialized messages (no
re-encoding) and writes them with the pure-Python rosbags library, so it works where
rosbag2 is not installed; the output is the same format `ros2 bag record -s mcap`
writes (launch/record.launch.py). Bags start on episode_events STARTED and stop on
ENDED/RESET/the next STARTED, or by the ~/start and ~/stop services. Subscriptions
follow the publishers' QoS (reliable/transient local when every publisher offers it).

    ros2 run soarm_act_policy recorder --ros-args --params-file config/recorder.yaml \
        -p output_dir:=recordings -p use_sim_time:=true
"""

from __future__ import annotations

import importlib
import sys

import rclpy
import rclpy.executors
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from std_srvs.srv import Trigger

from .bags.session import EpisodeRecorder
from .bags.topics import load_topics

EVENT_TYPE = "soarm_msgs/msg/EpisodeEvent"


def message_class(type_name: str):
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class RecorderNode(Node):
    def __init__(self):
        super().__init__("recorder")
        d = self._declare
        self.output_dir = d("output_dir", "recordings", "Directory of the episode bags (created).")
        topics_file = d("topics_file", "", "Topic list YAML; empty = config/record_topics.yaml, "
                        "the list launch/record.launch.py records too.")
        storage = d("storage", "mcap", "rosbag2 storage: mcap or sqlite3.")
        self.auto_record = d("auto_record", True, "Start/stop bags on episode_events "
                             "(STARTED opens, ENDED/RESET close).")
        self.task = d("task", "", "Task text stored with bags started by ~/start.")
        self.depth = d("queue_depth", 100, "Subscription history depth per topic, messages.")
        period = d("discovery_period", 0.5, "Seconds between looks for publishers of topics "
                   "not yet subscribed.")
        close_timeout = d("close_timeout", 2.0, "Seconds an ended bag stays open for messages "
                          "stamped before the end that are still arriving (a busy recorder lags).")
        pre_roll = d("pre_roll", 30, "Messages kept per topic while not recording, written into "
                     "the next bag when their stamps are inside its episode.")
        self.specs = load_topics(topics_file or None)
        self.session = EpisodeRecorder(
            self.output_dir, {self.resolve_topic_name(t.name): t.type for t in self.specs},
            storage=storage, close_timeout=close_timeout, pre_roll=pre_roll, log=self.get_logger().info)
        self._subs: dict[str, object] = {}
        self._event_cls = message_class(EVENT_TYPE)
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_timer(float(period), self._discover)
        self.create_timer(0.1, self.session.tick)
        self.get_logger().info(
            f"recording {len(self.specs)} topics into {self.session.output_dir} "
            f"({'on episode_events and ' if self.auto_record else ''}~/start, ~/stop)")

    def _declare(self, name, default, description):
        return self.declare_parameter(name, default, ParameterDescriptor(description=description)).value

    def _discover(self) -> None:
        """Subscribe each topic once it has publishers, with QoS compatible with all of them."""
        for spec in self.specs:
            topic = self.resolve_topic_name(spec.name)
            if topic in self._subs:
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            types = {i.topic_type for i in infos}
            if types != {spec.type}:
                self.get_logger().error(f"{topic}: published as {sorted(types)}, the topic list says "
                                        f"{spec.type}; not recording it", throttle_duration_sec=30.0)
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=int(self.depth),
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
            cb = self._event_callback(topic) if spec.type == EVENT_TYPE else self._callback(topic)
            self._subs[topic] = self.create_subscription(message_class(spec.type), topic, cb, qos, raw=True)
            self.get_logger().info(f"subscribed {topic} ({spec.type}, "
                                   f"{'reliable' if reliable else 'best effort'}"
                                   f"{', transient local' if latched else ''})")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _callback(self, topic):
        def on_message(raw: bytes) -> None:
            self.session.on_message(topic, self._now_ns(), raw)
        return on_message

    def _event_callback(self, topic):
        def on_event(raw: bytes) -> None:
            ev = deserialize_message(raw, self._event_cls)
            stamp = ev.header.stamp.sec * 1_000_000_000 + ev.header.stamp.nanosec
            self.session.on_event(topic, self._now_ns(), raw, kind=int(ev.kind),
                                  episode_index=int(ev.episode_index), task=ev.task, stamp_ns=stamp,
                                  auto_record=bool(self.auto_record))
        return on_event

    def _on_start(self, request, response):
        if self.session.recording is not None:
            response.success, response.message = False, f"already recording {self.session.recording}"
            return response
        response.success, response.message = True, str(self.session.start(task=self.task))
        return response

    def _on_stop(self, request, response):
        path = self.session.stop("~/stop", end_ns=self._now_ns(), wait=True)
        response.success = path is not None
        response.message = str(path) if path else "not recording"
        return response

    def close(self) -> None:
        self.session.close_all("shutdown")


def main(argv=None):
    rclpy.init(args=argv)
    try:
        node = RecorderNode()
    except (OSError, ValueError) as exc:  # topic list unreadable, output_dir not writable, bad parameter
        print(f"recorder: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
