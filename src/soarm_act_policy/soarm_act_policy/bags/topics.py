"""The recording topic list (config/record_topics.yaml), shared by the recorder node and
launch/record.launch.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

FILE_NAME = "record_topics.yaml"


@dataclass(frozen=True)
class TopicSpec:
    name: str  # relative topic name, e.g. cameras/front/image_raw
    type: str  # e.g. sensor_msgs/msg/Image


def default_topics_file() -> Path:
    """config/record_topics.yaml: $SOARM_CONFIG_DIR, the install share dir, or the repository."""
    candidates = []
    if os.environ.get("SOARM_CONFIG_DIR"):
        candidates.append(Path(os.environ["SOARM_CONFIG_DIR"]) / FILE_NAME)
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("soarm_act_policy")) / "config" / FILE_NAME)
    except Exception:  # no ament index (plain pip install) or package not installed
        pass
    # <repo>/src/soarm_act_policy/soarm_act_policy/bags/topics.py -> <repo>/config
    candidates.append(Path(__file__).resolve().parents[4] / "config" / FILE_NAME)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{FILE_NAME} not found in " + ", ".join(map(str, candidates))
                            + "; set the recorder's topics_file parameter or SOARM_CONFIG_DIR")


def load_topics(path: str | Path | None = None) -> list[TopicSpec]:
    path = Path(path) if path else default_topics_file()
    data = yaml.safe_load(path.read_text()) or {}
    items = data.get("topics")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty list under 'topics'")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name") or not item.get("type"):
            raise ValueError(f"{path}: topics[{i}] needs 'name' and 'type', got {item!r}")
        if str(item["type"]).count("/") != 2:
            raise ValueError(f"{path}: topics[{i}] type must look like pkg/msg/Type, got {item['type']!r}")
        out.append(TopicSpec(str(item["name"]).strip(), str(item["type"]).strip()))
    from .typestore import make_typestore

    known = make_typestore().fielddefs
    unknown = [t.type for t in out if t.type not in known]
    if unknown:
        raise ValueError(f"{path}: message types {unknown} are neither ROS 2 (Kilted) standard types nor "
                         "soarm_msgs: the bag writer has no definition for them")
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate topic names in {names}")
    return out
