"""The SO-101 URDF: structure, installation, and the real-mesh variant against MuJoCo."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from soarm_act_policy.kinematics import JOINT_NAMES, KinematicChain, parse_joints

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / "config" / "urdf" / "so101.urdf"
MESH_TOOL = ROOT / "config" / "urdf" / "mesh_urdf.py"


def load_mesh_tool():
    spec = importlib.util.spec_from_file_location("soarm_mesh_urdf", MESH_TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_packages_joint_names_match_the_urdf():
    """The driver and the policy package each keep their own JOINT_NAMES (they never import each
    other); both must equal the URDF's movable joints, in motor-id order."""
    from soarm_act_policy.joints import JOINT_NAMES as policy_joints
    from soarm_driver.robot import JOINT_NAMES as driver_joints

    movable = [j.name for j in parse_joints(URDF.read_text()).values() if j.type != "fixed"]
    assert list(driver_joints) == movable
    assert list(policy_joints) == movable


def test_both_packages_joint_limits_and_home_pose_match_the_urdf():
    """Joint limits are written once per package (soarm_driver/robot.py, soarm_act_policy/joints.py):
    both equal the URDF's <limit> values exactly; the driver's home pose lies inside them."""
    from soarm_act_policy.joints import URDF_LIMITS as policy_limits
    from soarm_driver import robot

    movable = [j for j in parse_joints(URDF.read_text()).values() if j.type != "fixed"]
    urdf = {j.name: (j.lower, j.upper) for j in movable}
    assert dict(zip(robot.JOINT_NAMES, zip(robot.LOWER_LIMITS, robot.UPPER_LIMITS))) == urdf
    assert policy_limits == urdf
    assert all(lo <= q <= hi for q, (lo, hi) in zip(robot.HOME_POSE, urdf.values())), robot.HOME_POSE


def test_urdf_tree_is_connected_with_contract_joint_names():
    root = ET.parse(URDF).getroot()
    links = {link.get("name") for link in root.findall("link")}
    joints = parse_joints(URDF.read_text())
    movable = [j.name for j in joints.values() if j.type != "fixed"]
    assert movable == list(JOINT_NAMES)
    children = {j.child for j in joints.values()}
    assert links - children == {"world"}, "every link but world must have exactly one parent joint"
    assert len(children) == len(joints)
    for j in joints.values():
        assert j.parent in links and j.child in links, j.name
    for name in ("base_link", "gripper_frame_link"):
        assert name in links


def test_urdf_installed_in_share_dir():
    installed = ROOT / "install" / "soarm_act_policy" / "share" / "soarm_act_policy" / "urdf" / "so101.urdf"
    assert installed.is_file(), f"{installed} missing: run scripts/setup.sh (colcon build)"
    assert installed.read_text() == URDF.read_text()


def test_mesh_urdf_places_meshes_where_mujoco_does():
    mujoco = pytest.importorskip("mujoco")
    tool = load_mesh_tool()
    try:
        mjcf = tool.official_mjcf()
    except tool.MeshUrdfError as exc:
        pytest.skip(str(exc))
    text = tool.mesh_urdf_text(URDF, mjcf)
    visuals = tool.mesh_visuals(mjcf)
    # Kinematics untouched.
    q = np.random.default_rng(3).uniform(-1.0, 1.0, size=(20, 6))
    np.testing.assert_allclose(KinematicChain(text).positions(q), KinematicChain(URDF.read_text()).positions(q))
    meshes = ET.fromstring(text).findall(".//mesh")
    assert len(meshes) == sum(len(v) for v in visuals.values()) >= 7
    for mesh in meshes:
        assert Path(mesh.get("filename").removeprefix("file://")).is_file()

    # Each mesh visual's world pose equals MuJoCo's pose of the same geom.
    model = mujoco.MjModel.from_xml_path(str(mjcf))
    data = mujoco.MjData(model)
    for name, value in zip(JOINT_NAMES, q[0]):
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_kinematics(model, data)
    root = ET.fromstring(text)
    checked = 0
    for body_name, link_name in tool.BODY_TO_LINK.items():
        link_pose = KinematicChain(text, root_link="world", tip_link=link_name).transforms(q[:1])[0]
        body = model.body(body_name).id
        geoms = [g for g in range(model.ngeom)
                 if model.geom_bodyid[g] == body and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH
                 and model.geom_group[g] == 2]
        link_el = next(el for el in root.findall("link") if el.get("name") == link_name)
        urdf_visuals = link_el.findall("visual")
        assert len(urdf_visuals) == len(geoms), link_name
        for g, visual in zip(geoms, urdf_visuals):
            origin = visual.find("origin")
            joint_xml = (f"<robot><link name='a'/><link name='b'/><joint name='v' type='fixed'><parent link='a'/>"
                         f"<child link='b'/><origin xyz='{origin.get('xyz')}' rpy='{origin.get('rpy')}'/>"
                         "</joint></robot>")
            offset = KinematicChain(joint_xml, root_link="a", tip_link="b").transforms(np.zeros((1, 6)))[0]
            pose = link_pose @ offset
            # MuJoCo re-centres a mesh on its inertial frame (mesh_pos/mesh_quat) and moves
            # the geom to match: the file's own frame is geom pose @ inverse(mesh offset).
            geom_pose = np.eye(4)
            geom_pose[:3, :3] = data.geom_xmat[g].reshape(3, 3)
            geom_pose[:3, 3] = data.geom_xpos[g]
            mesh_offset = np.eye(4)
            rot = np.zeros(9)
            mujoco.mju_quat2Mat(rot, model.mesh_quat[model.geom_dataid[g]])
            mesh_offset[:3, :3] = rot.reshape(3, 3)
            mesh_offset[:3, 3] = model.mesh_pos[model.geom_dataid[g]]
            expected = geom_pose @ np.linalg.inv(mesh_offset)
            np.testing.assert_allclose(pose, expected, atol=1e-6, err_msg=link_name)
            checked += 1
    assert checked >= 7


def test_mesh_tool_cli_reports_missing_meshes_clearly(tmp_path):
    tool = load_mesh_tool()
    try:
        tool.official_mjcf()
    except tool.MeshUrdfError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "m.urdf"
    bad = subprocess.run([sys.executable, str(MESH_TOOL), "--mesh-dir", str(tmp_path / "nowhere"), "-o", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "use --mesh-dir" in bad.stderr and not out.exists()
    ok = subprocess.run([sys.executable, str(MESH_TOOL), "-o", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert out.read_text().count("<mesh ") >= 7


def test_camera_optical_frames_match_the_sim_cameras():
    """<name>_camera_optical_frame in the URDF = the sim's MuJoCo camera (turned to the ROS
    optical convention: MuJoCo cameras look along -z with y up, optical frames along +z, y down)."""
    mujoco = pytest.importorskip("mujoco")
    try:
        from soarm_driver.sim.scene import build_scene
    except ImportError as exc:
        pytest.skip(f"sim scene not importable: {exc}")
    model, _ = build_scene()
    data = mujoco.MjData(model)
    text = URDF.read_text()
    q = np.random.default_rng(5).uniform(-0.8, 0.8, size=(3, 6))
    to_optical = np.diag([1.0, -1.0, -1.0])
    for row in q:
        for name, value in zip(JOINT_NAMES, row):
            data.qpos[model.joint(name).qposadr[0]] = value
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        for camera in ("front", "wrist"):
            pose = KinematicChain(text, root_link="world",
                                  tip_link=f"{camera}_camera_optical_frame").transforms(row[None])[0]
            cam = model.camera(camera).id
            np.testing.assert_allclose(pose[:3, 3], data.cam_xpos[cam], atol=1e-6, err_msg=camera)
            np.testing.assert_allclose(pose[:3, :3], data.cam_xmat[cam].reshape(3, 3) @ to_optical, atol=1e-6,
                                       err_msg=camera)
