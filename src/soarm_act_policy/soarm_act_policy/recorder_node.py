"""recorder: demonstrations from live topics into rosbag2 MCAP directories, one per episode.

Subscribes the topics of config/record_topics.yaml as serialized messages (no
re-encoding) and writes them with the pure-Python rosbags library, so it works where
rosbag2 is not installed; the output is the same format `ros2 bag record -s mcap`
writes (launch/record.launch.py). Bags start on episode_events STARTED and stop on
ENDED/RESET/the next STARTED, or by the ~/start and ~/stop services. Subscriptions
follow the publishers' QoS (reliable/transient local when every publisher offers it).
Durable: MCAP chunks reach the disk every `chunk_period` s; unfinished bags of a killed
recorder are recovered at start; a disk error (full disk) is logged and counted, the bag
is finished with what reached the disk and new episodes are refused until there is room.

    ros2 run soarm_act_policy recorder --ros-args --params-file config/recorder.yaml \
        -p output_dir:=recordings -p use_sim_time:=true
"""

from __future__ import annotations

import importlib
import sys

import rclpy
from rcl_interfaces.msg import ParameterType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from std_srvs.srv import Trigger

from .bags.session import EpisodeRecorder
from .bags.writer import CHUNK_PERIOD_S, RESERVE_BYTES, BagWriteError
from .bags.topics import load_topics
from .ros_support import EXIT_CONFIG, EXIT_OK, declare_parameters, spin_until_shutdown

EVENT_TYPE = "soarm_msgs/msg/EpisodeEvent"
P = ParameterType
PARAMETERS = [
    # name, default, type, description
    ("output_dir", "recordings", P.PARAMETER_STRING, "Directory of the episode bags (created)."),
    ("topics_file", "", P.PARAMETER_STRING,
     "Topic list YAML; empty = config/record_topics.yaml, the list launch/record.launch.py records too."),
    ("storage", "mcap", P.PARAMETER_STRING, "rosbag2 storage: mcap or sqlite3."),
    ("auto_record", True, P.PARAMETER_BOOL, "Start/stop bags on episode_events (STARTED opens, ENDED/RESET close)."),
    ("task", "", P.PARAMETER_STRING, "Task text stored with bags started by ~/start."),
    ("queue_depth", 100, P.PARAMETER_INTEGER, "Subscription history depth per topic, messages."),
    ("discovery_period", 0.5, P.PARAMETER_DOUBLE, "Seconds between looks for publishers of topics not yet subscribed."),
    ("close_timeout", 2.0, P.PARAMETER_DOUBLE,
     "Seconds an ended bag stays open for messages stamped before the end that are still arriving (a busy "
     "recorder lags)."),
    ("pre_roll", 30, P.PARAMETER_INTEGER,
     "Messages kept per topic while not recording, written into the next bag when their stamps are inside its "
     "episode."),
    ("chunk_period", CHUNK_PERIOD_S, P.PARAMETER_DOUBLE,
     "MCAP: seconds between chunks handed to the disk; a killed recorder loses about this much (recovered at "
     "the next start)."),
    ("disk_reserve", RESERVE_BYTES, P.PARAMETER_INTEGER,
     "Bytes of a .reserve file written into each bag when it starts (no room: the episode is refused) and "
     "deleted to make room for finishing it (also after a disk-full error). 0 = none."),
]


def message_class(type_name: str):
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class RecorderNode(Node):
    def __init__(self):
        super().__init__("recorder")
        p = declare_parameters(self, PARAMETERS)
        self.output_dir, self.auto_record, self.task, self.depth = (
            p["output_dir"], p["auto_record"], p["task"], p["queue_depth"])
        self.specs = load_topics(p["topics_file"] or None)
        self.session = EpisodeRecorder(
            self.output_dir, {self.resolve_topic_name(t.name): t.type for t in self.specs},
            storage=p["storage"], close_timeout=p["close_timeout"], pre_roll=p["pre_roll"],
            chunk_period=p["chunk_period"], reserve_bytes=p["disk_reserve"],
            log=self.get_logger().info, log_error=self.get_logger().error)
        self._subs: dict[str, object] = {}
        self._event_cls = message_class(EVENT_TYPE)
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_timer(float(p["discovery_period"]), self._discover)
        self.create_timer(0.1, self.session.tick)
        self.get_logger().info(
            f"recording {len(self.specs)} topics into {self.session.output_dir} "
            f"({'on episode_events and ' if self.auto_record else ''}~/start, ~/stop)")

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
        try:
            response.success, response.message = True, str(self.session.start(task=self.task))
        except BagWriteError as exc:
            response.success, response.message = False, f"{exc} ({self.session.write_errors} write errors)"
        return response

    def _on_stop(self, request, response):
        path = self.session.stop("~/stop", end_ns=self._now_ns(), wait=True)
        response.success = path is not None
        response.message = str(path) if path else "not recording"
        return response

    def destroy_node(self):
        self.session.close_all("shutdown")
        return super().destroy_node()


def main(args=None) -> int:
    """Record until Ctrl-C. Exit codes: 0 stopped (open bags closed), 2 refused configuration
    (topic list unreadable, output_dir not writable, bad parameter; message on stderr)."""
    try:
        with rclpy.init(args=args):
            try:
                node = RecorderNode()
            except (OSError, ValueError, ParameterException) as e:
                print(f"recorder: error: {e}", file=sys.stderr, flush=True)
                return EXIT_CONFIG
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            try:
                spin_until_shutdown(executor)
            finally:
                executor.shutdown(timeout_sec=2.0)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return EXIT_OK
