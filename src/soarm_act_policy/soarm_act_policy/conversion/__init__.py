"""rosbag2 -> LeRobot dataset conversion (ROS-free). API: `convert(...)`, CLI: `bag_to_lerobot`."""

from .convert import Result, convert, find_bags
from .options import JOINT_NAMES, ConversionError, Options

__all__ = ["JOINT_NAMES", "ConversionError", "Options", "Result", "convert", "find_bags"]
