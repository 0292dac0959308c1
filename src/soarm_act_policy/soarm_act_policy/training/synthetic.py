"""A small LeRobot dataset with the project's features, written through LeRobot's API.

For tests and benchmarks that need a dataset shaped like the converted sim demos
(``observation.state``/``action`` float32 (6,) in radians, ``observation.images.<camera>``
videos) without running the simulator. The motion is a smooth reach whose target depends
on a per-episode "cube" position that is also painted into the images, so a policy can
learn something from it.
"""

from __future__ import annotations

from pathlib import Path

from ..joints import JOINT_NAMES

TASK = "Put the cube in the target zone"


def dataset_features(cameras=("front", "wrist"), width: int = 128, height: int = 96) -> dict:
    names = [f"{j}.pos" for j in JOINT_NAMES]
    features = {
        "observation.state": {"dtype": "float32", "shape": (len(JOINT_NAMES),), "names": names},
        "action": {"dtype": "float32", "shape": (len(JOINT_NAMES),), "names": names},
    }
    for cam in cameras:
        features[f"observation.images.{cam}"] = {
            "dtype": "video",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
    return features


def make_synthetic_dataset(
    root: Path,
    repo_id: str = "local/soarm_synthetic",
    episodes: int = 2,
    frames: int = 40,
    cameras=("front", "wrist"),
    width: int = 128,
    height: int = 96,
    fps: int = 30,
    seed: int = 0,
):
    """Create and finalize the dataset at ``root`` (must not exist); returns the LeRobotDataset."""
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rng = np.random.default_rng(seed)
    ds = LeRobotDataset.create(
        repo_id=repo_id,
        fps=fps,
        features=dataset_features(cameras, width, height),
        root=root,
        robot_type="so101_follower",
        use_videos=True,
    )
    home = np.zeros(len(JOINT_NAMES), dtype=np.float32)
    for _ in range(episodes):
        cube = rng.uniform(-1.0, 1.0, size=2)
        goal = np.array([0.6 * cube[0], 0.5 + 0.3 * cube[1], -0.6, 0.4, 0.0, 0.8], dtype=np.float32)
        state = home.copy()
        for t in range(frames):
            alpha = min(1.0, (t + 1) / (0.7 * frames))
            action = (home + alpha * (goal - home)).astype(np.float32)
            frame = {"observation.state": state.copy(), "action": action, "task": TASK}
            for i, cam in enumerate(cameras):
                img = np.full((height, width, 3), 40 + 30 * i, dtype=np.uint8)
                cx = int((cube[0] + 1) / 2 * (width - 12))
                cy = int((cube[1] + 1) / 2 * (height - 12))
                img[cy : cy + 12, cx : cx + 12] = (220, 30, 30)
                bar = int(alpha * (width - 1))
                img[-4:, :bar] = (30, 200, 30)
                frame[f"observation.images.{cam}"] = img
            ds.add_frame(frame)
            state = state + 0.5 * (action - state)
        ds.save_episode()
    ds.finalize()
    return ds
