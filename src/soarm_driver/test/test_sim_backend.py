"""SimBackend: the real MuJoCo model, stepped and rendered headless (no ROS)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES, CameraSpec, RobotBackend
from soarm_driver.sim.backend import DEFAULT_HOME, SimBackend, intrinsics_from_fovy
from soarm_driver.sim.scene import CUBE, TARGET


@pytest.fixture(scope="module")
def sim():
    backend = SimBackend({"seed": 3})
    backend.connect()
    yield backend
    backend.disconnect()


def test_is_a_robot_backend_with_simulated_time(sim):
    assert isinstance(sim, RobotBackend)
    assert sim.simulated_time is True
    assert sim.task_text == "Put the cube in the target zone"
    assert sim.read_positions().shape == (len(JOINT_NAMES),)
    np.testing.assert_allclose(sim.read_positions(), DEFAULT_HOME, atol=0.05)


def test_same_seed_same_scene_other_seed_other_scene(sim):
    sim.reset_scene(11, True)
    a = sim.object_poses()
    sim.advance(0.3)  # the world moves on
    sim.reset_scene(12, True)
    b = sim.object_poses()
    sim.reset_scene(11, True)
    c = sim.object_poses()
    for name in (CUBE, TARGET):
        np.testing.assert_array_equal(a[name][0], c[name][0])
        np.testing.assert_array_equal(a[name][1], c[name][1])
        assert np.linalg.norm(a[name][0][:2] - b[name][0][:2]) > 1e-3


@pytest.mark.parametrize("seed", range(0, 200, 7))
def test_scenes_lie_in_the_documented_region(sim, seed):
    sim.reset_scene(seed, True)
    poses = sim.object_poses()
    cube, target = poses[CUBE][0], poses[TARGET][0]
    for xyz in (cube, target):
        assert 0.15 <= xyz[0] <= 0.27 and -0.12 <= xyz[1] <= 0.12
    assert cube[2] == pytest.approx(sim.config.cube_size / 2) and target[2] == 0.0
    assert np.linalg.norm(cube[:2] - target[:2]) >= 0.10
    assert not sim.cube_in_target()


def test_unrandomized_scene_is_nominal(sim):
    sim.reset_scene(5, False)
    poses = sim.object_poses()
    np.testing.assert_allclose(poses[CUBE][0][:2], sim.config.cube_nominal)
    np.testing.assert_allclose(poses[CUBE][1], [1, 0, 0, 0])
    np.testing.assert_allclose(poses[TARGET][0][:2], sim.config.target_nominal)


def test_two_backends_with_same_seed_evolve_identically():
    a, b = SimBackend({"seed": 7}), SimBackend({"seed": 7})
    a.connect(), b.connect()
    goal = np.array(DEFAULT_HOME) + [0.2, 0.1, -0.1, 0.1, 0.3, 0.2]
    for backend in (a, b):
        backend.write_goal_positions(goal)
        backend.advance(0.5)
    np.testing.assert_array_equal(a.read_positions(), b.read_positions())
    np.testing.assert_array_equal(a.object_poses()[CUBE][0], b.object_poses()[CUBE][0])


def test_arm_tracks_goals(sim):
    goal = np.array([0.3, -0.8, 0.9, 0.6, -0.5, 0.8])
    sim.write_goal_positions(goal)
    sim.advance(2.0)
    q = sim.read_positions()
    # Position servos with gravity: small steady-state error (documented bound 0.05 rad).
    assert np.max(np.abs(q - goal)) < 0.05, q - goal
    assert np.max(np.abs(sim.read_velocities())) < 0.05
    sim.write_goal_positions(np.array(DEFAULT_HOME))
    sim.advance(1.5)


def test_advance_steps_simulated_time(sim):
    t0 = sim.time
    for _ in range(30):
        sim.advance(1 / 30)
    assert sim.time - t0 == pytest.approx(1.0, abs=sim.model.opt.timestep)


def test_torque_off_makes_the_arm_limp(sim):
    sim.write_goal_positions(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.3]))  # arm stretched out
    sim.advance(1.5)
    lift_before = sim.read_positions()[1]
    sim.set_torque(False)
    sim.advance(1.0)
    sagged = sim.read_positions()[1] - lift_before
    sim.set_torque(True)
    sim.write_goal_positions(np.array(DEFAULT_HOME))
    sim.advance(2.0)
    assert abs(sagged) > 0.2, "without torque gravity must pull the stretched arm down"


def test_rejects_bad_goals(sim):
    with pytest.raises(ValueError):
        sim.write_goal_positions(np.array([0.0, np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError):
        sim.write_goal_positions(np.zeros(5))


def test_images_shape_dtype_and_cameras_differ(sim):
    sim.reset_scene(3, True)
    cams = [CameraSpec("front", 128, 96), CameraSpec("wrist", 128, 96), CameraSpec("big", 320, 240, source="front")]
    frames = sim.capture_frames(cams)
    assert set(frames) == {"front", "wrist", "big"}
    for spec in cams:
        img = frames[spec.name].image
        assert img.shape == (spec.height, spec.width, 3) and img.dtype == np.uint8
        assert img.std() > 5, f"{spec.name} looks blank"
        np.testing.assert_allclose(frames[spec.name].intrinsics, intrinsics_from_fovy(
            sim.model.cam_fovy[sim.model.camera(spec.source or spec.name).id], spec.width, spec.height))
    assert np.mean(np.abs(frames["front"].image.astype(int) - frames["wrist"].image.astype(int))) > 10
    # The cube is red and visible from the front camera.
    img = frames["big"].image.astype(int)
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() > 20


def test_unknown_camera_is_a_clear_error(sim):
    with pytest.raises(ValueError, match="available: front, wrist"):
        sim.capture_frames([CameraSpec("side", 64, 48)])


def test_intrinsics_from_fovy():
    k = intrinsics_from_fovy(90.0, 640, 480)
    assert k[0, 0] == pytest.approx(240.0) and k[1, 1] == pytest.approx(240.0)
    assert (k[0, 2], k[1, 2]) == (320.0, 240.0)


def place_cube(sim, xy, z):
    import mujoco

    adr = sim.model.joint(CUBE).qposadr[0]
    sim.data.qpos[adr : adr + 3] = [xy[0], xy[1], z]
    sim.data.qpos[adr + 3 : adr + 7] = [1, 0, 0, 0]
    sim.data.qvel[:] = 0
    mujoco.mj_forward(sim.model, sim.data)


def test_success_only_when_the_cube_rests_in_the_zone(sim):
    sim.write_goal_positions(np.array([1.8, -1.2, 1.3, 1.0, 0.0, 0.3]))  # arm turned aside
    sim.advance(1.5)
    sim.reset_scene(4, True)
    sim.advance(0.5)
    assert sim.task_outcome() is None  # cube on the table, outside the zone
    target = sim.object_poses()[TARGET][0]
    half = sim.config.cube_size / 2
    edge = sim.config.target_size / 2
    # Just outside the zone's square, resting: no success.
    place_cube(sim, target[:2] + [edge + 0.004, 0.0], half)
    sim.advance(0.3)
    assert sim.task_outcome() is None
    # Inside but held in the air (falling): no success while it is above the table.
    place_cube(sim, target[:2] + [0.01, -0.01], half + 0.05)
    assert sim.task_outcome() is None
    sim.advance(0.05)
    assert sim.task_outcome() is None  # still falling
    sim.advance(0.6)  # lands and rests inside
    assert sim.cube_height() < 0.002 and sim.cube_in_target()
    assert sim.task_outcome() == "success"
    place_cube(sim, target[:2] + [0.2, 0.0], half)  # knocked out later: success stays latched
    assert sim.task_outcome() == "success"
    sim.reset_scene(4, True)
    assert sim.task_outcome() is None


def test_cube_held_by_the_arm_is_not_released(sim):
    # Put the cube between the jaws of a gripper pointing down at the zone, and close them.
    from soarm_driver.sim.expert import ScriptedExpert

    sim.reset_scene(9, True)
    poses = sim.object_poses()
    expert = ScriptedExpert()
    expert.start(poses[CUBE][0], poses[CUBE][1], poses[TARGET][0], sim.read_positions())
    t = 0.0
    while expert.phase(t) != "release":
        sim.write_goal_positions(expert.command(t))
        sim.advance(1 / 30)
        t += 1 / 30
    # The cube is in the zone, low, still held: not a success yet.
    assert sim.cube_in_target() and sim.cube_touches_arm()
    assert sim.task_outcome() is None


def test_bad_home_pose_is_rejected():
    with pytest.raises(ValueError, match="home_pose"):
        SimBackend({"home_pose": [0.0, 1.0]})
