"""MuJoCo simulation of the SO-101 (driver backend) and the scripted expert for its task.

ROS-free: `backend.SimBackend` (driver backend), `scene` (MjSpec scene around the
official SO-101 MJCF), `ik` (damped least squares IK), `expert` (scripted pick and place),
`episode_runner` (the scripted teleop's per-episode logic).
"""
