"""EpisodeEvent kinds and stage bits for the ROS-free code (bags, conversion), read from the
soarm_msgs definition itself (EpisodeEvent.msg, through the project's rosbags typestore):
the `.msg` file is the one place their values are written.

`kind_names(msg_class)` gives {value: name} for any EpisodeEvent class (rclpy's or the
typestore's); nodes use it for log and hold-reason texts.
"""

from __future__ import annotations

from .bags.typestore import make_typestore

EVENT_TYPE = "soarm_msgs/msg/EpisodeEvent"
#: Names of the kind constants of EpisodeEvent (their values come from the message).
KIND_CONSTANTS = ("STARTED", "SUCCESS", "FAILURE", "RESET", "ENDED", "INTERVENTION_START", "INTERVENTION_END")

_EpisodeEvent = make_typestore().types[EVENT_TYPE]
STARTED: int = _EpisodeEvent.STARTED
SUCCESS: int = _EpisodeEvent.SUCCESS
FAILURE: int = _EpisodeEvent.FAILURE
RESET: int = _EpisodeEvent.RESET
ENDED: int = _EpisodeEvent.ENDED
#: A human took over / handed back (the driver's command source; docs/interfaces.md, "Take-over").
INTERVENTION_START: int = _EpisodeEvent.INTERVENTION_START
INTERVENTION_END: int = _EpisodeEvent.INTERVENTION_END


def kind_names(msg_class=_EpisodeEvent) -> dict[int, str]:
    """{kind value: constant name} of an EpisodeEvent class."""
    return {getattr(msg_class, name): name for name in KIND_CONSTANTS}


#: {kind value: name}, e.g. EVENT_NAMES[SUCCESS] == "SUCCESS".
EVENT_NAMES: dict[int, str] = kind_names()
