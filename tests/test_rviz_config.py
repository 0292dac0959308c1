"""config/rviz/soarm.rviz shows the interface contract's topics with matching displays and QoS."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RVIZ = ROOT / "config" / "rviz" / "soarm.rviz"

#: topic -> (rviz display class, reliability) from the interface contract (docs/interfaces.md).
EXPECTED = {
    "/robot_description": ("rviz_default_plugins/RobotModel", "Reliable"),
    "/cameras/front/image_raw": ("rviz_default_plugins/Image", "Best Effort"),  # sensor-data QoS
    "/cameras/wrist/image_raw": ("rviz_default_plugins/Image", "Best Effort"),
    "/policy/planned_path": ("rviz_default_plugins/MarkerArray", "Reliable"),
    "/scene/objects": ("rviz_default_plugins/MarkerArray", "Reliable"),
}


def displays():
    config = yaml.safe_load(RVIZ.read_text())
    return config, config["Visualization Manager"]["Displays"]


def display_topic(display: dict) -> dict | None:
    return display.get("Description Topic") or display.get("Topic")


def test_rviz_config_topics_match_contract():
    config, items = displays()
    found = {}
    for d in items:
        topic = display_topic(d)
        if topic:
            assert d["Enabled"] is True, d["Name"]
            found[topic["Value"]] = (d["Class"], topic["Reliability Policy"])
    assert found == EXPECTED


def test_rviz_config_frames_and_robot_model():
    config, items = displays()
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "world"
    robot = next(d for d in items if d["Class"] == "rviz_default_plugins/RobotModel")
    assert robot["Description Source"] == "Topic"
    # robot_state_publisher publishes robot_description transient-local: a volatile
    # subscriber that starts later would never see it.
    assert robot["Description Topic"]["Durability Policy"] == "Transient Local"
    # The fixed frame exists in the URDF that robot_state_publisher publishes.
    assert '<link name="world"/>' in (ROOT / "config" / "urdf" / "so101.urdf").read_text()
