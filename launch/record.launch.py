"""Record demonstrations with `ros2 bag record` (MCAP) on a real ROS 2 install (Jazzy/Kilted).

    ros2 launch launch/record.launch.py
    ros2 launch launch/record.launch.py output:=recordings/session_01 use_sim_time:=true
    ros2 launch launch/record.launch.py namespace:=arm1

Records exactly the topics of config/record_topics.yaml, the list the pure-Python
`recorder` node (soarm_act_policy) records too. ros2 bag writes one bag for the whole
session; bag_to_lerobot splits it into episodes by its episode_events, so both paths
convert the same way:
    bag_to_lerobot recordings/session_01 --repo-id me/so101_cube --root data/so101_cube
Show every argument: ros2 launch launch/record.launch.py --show-args
"""

import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import soarm_common as sc  # noqa: E402

TOPICS_FILE = sc.CONFIG_DIR / "record_topics.yaml"


def topic_names(topics_file=TOPICS_FILE, namespace: str = "") -> list[str]:
    """Absolute names of the recorded topics under `namespace`."""
    data = yaml.safe_load(Path(topics_file).read_text()) or {}
    ns = sc.normalize_namespace(namespace)
    return [f"{ns}/{t['name'].strip('/')}" for t in data["topics"]]


def record_command(output: str, topics: list[str], use_sim_time: bool = False, storage: str = "mcap") -> list[str]:
    """The `ros2 bag record` command line (QoS is adapted to the publishers by rosbag2)."""
    cmd = ["ros2", "bag", "record", "-s", storage, "-o", output]
    if use_sim_time:
        cmd.append("--use-sim-time")
    return cmd + ["--topics", *topics]


def default_output() -> str:
    return f"recordings/session_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def _setup(context):
    from launch.actions import ExecuteProcess

    topics = topic_names(sc.arg(context, "topics_file"), sc.arg(context, "namespace"))
    output = sc.arg(context, "output") or default_output()
    cmd = record_command(output, topics, sc.truthy(sc.arg(context, "use_sim_time")), sc.arg(context, "storage"))
    return [ExecuteProcess(cmd=cmd, output="screen", name="ros2_bag_record")]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    return LaunchDescription([
        sc.declare("namespace", "", "ROS namespace of the arm whose topics are recorded; empty = global names."),
        sc.declare("output", "", "Bag directory to create; empty = recordings/session_<UTC time>."),
        sc.declare("use_sim_time", "false", "Stamp received messages with /clock (simulation).",
                   ["true", "false"]),
        sc.declare("topics_file", str(TOPICS_FILE), "Topic list (shared with the recorder node)."),
        sc.declare("storage", "mcap", "rosbag2 storage plugin.", ["mcap", "sqlite3"]),
        OpaqueFunction(function=_setup),
    ])
