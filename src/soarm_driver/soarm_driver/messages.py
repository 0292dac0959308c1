"""ROS messages the driver publishes, built from plain values (no node state), and the one it
receives (joint_trajectory) read as plain values."""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, JointState
from soarm_msgs.msg import CommandSource, DriverStatus, EpisodeEvent
from visualization_msgs.msg import Marker, MarkerArray

from soarm_driver.ros_support import duration_seconds, time_msg


def joint_state(names, now: float, q, v=None) -> JointState:
    msg = JointState()
    msg.header.stamp = time_msg(now)
    msg.name = list(names)
    msg.position = [float(x) for x in q]
    if v is not None:
        msg.velocity = [float(x) for x in v]
    return msg


def camera_msgs(name: str, image: np.ndarray, intrinsics: np.ndarray, now: float) -> tuple[Image, CameraInfo]:
    """rgb8 Image + CameraInfo (plumb_bob, no distortion) in `<name>_camera_optical_frame`."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = img.shape[:2]
    stamp = time_msg(now)
    frame_id = f"{name}_camera_optical_frame"
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width = h, w
    msg.encoding = "rgb8"
    msg.step = w * 3
    data = array.array("B")
    data.frombytes(memoryview(img).cast("B"))  # one memcpy (assigning bytes costs ~8x more)
    msg.data = data
    k = np.asarray(intrinsics, dtype=float).reshape(3, 3)
    info = CameraInfo()
    info.header.stamp, info.header.frame_id = stamp, frame_id
    info.height, info.width = h, w
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = k.ravel().tolist()
    info.r = np.eye(3).ravel().tolist()
    info.p = np.hstack([k, np.zeros((3, 1))]).ravel().tolist()
    return msg, info


#: Marker look per object name: (scale xyz m, colour rgb); others use DEFAULT_STYLE.
MARKER_STYLES = {"target": ((0.07, 0.07, 0.002), (0.15, 0.65, 0.25))}  # flat green target zone
DEFAULT_STYLE = ((0.025, 0.025, 0.025), (0.9, 0.2, 0.2))  # the 2.5 cm cube


def object_markers(poses: dict, now: float) -> MarkerArray:
    """One CUBE marker per object {name: (xyz, quat_wxyz)}, ns = name, id 0, frame `world`."""
    arr = MarkerArray()
    for name, (xyz, quat) in poses.items():
        m = Marker()
        m.header.stamp = time_msg(now)
        m.header.frame_id = "world"
        m.ns, m.id = name, 0
        m.type, m.action = Marker.CUBE, Marker.ADD
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(x) for x in xyz)
        o = m.pose.orientation
        o.w, o.x, o.y, o.z = (float(x) for x in quat)
        scale, rgb = MARKER_STYLES.get(name, DEFAULT_STYLE)
        m.scale.x, m.scale.y, m.scale.z = scale
        m.color.r, m.color.g, m.color.b = rgb
        m.color.a = 1.0
        arr.markers.append(m)
    return arr


def driver_status(status, now: float) -> DriverStatus:
    """soarm_msgs/DriverStatus from the core's `DriverStatus` snapshot, stamped `now`."""
    msg = DriverStatus(
        state=getattr(DriverStatus, status.state), detail=status.detail, last_error=status.last_error,
        backend=status.backend, resetting=status.resetting, episode_index=status.episode_index,
        stages=-1 if status.stages is None else status.stages, accepted=status.accepted,
        rejected=status.rejected, clamped=status.clamped, watchdog_trips=status.watchdog_trips,
        reconnects=status.reconnects, hold_reason=status.hold_reason, tolerance_trips=status.tolerance_trips,
        bus_errors=status.bus_errors, last_rejection=status.last_rejection, stamp_offset=status.stamp_offset,
        stamp_offset_mean=status.stamp_offset_mean,
    )
    msg.header.stamp = time_msg(now)
    return msg


def command_source(state, now: float) -> CommandSource:
    """soarm_msgs/CommandSource from a `command_arbiter.SourceState`, stamped `now`."""
    msg = CommandSource(source=state.source, aligning=state.aligning, reason=state.reason,
                        takeovers=state.takeovers, ignored_policy=state.ignored["policy"],
                        ignored_human=state.ignored["human"])
    msg.header.stamp = time_msg(now)
    return msg


def episode_event(event, now: float) -> EpisodeEvent:
    """soarm_msgs/EpisodeEvent from an `episodes.Event` (kind: the constant's name), stamped `now`."""
    msg = EpisodeEvent()
    msg.header.stamp = time_msg(now)
    msg.episode_index = event.episode_index
    msg.task = event.task
    msg.kind = getattr(EpisodeEvent, event.kind)
    msg.detail = event.detail
    msg.seed = event.seed
    msg.stages = event.stages
    return msg


class TrajectoryPoints(Sequence):
    """The points of a trajectory_msgs/JointTrajectory as (time_from_start s, positions, velocities),
    the form `DriverCore.command` takes. Each point is converted when read, so a trajectory over
    `max_trajectory_points` is rejected before any point is converted."""

    def __init__(self, points):
        self._points = points

    def __len__(self) -> int:
        return len(self._points)

    def __getitem__(self, i):
        pt = self._points[i]
        return duration_seconds(pt.time_from_start), list(pt.positions), list(pt.velocities)
