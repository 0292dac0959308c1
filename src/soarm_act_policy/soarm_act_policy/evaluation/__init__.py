"""Closed-loop evaluation through ROS."""
