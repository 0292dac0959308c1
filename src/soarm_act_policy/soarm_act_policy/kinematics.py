"""Forward kinematics of the SO-101 from its URDF, without ROS.

The URDF (``config/urdf/so101.urdf``, installed to ``share/soarm_act_policy/urdf/``) is
parsed with the standard library; the chain from a root link to a tip link is evaluated
with numpy for a whole batch of joint configurations at once::

    from soarm_act_policy.kinematics import end_effector_positions
    xyz = end_effector_positions(q)      # q: (N, 6) radians, JOINT_NAMES order -> (N, 3) m

Positions are in the ``base_link`` frame, the end effector is ``gripper_frame_link``
(the point between the jaw tips, the sim model's ``gripperframe`` site).
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .joints import JOINT_NAMES

BASE_LINK = "base_link"
END_EFFECTOR_LINK = "gripper_frame_link"
URDF_ENV_VAR = "SOARM_URDF"
_PACKAGE = "soarm_act_policy"
_URDF_RELPATH = Path("urdf") / "so101.urdf"


class UrdfError(ValueError):
    """The URDF cannot be used for kinematics (missing link/joint, bad number...)."""


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF rotation: fixed axes X (roll), then Y (pitch), then Z (yaw): Rz @ Ry @ Rx."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _axis_angle_matrices(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about a unit axis by each angle (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s = np.sin(angles)[:, None, None]
    c = np.cos(angles)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


@dataclass(frozen=True)
class Joint:
    """One URDF joint, as far as kinematics is concerned."""

    name: str
    type: str  # revolute, continuous, prismatic, fixed
    parent: str
    child: str
    origin: np.ndarray  # 4x4 parent->joint frame at zero position
    axis: np.ndarray  # unit vector in the joint frame
    lower: float | None = None
    upper: float | None = None


def _floats(text: str | None, n: int, default: tuple[float, ...], where: str) -> np.ndarray:
    if text is None:
        return np.array(default, dtype=float)
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise UrdfError(f"{where}: expected {n} numbers, got {text!r}") from None
    if len(values) != n:
        raise UrdfError(f"{where}: expected {n} numbers, got {text!r}")
    return np.array(values, dtype=float)


def parse_joints(urdf_xml: str) -> dict[str, Joint]:
    """All joints of a URDF document (its text), by name."""
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as exc:
        raise UrdfError(f"not valid XML: {exc}") from None
    if root.tag != "robot":
        raise UrdfError(f"root element is <{root.tag}>, expected <robot>")
    joints = {}
    for el in root.findall("joint"):
        name = el.get("name")
        jtype = el.get("type")
        parent, child = el.find("parent"), el.find("child")
        if not name or jtype is None or parent is None or child is None:
            raise UrdfError(f"joint {name!r}: needs name, type, <parent> and <child>")
        if jtype not in ("revolute", "continuous", "prismatic", "fixed"):
            raise UrdfError(f"joint {name!r}: type {jtype!r} not supported for kinematics")
        origin_el = el.find("origin")
        xyz = _floats(None if origin_el is None else origin_el.get("xyz"), 3, (0, 0, 0), f"joint {name} origin xyz")
        rpy = _floats(None if origin_el is None else origin_el.get("rpy"), 3, (0, 0, 0), f"joint {name} origin rpy")
        origin = np.eye(4)
        origin[:3, :3] = rpy_to_matrix(*rpy)
        origin[:3, 3] = xyz
        axis_el = el.find("axis")
        axis = _floats(None if axis_el is None else axis_el.get("xyz"), 3, (1, 0, 0), f"joint {name} axis")
        if jtype != "fixed":
            norm = np.linalg.norm(axis)
            if norm == 0:
                raise UrdfError(f"joint {name!r}: zero axis")
            axis = axis / norm
        limit = el.find("limit")
        lower = upper = None
        if limit is not None and jtype in ("revolute", "prismatic"):
            lower = float(limit.get("lower", 0.0))
            upper = float(limit.get("upper", 0.0))
        joints[name] = Joint(name, jtype, parent.get("link"), child.get("link"), origin, axis, lower, upper)
    return joints


class KinematicChain:
    """The serial chain of joints from `root_link` to `tip_link` of a URDF."""

    def __init__(self, urdf_xml: str, root_link: str = BASE_LINK, tip_link: str = END_EFFECTOR_LINK):
        joints = parse_joints(urdf_xml)
        by_child = {j.child: j for j in joints.values()}
        chain: list[Joint] = []
        link = tip_link
        while link != root_link:
            joint = by_child.get(link)
            if joint is None:
                raise UrdfError(f"no chain from link {root_link!r} to link {tip_link!r} (stopped at {link!r})")
            chain.append(joint)
            link = joint.parent
        self.root_link = root_link
        self.tip_link = tip_link
        self.joints: list[Joint] = chain[::-1]
        self.all_joints = joints
        #: Names of the movable joints on the chain, root to tip.
        self.active_joint_names: tuple[str, ...] = tuple(j.name for j in self.joints if j.type != "fixed")

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs) -> "KinematicChain":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UrdfError(f"cannot read URDF {path}: {exc.strerror}") from None
        return cls(text, **kwargs)

    def transforms(self, q: np.ndarray, joint_names: tuple[str, ...] | list[str] = JOINT_NAMES) -> np.ndarray:
        """Tip poses in the root frame, (N, 4, 4), for joint values q (N, len(joint_names)).

        Columns of q are matched to joints by `joint_names`; every movable joint of the
        chain must be among them (others, e.g. the gripper, are ignored).
        """
        q = np.asarray(q, dtype=float)
        if q.ndim != 2 or q.shape[1] != len(joint_names):
            raise ValueError(f"q must have shape (N, {len(joint_names)}) for joints {list(joint_names)}, got {q.shape}")
        missing = [n for n in self.active_joint_names if n not in joint_names]
        if missing:
            raise ValueError(f"q has no column for chain joints {missing} (columns: {list(joint_names)})")
        column = {name: i for i, name in enumerate(joint_names)}
        n = q.shape[0]
        pose = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        for joint in self.joints:
            pose = pose @ joint.origin
            if joint.type == "fixed":
                continue
            values = q[:, column[joint.name]]
            motion = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
            if joint.type == "prismatic":
                motion[:, :3, 3] = values[:, None] * joint.axis
            else:
                motion[:, :3, :3] = _axis_angle_matrices(joint.axis, values)
            pose = pose @ motion
        return pose

    def positions(self, q: np.ndarray, joint_names: tuple[str, ...] | list[str] = JOINT_NAMES) -> np.ndarray:
        """Tip positions in the root frame, (N, 3) metres."""
        return self.transforms(q, joint_names)[:, :3, 3]


def default_urdf_path() -> Path:
    """Where the SO-101 URDF is: $SOARM_URDF, the installed share dir, or the source tree."""
    override = os.environ.get(URDF_ENV_VAR)
    if override:
        return Path(override)
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory(_PACKAGE)) / _URDF_RELPATH)
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    # Source checkout: <repo>/src/soarm_act_policy/soarm_act_policy/kinematics.py
    candidates.append(Path(__file__).resolve().parents[3] / "config" / _URDF_RELPATH)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "SO-101 URDF not found; looked in "
        + ", ".join(str(p) for p in candidates)
        + f". Build the workspace (colcon build) or set {URDF_ENV_VAR}=/path/to/so101.urdf."
    )


@functools.lru_cache(maxsize=4)
def _chain(path: str) -> KinematicChain:
    return KinematicChain.from_file(path)


def default_chain() -> KinematicChain:
    """The base_link -> gripper_frame_link chain of the default URDF (cached)."""
    return _chain(str(default_urdf_path()))


def end_effector_positions(q: np.ndarray, joint_names: tuple[str, ...] | list[str] = JOINT_NAMES) -> np.ndarray:
    """End-effector (gripper_frame_link) positions in base_link, metres.

    q: (N, 6) joint positions in radians, columns in `joint_names` order (the soarm_act
    joint order by default); a single configuration of shape (6,) gives shape (3,).
    """
    q = np.asarray(q, dtype=float)
    single = q.ndim == 1
    out = default_chain().positions(q[None, :] if single else q, joint_names)
    return out[0] if single else out


def end_effector_poses(q: np.ndarray, joint_names: tuple[str, ...] | list[str] = JOINT_NAMES) -> np.ndarray:
    """End-effector poses in base_link as (N, 4, 4) homogeneous matrices."""
    return default_chain().transforms(np.atleast_2d(np.asarray(q, dtype=float)), joint_names)
