"""rosbag2 -> LeRobot dataset conversion."""
