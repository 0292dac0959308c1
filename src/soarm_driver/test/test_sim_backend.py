"""SimBackend: the real MuJoCo model, stepped and rendered headless (no ROS)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from soarm_driver.backends.base import JOINT_NAMES, CameraSpec, RobotBackend
from soarm_driver.sim.backend import DEFAULT_HOME, SimBackend, intrinsics_from_fovy
from soarm_driver.sim.scene import CUBE


@pytest.fixture(scope="module")
def sim():
    backend = SimBackend({"seed": 3})
    backend.connect()
    yield backend
    backend.disconnect()


def test_is_a_robot_backend_with_simulated_time(sim):
    assert isinstance(sim, RobotBackend)
    assert sim.simulated_time is True
    assert sim.read_positions().shape == (len(JOINT_NAMES),)
    np.testing.assert_allclose(sim.read_positions(), DEFAULT_HOME, atol=0.05)


def test_same_seed_same_scene_other_seed_other_scene(sim):
    sim.reset_scene(11, True)
    pos_a, quat_a = sim.object_poses()[CUBE]
    sim.advance(0.3)  # the world moves on
    sim.reset_scene(12, True)
    pos_b, _ = sim.object_poses()[CUBE]
    sim.reset_scene(11, True)
    pos_c, quat_c = sim.object_poses()[CUBE]
    np.testing.assert_array_equal(pos_a, pos_c)
    np.testing.assert_array_equal(quat_a, quat_c)
    assert np.linalg.norm(pos_a[:2] - pos_b[:2]) > 1e-3
    # Cube lies on the table in the documented region.
    assert 0.17 <= pos_a[0] <= 0.27 and -0.10 <= pos_a[1] <= 0.10
    assert pos_a[2] == pytest.approx(sim.config.cube_size / 2)


def test_unrandomized_scene_is_nominal(sim):
    sim.reset_scene(5, False)
    pos, quat = sim.object_poses()[CUBE]
    np.testing.assert_allclose(pos[:2], sim.config.cube_nominal)
    np.testing.assert_allclose(quat, [1, 0, 0, 0])


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


def test_success_only_when_the_cube_is_lifted(sim):
    sim.reset_scene(4, True)
    sim.advance(0.2)
    assert sim.task_outcome() is None
    # Raise the cube just below, then above the success height (a free body placed by hand).
    adr = sim.model.joint(CUBE).qposadr[0]
    half = sim.config.cube_size / 2
    sim.data.qpos[adr + 2] = half + sim.lift_height - 0.01
    sim.data.qvel[:] = 0
    import mujoco

    mujoco.mj_forward(sim.model, sim.data)
    assert sim.task_outcome() is None
    sim.data.qpos[adr + 2] = half + sim.lift_height + 0.01
    mujoco.mj_forward(sim.model, sim.data)
    assert sim.task_outcome() == "success"
    sim.advance(1.0)  # it falls back onto the table: success stays latched for this episode
    assert sim.cube_height() < 0.01
    assert sim.task_outcome() == "success"
    sim.reset_scene(4, True)
    assert sim.task_outcome() is None


def test_bad_home_pose_is_rejected():
    with pytest.raises(ValueError, match="home_pose"):
        SimBackend({"home_pose": [0.0, 1.0]})
