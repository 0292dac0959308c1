"""A rosbags typestore with the standard ROS 2 types and the project's soarm_msgs types.

ROS-free: the soarm_msgs definitions are read from their `.msg` files, found in the
installed share directory (ament index) or, without a ROS workspace, in the source tree.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSG_PACKAGE = "soarm_msgs"
#: Environment variable naming a directory with soarm_msgs `.msg` files (overrides the search).
MSG_DIR_ENV = "SOARM_MSGS_DIR"


def _source_tree_msg_dir() -> Path:
    # <repo>/src/soarm_act_policy/soarm_act_policy/bags/typestore.py -> <repo>/src/soarm_msgs/msg
    return Path(__file__).resolve().parents[3] / MSG_PACKAGE / "msg"


def _ament_msg_dir() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(MSG_PACKAGE)) / "msg"
    except (PackageNotFoundError, ValueError, LookupError):
        return None


def find_msg_dir() -> Path:
    """Directory holding the soarm_msgs `.msg` files (env override, install share, source tree)."""
    candidates: list[Path] = []
    if os.environ.get(MSG_DIR_ENV):
        candidates.append(Path(os.environ[MSG_DIR_ENV]))
    ament = _ament_msg_dir()
    if ament is not None:
        candidates.append(ament)
    candidates.append(_source_tree_msg_dir())
    for c in candidates:
        if c.is_dir() and any(c.glob("*.msg")):
            return c
    raise FileNotFoundError(
        f"cannot find the {MSG_PACKAGE} message definitions; looked in "
        + ", ".join(str(c) for c in candidates)
        + f". Build the workspace (scripts/setup.sh) or set {MSG_DIR_ENV}."
    )


def soarm_msg_types(msg_dir: Path | None = None) -> dict:
    """rosbags type definitions of every `.msg` file of soarm_msgs."""
    msg_dir = msg_dir or find_msg_dir()
    types: dict = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{MSG_PACKAGE}/msg/{path.stem}"))
    return types


@functools.lru_cache(maxsize=None)
def make_typestore() -> Typestore:
    """ROS 2 Kilted standard types plus soarm_msgs (cached; do not mutate the result)."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(soarm_msg_types())
    return store
