"""Closed-loop evaluation: through ROS (`evaluate`, client.py) and in-process without DDS (`rollout`)."""
