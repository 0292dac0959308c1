"""`evaluate --repo-id`: the rollouts saved as a LeRobot dataset (issue 13, item 5).

As the seeds' inference command (`--repo-id`, `--root`, `--push-to-hub`, `--video`,
`--display-data`), but through our own pieces: evaluate starts the `recorder` node (auto_record:
one bag per episode, STARTED to ENDED, with the INTERVENTION_* events) before the first episode,
stops it after the last, converts the bags with bag_to_lerobot's `convert` (one dataset episode
per rollout, appended when the dataset exists; the per-frame `intervention` feature in every dataset
evaluate creates, False unless a human took over, and kept out of an appended dataset without it)
and writes each rollout's outcome and interventions into the episode metadata
(`soarm/outcome`: success | failure | timeout | canceled | aborted, `soarm/interventions`,
`soarm/human_time_s`; matched by the driver's episode index). `push_to_hub` then uploads it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Recorder node name (evaluate waits for its subscriptions).
RECORDER_NODE = "recorder"
#: What the recorder must have subscribed before the first episode (suffixes of graph topic names).
REQUIRED_TOPICS = ("/episode_events", "/joint_states", "/image_raw")


class RolloutRecorder:
    """The recorder node as a child process writing one bag per episode into `bags_dir`."""

    def __init__(self, bags_dir: Path, use_sim_time: bool, ros_args: list[str] | None = None):
        self.bags_dir = Path(bags_dir)
        self.bags_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.bags_dir.parent / "recorder.log"
        argv = [sys.executable, "-c", "import sys; from soarm_act_policy.recorder_node import main; sys.exit(main())",
                "--ros-args", "-p", f"output_dir:={self.bags_dir}", "-p", "auto_record:=true",
                "-p", f"use_sim_time:={'true' if use_sim_time else 'false'}", *(ros_args or [])[1:]]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, node, timeout: float) -> None:
        """Until the recorder subscribes every events/joints/camera topic that has a publisher."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the recorder exited ({self.proc.returncode}); log {self.log_path}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            topics = [t for t, _ in node.get_topic_names_and_types()
                      if t.endswith(REQUIRED_TOPICS) and node.get_publishers_info_by_topic(t)]
            ready = [t for t in topics if any(i.node_name == RECORDER_NODE
                                              for i in node.get_subscriptions_info_by_topic(t))]
            if len(topics) >= 3 and len(ready) == len(topics):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recorder did not subscribe {sorted(set(topics) - set(ready)) or topics} "
                                   f"within {timeout:.0f} s (log {self.log_path}); is the driver with cameras up?")
            time.sleep(0.2)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGINT (the recorder closes its bags), then SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def outcome_columns(episodes) -> dict[int, dict]:
    """The driver's episode index -> the soarm/* episode columns evaluate knows (its RunPolicy results)."""
    cols = {}
    for e in episodes:
        outcome = e.outcome or ("success" if e.success else "failure")
        cols[int(e.episode_index)] = {"soarm/outcome": outcome, "soarm/interventions": int(e.interventions),
                                      "soarm/human_time_s": float(e.human_time)}
    return cols


def save_rollouts(bags_dir: Path, repo_id: str, root: Path, episodes, *, push_to_hub: bool, log) -> dict:
    """Convert the recorded rollouts into the dataset at `root` (appended when it exists), label each
    with its rollout's outcome, interventions and human time (matched by the driver's episode index of
    its STARTED event), optionally push; returns {'episodes', 'frames', 'labelled', 'root'} added."""
    from ..conversion.convert import convert
    from ..conversion.corrections import FEATURE
    from ..conversion.episode_meta import write_episode_columns
    from ..conversion.options import Options

    root = Path(root).expanduser().resolve()
    info = root / "meta" / "info.json"
    # the per-frame `intervention` label in every rollout dataset evaluate creates (False unless a human
    # took over), and in an appended one only when it has the feature (a dataset's features are fixed)
    label = not info.exists() or FEATURE in json.loads(info.read_text()).get("features", {})
    opts = Options(on_problem="warn", intervention_feature="always" if label else "never")
    by_index = outcome_columns(episodes)
    # only the bags of these rollouts: at start the recorder also catches the tail of the episode that
    # ran before (its STARTED is latched, its ENDED comes with our first reset)
    planned = convert([bags_dir], repo_id, root, opts, append=root.exists(), dry_run=True, log=lambda s: None)
    bags = sorted({e.bag for e in planned.episodes if e.segment.source_episode_index in by_index})
    if not bags:
        raise RuntimeError(f"no recorded bag in {bags_dir} holds one of the rollouts (episodes {sorted(by_index)})")
    result = convert(bags, repo_id, root, opts, append=root.exists(), progress=False, log=log)
    values = {int(e.dataset_episode_index): by_index[e.segment.source_episode_index] for e in result.written
              if e.segment.source_episode_index in by_index}
    write_episode_columns(root, values)
    if push_to_hub:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        LeRobotDataset(repo_id, root=root).push_to_hub()
        log(f"pushed {repo_id} to the Hugging Face Hub")
    return {"episodes": len(result.written), "frames": sum(e.frames for e in result.written), "labelled": len(values),
            "root": str(root)}


class DisplayUnavailable(RuntimeError):
    """--display-data without its viewer installed."""


def require_rerun():
    """The rerun module (--display-data's viewer, as LeRobot's --display_data), or a clear error."""
    try:
        import rerun
    except ImportError:
        raise DisplayUnavailable(
            "--display-data shows the camera feeds in rerun (as LeRobot's --display_data), which is not "
            "installed: `pip install rerun-sdk`, or drop --display-data (rviz2 shows the camera topics too)") from None
    return rerun


def show_cameras(node, rr) -> list:
    """Log every `*/image_raw` topic (rgb8) to a spawned rerun viewer; returns the subscriptions."""
    import numpy as np
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rr.init("soarm_evaluate", spawn=True)

    def on_image(topic):
        def cb(msg: Image):
            if msg.encoding == "rgb8":
                rr.log(topic, rr.Image(np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)))
        return cb

    topics = [t for t, types in node.get_topic_names_and_types()
              if t.endswith("/image_raw") and "sensor_msgs/msg/Image" in types]
    return [node.create_subscription(Image, t, on_image(t), qos_profile_sensor_data) for t in topics]
