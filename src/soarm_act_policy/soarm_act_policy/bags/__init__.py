"""ROS-free rosbag2 access (rosbags): project typestore, readers (sqlite3, MCAP), MCAP writer."""

from .errors import BagError
from .reader import BagMessage, BagReader, normalize_topic, open_bag
from .typestore import find_msg_dir, make_typestore
from .writer import BagWriter

__all__ = ["BagError", "BagMessage", "BagReader", "BagWriter", "find_msg_dir", "make_typestore",
           "normalize_topic", "open_bag"]
