"""ROS-free core of the policy node: images, units, observation mapping, checkpoints, tick logic."""

import math
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from soarm_act_policy.checkpoint import (
    CheckpointError, LoadedPolicy, check_compatible, read_spec, resolve_checkpoint,
)
from soarm_act_policy.control_loop import (
    ERROR, HOLDING, RUNNING, ControlLoop, LoopConfig, Snapshot, resolve_mode,
)
from soarm_act_policy.images import ImageFormatError, image_to_rgb, to_chw_float
from soarm_act_policy.observation import (
    ObservationBuilder, ObservationMapping, joint_vector, parse_camera_keys,
)
from soarm_act_policy.random_checkpoint import cached_random_checkpoint
from soarm_act_policy.units import JOINT_NAMES, URDF_LIMITS, JointUnits


def image_msg(rgb: np.ndarray, encoding="rgb8", pad=0):
    h, w, _ = rgb.shape
    px = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    rows = np.zeros((h, 3 * w + pad), np.uint8)
    rows[:, : 3 * w] = px.reshape(h, 3 * w)
    return SimpleNamespace(height=h, width=w, step=3 * w + pad, encoding=encoding, data=rows.tobytes())


def joint_msg(names, positions):
    return SimpleNamespace(name=list(names), position=list(positions))


# ---- images -------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "RGB8"])
@pytest.mark.parametrize("pad", [0, 4])
def test_image_encodings_and_row_padding(encoding, pad):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = image_to_rgb(image_msg(rgb, encoding.lower(), pad) if encoding != "RGB8" else
                       SimpleNamespace(**{**vars(image_msg(rgb, "rgb8", pad)), "encoding": "RGB8"}))
    np.testing.assert_array_equal(out, rgb)


def test_image_view_shares_the_message_buffer():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    buf = bytearray(rgb.tobytes())
    msg = SimpleNamespace(height=2, width=3, step=9, encoding="rgb8", data=buf)
    out = image_to_rgb(msg)
    buf[0] = 200  # writing the message buffer shows through: no copy was made
    assert out[0, 0, 0] == 200


@pytest.mark.parametrize("encoding", ["mono8", "rgba8", "16UC1", "yuv422"])
def test_other_encodings_are_refused_by_name(encoding):
    msg = SimpleNamespace(height=2, width=2, step=8, encoding=encoding, data=bytes(16))
    with pytest.raises(ImageFormatError, match=f"{encoding}.*rgb8 or bgr8"):
        image_to_rgb(msg)


def test_short_buffer_and_bad_step_are_refused():
    with pytest.raises(ImageFormatError, match="expected height"):
        image_to_rgb(SimpleNamespace(height=4, width=2, step=6, encoding="rgb8", data=bytes(10)))
    with pytest.raises(ImageFormatError, match="smaller than 3"):
        image_to_rgb(SimpleNamespace(height=4, width=2, step=5, encoding="rgb8", data=bytes(40)))


def test_to_chw_float_and_resize():
    rgb = np.full((8, 10, 3), 255, np.uint8)
    rgb[..., 1] = 0
    t = to_chw_float(rgb)
    assert tuple(t.shape) == (3, 8, 10) and float(t[0].min()) == 1.0 and float(t[1].max()) == 0.0
    r = to_chw_float(rgb, (4, 5))
    assert tuple(r.shape) == (3, 4, 5)
    np.testing.assert_allclose(r[0].numpy(), 1.0, atol=1e-6)


# ---- units --------------------------------------------------------------------------
def test_radians_is_identity_and_degrees_convert():
    q = np.array([0.1, -0.5, 1.0, 0.3, -2.0, 0.0])
    np.testing.assert_array_equal(JointUnits("radians").to_policy(q), q)
    deg = JointUnits("lerobot_degrees").to_policy(q)
    np.testing.assert_allclose(deg[:5], np.degrees(q[:5]))
    lo, hi = URDF_LIMITS["gripper"]
    assert deg[5] == pytest.approx(100 * (0.0 - lo) / (hi - lo))


def test_gripper_and_legacy_ranges_map_limits_to_ends():
    lo = np.array([URDF_LIMITS[j][0] for j in JOINT_NAMES])
    hi = np.array([URDF_LIMITS[j][1] for j in JOINT_NAMES])
    u = JointUnits("lerobot_range100")
    np.testing.assert_allclose(u.to_policy(lo), [-100] * 5 + [0], atol=1e-9)
    np.testing.assert_allclose(u.to_policy(hi), [100] * 5 + [100], atol=1e-9)
    d = JointUnits("lerobot_degrees")
    assert d.to_policy(hi)[5] == pytest.approx(100.0) and d.to_policy(lo)[5] == pytest.approx(0.0)


@pytest.mark.parametrize("units", ["radians", "lerobot_degrees", "lerobot_range100"])
def test_units_round_trip_on_chunks(units):
    u = JointUnits(units, ranges={"gripper": (0.0, 1.5)})
    chunk = np.random.default_rng(1).uniform(-1, 1, (20, 6))
    np.testing.assert_allclose(u.to_radians(u.to_policy(chunk)), chunk, atol=1e-12)


def test_unknown_units_are_refused():
    with pytest.raises(ValueError, match="radians, lerobot_degrees, lerobot_range100"):
        JointUnits("motor_ticks")


# ---- observation mapping ------------------------------------------------------------
def test_joints_are_matched_by_name():
    names = list(reversed(JOINT_NAMES)) + ["extra"]
    q = joint_vector(JOINT_NAMES, names, [6, 5, 4, 3, 2, 1, 99])
    np.testing.assert_array_equal(q, [1, 2, 3, 4, 5, 6])
    with pytest.raises(KeyError, match="gripper"):
        joint_vector(JOINT_NAMES, JOINT_NAMES[:5], [0] * 5)


def test_camera_keys_parameter_form():
    assert parse_camera_keys(["front:top", "", "wrist:observation.images.hand"]) == {"front": "top", "wrist": "hand"}
    with pytest.raises(ValueError, match="<camera>:<feature suffix>"):
        parse_camera_keys(["front"])
    with pytest.raises(ValueError, match="not configured"):
        ObservationMapping(cameras=("front",), camera_keys={"side": "top"})


def test_builder_maps_topics_units_and_sizes():
    m = ObservationMapping(cameras=("front", "wrist"), camera_keys={"front": "top"}, units="lerobot_degrees")
    shapes = {"observation.images.top": (3, 4, 6), "observation.images.wrist": (3, 4, 6)}
    b = ObservationBuilder(m, shapes)
    front = np.zeros((4, 6, 3), np.uint8)
    front[..., 0] = 255
    wrist = np.zeros((4, 6, 3), np.uint8)
    obs = b.build(joint_msg(JOINT_NAMES, [0.5, 0, 0, 0, 0, 0]),
                  {"front": image_msg(front, "rgb8"), "wrist": image_msg(wrist, "bgr8")})
    assert set(obs) == {"observation.state", "observation.images.top", "observation.images.wrist"}
    assert float(obs["observation.state"][0]) == pytest.approx(math.degrees(0.5), rel=1e-6)
    assert float(obs["observation.images.top"][0].mean()) == 1.0 and float(obs["observation.images.top"][1:].max()) == 0
    with pytest.raises(ImageFormatError, match="8x4 but the checkpoint's observation.images.top is 6x4.*resize_images"):
        b.build(joint_msg(JOINT_NAMES, [0] * 6),
                {"front": image_msg(np.zeros((4, 8, 3), np.uint8)), "wrist": image_msg(wrist)})
    m.resize = True
    obs = b.build(joint_msg(JOINT_NAMES, [0] * 6), {"front": image_msg(np.zeros((8, 12, 3), np.uint8)),
                                                  "wrist": image_msg(wrist)})
    assert tuple(obs["observation.images.top"].shape) == (3, 4, 6)


# ---- checkpoints --------------------------------------------------------------------
MEAN = [0.1, -0.2, 0.3, -0.4, 0.5, 0.6]


@pytest.fixture(scope="session")
def ckpt_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "policy_ckpts"


@pytest.fixture(scope="session")
def tiny_ckpt(ckpt_root):
    return cached_random_checkpoint(ckpt_root, "tiny_radians", action_mean=MEAN, action_std=[1e-4] * 6,
                                    state_std=[0.5] * 6)


def test_checkpoint_layout_is_lerobots(tiny_ckpt):
    files = {p.name for p in tiny_ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"} <= files
    assert any(f.startswith("policy_preprocessor_step_") and f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)


def test_resolve_accepts_output_dirs_and_refuses_clearly(tiny_ckpt, tmp_path):
    assert resolve_checkpoint(str(tiny_ckpt)) == tiny_ckpt
    out = tmp_path / "run"
    (out / "checkpoints" / "last").mkdir(parents=True)
    (out / "checkpoints" / "last" / "pretrained_model").symlink_to(tiny_ckpt)
    assert resolve_checkpoint(str(out)).resolve() == tiny_ckpt.resolve()
    with pytest.raises(CheckpointError, match="no checkpoint given"):
        resolve_checkpoint("")
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        resolve_checkpoint("nobody/no-such-policy")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for f in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json", "pytorch_model.bin"):
        (pickled / f).write_text("{}")
    with pytest.raises(CheckpointError, match="model.safetensors.*pickled.*never unpickled"):
        resolve_checkpoint(str(pickled))
    (pickled / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read the features in .*config.json"):
        read_spec(pickled)


def test_hub_id_from_the_local_cache(tiny_ckpt, tmp_path):
    """A hub id resolves to its snapshot in the local HF cache (layout of huggingface_hub), offline."""
    import shutil

    repo = tmp_path / "hub" / "models--someone--act_so101"
    snap = repo / "snapshots" / "0123abcd"
    shutil.copytree(tiny_ckpt, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    path = resolve_checkpoint("someone/act_so101", cache_dir=tmp_path / "hub")
    assert path == snap and read_spec(path).chunk_size == 20
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        resolve_checkpoint("someone/other", cache_dir=tmp_path / "hub")


def test_feature_checks_name_the_mismatch(tiny_ckpt):
    spec = read_spec(tiny_ckpt)
    assert (spec.chunk_size, spec.n_action_steps, spec.policy_type) == (20, 20, "act")
    assert spec.image_shapes == {"observation.images.front": (3, 96, 128), "observation.images.wrist": (3, 96, 128)}
    check_compatible(spec, ObservationMapping())
    check_compatible(spec, ObservationMapping(), image_size=(128, 96))
    with pytest.raises(CheckpointError, match=r"needs \['observation.images.front'\].*\['side'\] feed"):
        check_compatible(spec, ObservationMapping(cameras=("side", "wrist")))
    # renaming fixes it
    check_compatible(spec, ObservationMapping(cameras=("side", "wrist"), camera_keys={"side": "front"}))
    with pytest.raises(CheckpointError,
                       match=r"state observation.state has shape \(6,\), configured joints give \(5,\)"):
        check_compatible(spec, ObservationMapping(joint_names=JOINT_NAMES[:5]))
    with pytest.raises(CheckpointError, match="is 128x96.*cameras publish 640x480"):
        check_compatible(spec, ObservationMapping(), image_size=(640, 480))
    check_compatible(spec, ObservationMapping(resize=True), image_size=(640, 480))


def test_loaded_policy_predicts_in_checkpoint_units(tiny_ckpt):
    lp = LoadedPolicy(tiny_ckpt, "cpu")
    chunk = lp.predict_chunk(lp.dummy_observation())
    assert chunk.shape == (20, 6)
    np.testing.assert_allclose(chunk, np.tile(MEAN, (20, 1)), atol=5e-3)  # std 1e-4 pins it to the mean
    assert lp.last_latency > 0


# ---- tick logic ---------------------------------------------------------------------
class CountingPredictor:
    """chunk[j] = [call index, j, ...]: shows which prediction each action came from."""

    def __init__(self, chunk_size, delay=0.0):
        self.calls = 0
        self.chunk_size = chunk_size
        self.delay = delay
        self.payloads = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, payload):
        self.release.wait(5)
        time.sleep(self.delay)
        self.payloads.append(payload)
        self.calls += 1
        c = np.zeros((self.chunk_size, 6))
        c[:, 0] = self.calls
        c[:, 1] = np.arange(self.chunk_size)
        return c


def fresh(now, streams=("joint_states", "cameras/front/image_raw")):
    return Snapshot({s: now - 0.01 for s in streams}, payload=now)


def make_loop(mode, chunk=5, n_action=5, **kw):
    pred = CountingPredictor(chunk, kw.pop("delay", 0.0))
    loop = ControlLoop(LoopConfig(mode=mode, period=1.0, chunk_size=chunk, n_action_steps=n_action,
                                  trajectory_points=3, max_observation_age=0.1, **kw), pred)
    return loop, pred


def test_starts_disabled_then_runs_and_counts():
    loop, pred = make_loop("ensemble")
    r = loop.tick(1.0, fresh(1.0))
    assert r.state == HOLDING and "disabled" in r.hold_reason and r.plan is None and pred.calls == 0
    loop.set_enabled(True)
    for i in range(4):
        r = loop.tick(2.0 + i, fresh(2.0 + i))
        assert r.state == RUNNING and r.num_blended == i + 1 and r.chunk_index == i
    assert pred.calls == 4 and loop.counters.steps == 4
    assert r.plan.shape == (max(3, loop.reach_periods() + 1), 6)  # trajectory_points 3, or the reach
    # step 3 gets predictions 1..4, each at index 3-k: blended with exp weights, oldest first
    w = np.exp(-0.01 * np.arange(4))
    np.testing.assert_allclose(r.plan[0, 0], (w * [1, 2, 3, 4]).sum() / w.sum())
    np.testing.assert_allclose(r.plan[0, 1], (w * [3, 2, 1, 0]).sum() / w.sum())


def test_stale_and_missing_observations_hold_and_count():
    loop, pred = make_loop("ensemble")
    loop.set_enabled(True)
    r = loop.tick(1.0, Snapshot({"joint_states": 0.99, "cameras/wrist/image_raw": None}))
    assert r.state == HOLDING and "cameras/wrist/image_raw" in r.hold_reason and loop.counters.skipped_missing == 1
    r = loop.tick(2.0, Snapshot({"joint_states": 1.99, "cameras/wrist/image_raw": 1.5}))
    assert r.state == HOLDING and loop.counters.skipped_stale == 1
    assert r.hold_reason == "stale observation: cameras/wrist/image_raw is 0.50 s old (max 0.10 s)"
    assert r.observation_age == pytest.approx(0.5) and pred.calls == 0
    r = loop.tick(3.0, fresh(3.0))
    assert r.state == RUNNING and r.chunk_index == 0  # a hold does not advance the timeline


def test_chunk_mode_predicts_every_n_action_steps():
    loop, pred = make_loop("chunk", chunk=6, n_action=4)
    loop.set_enabled(True)
    idx = []
    for i in range(9):
        r = loop.tick(float(i), fresh(float(i)))
        idx.append(r.chunk_index)
        assert r.num_blended == 1
        # the executed part of the chunk (n_action_steps), its last action held past the next tick
        n = max(3, loop.reach_periods() + 1)
        np.testing.assert_array_equal(r.plan[:, :2], [[1 + i // 4, min(i % 4 + j, 3)] for j in range(n)])
    assert idx == [0, 1, 2, 3, 0, 1, 2, 3, 0] and pred.calls == 3


def test_a_plan_never_ends_before_the_next_tick_where_its_chunk_ends():
    """At the last steps of a chunk the predictions end: the plan still reaches two periods past
    the time its step is due (the next tick and a period of margin), holding the last action.
    Before, the last step of a chunk was planned as one point with time_from_start 0 stamped with
    its step's due time, which had passed at publication: the driver rejected every such
    trajectory as "ends in the past" (a DAgger run's driver log: 151 in 3 minutes)."""
    loop = ControlLoop(LoopConfig(mode="chunk", period=1.0, chunk_size=6, n_action_steps=4, trajectory_points=1,
                                  max_observation_age=0.1), CountingPredictor(6))
    loop.set_enabled(True)
    for i in range(9):
        now = i + 0.5  # ticks half a period after their step is due
        r = loop.tick(now, fresh(now))
        assert r.state == RUNNING and r.step == i
        end = r.plan_time + (len(r.plan) - 1) * loop.period
        assert end >= now + loop.period + 0.5, (i, len(r.plan))  # the next tick, plus margin
        n = loop.reach_periods() + 1  # trajectory_points 1: the reach alone decides
        assert n >= 3 and len(r.plan) == n
        # chunk[j] for the steps it covers (up to its 4th action), then that action held
        np.testing.assert_array_equal(r.plan[:, :2], [[1 + i // 4, min(i % 4 + j, 3)] for j in range(n)])


def test_reset_and_episode_events_clear_state():
    loop, pred = make_loop("ensemble")
    loop.set_enabled(True)
    for i in range(3):
        loop.tick(float(i), fresh(float(i)))
    loop.episode_over("episode 0 SUCCESS: waiting for the next STARTED")
    r = loop.tick(5.0, fresh(5.0))
    assert r.state == HOLDING and "SUCCESS" in r.hold_reason and r.hold_started
    assert loop.tick(6.0, fresh(6.0)).hold_started is False
    loop.episode_started()
    assert loop.counters.steps == 0
    r = loop.tick(7.0, fresh(7.0))
    assert r.state == RUNNING and r.num_blended == 1 and r.chunk_index == 0 and r.plan[0, 0] == 4
    loop.tick(8.0, fresh(8.0))
    loop.reset()
    r = loop.tick(9.0, fresh(9.0))
    assert r.num_blended == 1 and loop.counters.steps == 1
    loop.set_enabled(False)
    r = loop.tick(10.0, fresh(10.0))
    assert r.state == HOLDING and r.hold_started


def test_inference_error_is_an_error_state_until_reset():
    def broken(payload):
        raise RuntimeError("bad frame")

    loop = ControlLoop(LoopConfig(mode="ensemble", chunk_size=4, n_action_steps=4, trajectory_points=2), broken)
    loop.set_enabled(True)
    r = loop.tick(1.0, fresh(1.0))
    assert r.state == ERROR and "RuntimeError: bad frame" in r.hold_reason
    assert loop.tick(2.0, fresh(2.0)).state == ERROR
    loop.reset()
    assert loop.error == ""


class SwitchablePredictor(CountingPredictor):
    """CountingPredictor whose chunk can be replaced by a bad value (nan, inf) while `bad` is set."""

    def __init__(self, chunk_size):
        super().__init__(chunk_size)
        self.bad = None

    def __call__(self, payload):
        c = super().__call__(payload)
        if self.bad is not None:
            c[2, 3] = self.bad
        return c


def tick_settled(loop, now, snap, mode):
    """One tick; in async mode ticks again (same time) until the worker's result is in."""
    r = loop.tick(now, snap)
    deadline = time.monotonic() + 5
    while mode == "async" and r.state == HOLDING and time.monotonic() < deadline:
        time.sleep(0.005)
        r = loop.tick(now, snap)
    return r


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("mode", ["ensemble", "chunk", "async"])
def test_non_finite_model_output_is_an_error_and_never_planned(mode, bad):
    pred = SwitchablePredictor(chunk_size=5)
    loop = ControlLoop(LoopConfig(mode=mode, period=1.0, chunk_size=5, n_action_steps=2, trajectory_points=3,
                                  max_observation_age=0.1), pred)
    try:
        loop.set_enabled(True)
        r = tick_settled(loop, 0.0, fresh(0.0), mode)
        assert r.state == RUNNING and np.isfinite(r.plan).all()
        pred.bad = bad
        results = []
        for i in range(1, 8):  # chunk mode predicts again at step 2
            results.append(tick_settled(loop, float(i), fresh(float(i)), mode))
            if results[-1].state == ERROR:
                break
        r = results[-1]
        assert r.state == ERROR and r.plan is None, [(x.state, x.hold_reason) for x in results]
        assert r.hold_started or mode == "async"  # async: a wait for the chunk may have started the hold
        assert "non-finite action in the model's chunk" in r.hold_reason
        assert f"the first {bad} at (step, joint) (2, 3)" in r.hold_reason and "~/reset" in r.hold_reason
        assert all(np.isfinite(x.plan).all() for x in results if x.plan is not None)
        pred.bad = None  # the model is fine again: the loop still holds until reset
        for i in range(10, 13):
            r = tick_settled(loop, float(i), fresh(float(i)), mode)
            assert r.state == ERROR and r.plan is None and not r.hold_started and "non-finite" in r.hold_reason
        loop.reset()
        r = tick_settled(loop, 20.0, fresh(20.0), mode)
        assert r.state == RUNNING and np.isfinite(r.plan).all()
    finally:
        loop.close()


def test_plan_that_blends_to_infinity_is_an_error():
    """Finite but huge chunks overflow in the weighted sum: the plan itself is checked too."""
    loop = ControlLoop(LoopConfig(mode="ensemble", period=1.0, chunk_size=4, n_action_steps=4, trajectory_points=2,
                                  max_observation_age=0.1), lambda payload: np.full((4, 6), 1e308))
    loop.set_enabled(True)
    r = loop.tick(0.0, fresh(0.0))
    assert r.state == RUNNING and r.plan[0, 0] == 1e308
    with np.errstate(over="ignore"):  # the overflow this test makes
        r = loop.tick(1.0, fresh(1.0))
    assert r.state == ERROR and r.plan is None and "non-finite action in the blended plan" in r.hold_reason
    assert loop.counters.steps == 1  # the failed step was not played


def test_observations_stamped_in_the_future_are_not_fresh():
    loop, pred = make_loop("ensemble")  # future_stamp_tolerance 0.1 s by default
    loop.set_enabled(True)
    r = loop.tick(1.0, Snapshot({"joint_states": 0.99, "cameras/front/image_raw": 1.05}, payload=1.0))
    assert r.state == RUNNING and pred.calls == 1  # within the tolerance (clock jitter)
    r = loop.tick(2.0, Snapshot({"joint_states": 1.99, "cameras/front/image_raw": 2.5}, payload=2.0))
    assert r.state == HOLDING and r.plan is None and r.hold_started and pred.calls == 1
    assert r.hold_reason.startswith("observation from the future: cameras/front/image_raw is stamped 0.50 s after "
                                    "the node clock (max 0.10 s): synchronise")
    assert r.observation_age == pytest.approx(-0.5) and loop.counters.skipped_stale == 1
    r = loop.tick(3.0, fresh(3.0))
    assert r.state == RUNNING and r.step == 0  # a new timeline on the clock, not on the future stamp
    strict = ControlLoop(LoopConfig(mode="ensemble", period=1.0, chunk_size=5, n_action_steps=5,
                                    future_stamp_tolerance=0.0), CountingPredictor(5))
    strict.set_enabled(True)
    assert strict.tick(1.0, Snapshot({"joint_states": 1.001})).state == HOLDING
    with pytest.raises(ValueError, match="future_stamp_tolerance must be >= 0 s"):
        LoopConfig(future_stamp_tolerance=-0.1)


class GatedPredictor:
    """An inference that ends only when the test opens the gate for it (`finish`): the test, not
    the scheduler, decides at which tick each async result exists. chunk[j] = [call, j, 0, ...]."""

    def __init__(self, chunk_size):
        self.chunk_size = chunk_size
        self.payloads = []  # payload of each call, in call order (recorded when the call starts)
        self.returned = 0
        self._gate = threading.Semaphore(0)

    @property
    def started(self) -> int:
        return len(self.payloads)

    def finish(self, n=1):
        for _ in range(n):
            self._gate.release()

    def __call__(self, payload):
        self.payloads.append(payload)
        call = len(self.payloads)
        if not self._gate.acquire(timeout=60):
            raise RuntimeError("the test never let this inference finish")
        c = np.zeros((self.chunk_size, 6))
        c[:, 0] = call
        c[:, 1] = np.arange(self.chunk_size)
        self.returned += 1
        return c


def tick_when_taken(loop, pred, now, calls):
    """Tick at `now` until the worker has started inference number `calls`: every earlier result is
    then queued (the worker queues a result before it takes the next job), and one more tick at
    `now` collects it. Ticks at the same time play no new step. The wall-clock limit only guards
    against a worker that never runs; nothing here depends on how fast it runs."""
    deadline = time.monotonic() + 60
    while pred.started < calls:
        loop.tick(now, fresh(now))
        assert time.monotonic() < deadline, f"the inference worker never started call {calls}"
        time.sleep(0.001)
    return loop.tick(now, fresh(now))


def test_async_never_waits_and_places_chunks_at_their_observation_step():
    """Async mode, each inference finished by the test at a chosen step (no wall-clock timing):
    the tick never waits for the worker, a chunk is placed at its observation's step however late
    it arrives (its past actions dropped), overlapping chunks are blended, and a gap (no chunk
    covers the step) holds without restarting the timeline."""
    pred = GatedPredictor(8)
    loop = ControlLoop(LoopConfig(mode="async", period=1.0, chunk_size=8, n_action_steps=8, trajectory_points=3,
                                  max_observation_age=0.1), pred)
    w = np.exp(-0.01 * np.arange(2))  # ensembling weights, oldest prediction first
    try:
        loop.set_enabled(True)
        # call 1 from the observation of t = 0 (step 0; t0 = its stamp -0.01): the ticks go on without it
        for now in (0.0, 0.0, 0.1, 0.2):
            r = loop.tick(now, fresh(now))
            assert r.state == HOLDING and "waiting for first chunk" in r.hold_reason
        assert loop.counters.skipped_no_action == 4 and pred.returned == 0 and pred.started <= 1
        pred.finish()
        # call 1 arrives at step 1; call 2 starts from the observation of step 1
        r = tick_when_taken(loop, pred, 1.0, 2)
        assert r.state == RUNNING and r.step == 1 and r.num_blended == 1
        np.testing.assert_array_equal(r.plan[:, :2], [[1, 1], [1, 2], [1, 3]])  # chunk 1 from its j = 1
        for step in (2, 3, 4):  # call 2 still runs: chunk 1 alone, the tick does not wait
            r = loop.tick(float(step), fresh(float(step)))
            assert r.state == RUNNING and r.step == step and r.num_blended == 1 and tuple(r.plan[0, :2]) == (1, step)
        assert pred.returned == 1 and pred.started == 2
        pred.finish()
        # chunk 2 (observation of step 1) arrives at step 5: placed at step 1, so step 5 plays its j = 4,
        # blended with chunk 1's j = 5; call 3 starts from the observation of step 5
        r = tick_when_taken(loop, pred, 5.0, 3)
        assert r.state == RUNNING and r.step == 5 and r.num_blended == 2
        np.testing.assert_allclose(r.plan[0, :2], [(w[0] * 1 + w[1] * 2) / w.sum(), (w[0] * 5 + w[1] * 4) / w.sum()])
        for step, blended in ((6, 2), (7, 2), (8, 1)):  # chunk 1 covers steps 0..7, chunk 2 steps 1..8
            r = loop.tick(float(step), fresh(float(step)))
            assert r.state == RUNNING and r.step == step and r.num_blended == blended
        np.testing.assert_array_equal(r.plan[:, :2], [[2, 7]] * 3)  # coverage ends: its last action, held
        held = loop.counters.skipped_no_action
        r = loop.tick(9.0, fresh(9.0))  # nothing covers step 9 while call 3 runs: hold, keep the timeline
        assert r.state == HOLDING and "waiting for a chunk covering this step" in r.hold_reason
        assert loop.counters.skipped_no_action == held + 1 and pred.returned == 2
        pred.finish()
        # chunk 3 (observation of step 5) arrives at step 10: its j = 5, on the same timeline
        r = tick_when_taken(loop, pred, 10.0, 4)
        assert r.state == RUNNING and r.step == 10 and r.num_blended == 1
        np.testing.assert_array_equal(r.plan[:, :2], [[3, 5], [3, 6], [3, 7]])
        assert pred.payloads == [0.0, 1.0, 5.0, 10.0]
        assert loop.counters.skipped_late == 1  # step 9 passed unplayed
    finally:
        pred.finish(10)  # the worker returns from call 4 and sees the stop
        loop.close()


def test_loop_config_is_validated():
    with pytest.raises(ValueError, match="mode must be one of ensemble, chunk, async"):
        LoopConfig(mode="fast")
    with pytest.raises(ValueError, match="n_action_steps"):
        LoopConfig(chunk_size=10, n_action_steps=11)


# ---- time: the step played follows the clock ------------------------------------------
PERIOD = 0.1


class RampOnTheClock:
    """A model whose chunk is the time line itself: chunk[j] = (step of the observation) + j.

    The observation's step is computed from its time (the payload) and the timeline's t0,
    so every prediction agrees on the action of each step: whatever the blending, the
    action played at a step equals that step's index on the clock.
    """

    def __init__(self, chunk_size, t0, delay=0.0):
        self.chunk_size, self.t0, self.delay = chunk_size, t0, delay

    def __call__(self, observed_time):
        time.sleep(self.delay)
        first = math.floor((observed_time - self.t0) / PERIOD + 1e-6)
        c = np.zeros((self.chunk_size, 6))
        c[:, 0] = first + np.arange(self.chunk_size)
        return c


# tick times in periods after t0 = 10.0 s: regular, late (2 and 3 periods missed),
# coalesced (two ticks inside one period), and jittered inside a period
TICKS = [0, 1, 2, 5, 5.2, 5.9, 6, 6.5, 10, 11, 11.01, 12.7, 13, 17.3, 18, 19, 20]


@pytest.mark.parametrize("mode", ["ensemble", "chunk", "async"])
def test_played_step_equals_elapsed_steps_under_late_and_coalesced_ticks(mode):
    t0 = 10.0
    model = RampOnTheClock(chunk_size=8, t0=t0)
    loop = ControlLoop(LoopConfig(mode=mode, period=PERIOD, chunk_size=8, n_action_steps=6,
                                  trajectory_points=3, max_observation_age=1.0), model)
    try:
        loop.set_enabled(True)
        played = []
        for k in TICKS:
            now = t0 + k * PERIOD
            snap = Snapshot({"joint_states": now}, payload=now)
            r = loop.tick(now, snap)
            if mode == "async":  # let the worker finish, then tick again at the same time
                deadline = time.monotonic() + 5
                while r.state != RUNNING and time.monotonic() < deadline:
                    time.sleep(0.005)
                    r = loop.tick(now, snap)
            assert r.state == RUNNING, r.hold_reason
            elapsed = math.floor(k + 1e-9)
            assert r.step == elapsed
            assert r.plan_time == pytest.approx(t0 + elapsed * PERIOD)
            # the step played is the one due now, and the plan goes on along the clock
            # (then its last covered action, held where the predictions end before the next tick)
            last = r.plan[-1, 0]
            assert last >= elapsed
            np.testing.assert_allclose(r.plan[:, 0], np.minimum(elapsed + np.arange(len(r.plan)), last))
            played.append(elapsed)
        distinct = sorted(set(played))
        assert loop.counters.steps == len(distinct)
        gaps = sum(b - a - 1 for a, b in zip(distinct, distinct[1:]))
        assert loop.counters.skipped_late == gaps == 8
    finally:
        loop.close()


def test_chunk_mode_inference_does_not_stretch_the_timeline():
    """A chunk computed from an observation at step s plays chunk[j] at step s + j, even
    when the tick that consumes it comes late (inference or a slow executor)."""
    t0 = 0.0
    model = RampOnTheClock(chunk_size=10, t0=t0)
    loop = ControlLoop(LoopConfig(mode="chunk", period=PERIOD, chunk_size=10, n_action_steps=10,
                                  trajectory_points=2, max_observation_age=1.0), model)
    loop.set_enabled(True)
    r = loop.tick(0.0, Snapshot({"joint_states": 0.0}, payload=0.0))
    assert r.step == 0 and r.plan[0, 0] == 0
    # the next tick comes 4.5 periods later: step 4 of the chunk is due, not step 1
    r = loop.tick(0.45, Snapshot({"joint_states": 0.45}, payload=0.45))
    assert r.step == 4 and r.plan[0, 0] == 4 and r.chunk_index == 4
    assert loop.counters.skipped_late == 3
    # past the chunk's end a new chunk comes from the newest observation (step 12)
    r = loop.tick(1.25, Snapshot({"joint_states": 1.2}, payload=1.2))
    assert r.step == 12 and r.plan[0, 0] == 12 and r.chunk_index == 0


def test_plan_reaches_past_the_next_expected_tick():
    """With in-tick inference slower than a period, the plan covers the wait for the next tick."""
    model = RampOnTheClock(chunk_size=20, t0=0.0, delay=0.25)
    loop = ControlLoop(LoopConfig(mode="ensemble", period=PERIOD, chunk_size=20, n_action_steps=20,
                                  trajectory_points=2, max_observation_age=1.0), model)
    loop.set_enabled(True)
    r = loop.tick(0.0, Snapshot({"joint_states": 0.0}, payload=0.0))
    assert loop.last_latency >= 0.25
    needed = math.ceil((PERIOD + loop.last_latency) / PERIOD) + 1
    assert len(r.plan) >= needed >= 5


@pytest.mark.parametrize("margin, periods_past_the_next_tick", [(0.0, 1), (0.1, 4), (0.25, 10)])
def test_plan_outlives_the_next_tick_by_the_plan_margin(margin, periods_past_the_next_tick):
    """A chunk-mode plan at 40 Hz reaches plan_margin (at least one period) past the next expected tick:
    with one period only, a loaded demo run's driver received 2 plans at their very end and rejected them."""
    period = 0.025
    loop = ControlLoop(LoopConfig(mode="chunk", period=period, chunk_size=100, n_action_steps=100,
                                  trajectory_points=1, plan_margin=margin, max_observation_age=1.0),
                       CountingPredictor(100))
    loop.set_enabled(True)
    r = loop.tick(0.0, fresh(0.0))
    next_tick = r.plan_time + period + loop.last_latency
    end = r.plan_time + (len(r.plan) - 1) * period
    assert end >= next_tick + max(margin, period) - 1e-9
    assert len(r.plan) - 1 == math.ceil((period + loop.last_latency) / period + periods_past_the_next_tick - 1e-6)
    with pytest.raises(ValueError, match="plan_margin"):
        LoopConfig(mode="chunk", plan_margin=-0.1)


def test_hold_starts_a_new_timeline():
    model = RampOnTheClock(chunk_size=8, t0=0.0)
    loop = ControlLoop(LoopConfig(mode="ensemble", period=PERIOD, chunk_size=8, n_action_steps=8,
                                  max_observation_age=0.15), model)
    loop.set_enabled(True)
    assert loop.tick(0.0, Snapshot({"joint_states": 0.0}, payload=0.0)).step == 0
    r = loop.tick(1.0, Snapshot({"joint_states": 0.5}, payload=0.5))
    assert r.state == HOLDING and r.hold_started and loop.counters.skipped_stale == 1
    model.t0 = 2.0
    r = loop.tick(2.0, Snapshot({"joint_states": 2.0}, payload=2.0))
    assert r.state == RUNNING and r.step == 0 and r.plan_time == 2.0 and loop.counters.skipped_late == 0


def test_resolve_mode():
    assert resolve_mode("auto", 0.01, 1 / 30) == ("ensemble", "")
    assert resolve_mode("auto", 0.02, 1 / 30) == ("async", "")
    assert resolve_mode("auto", float("inf"), 1 / 30) == ("async", "")
    mode, warning = resolve_mode("ensemble", 0.157, 1 / 30)
    assert mode == "ensemble" and "157 ms" in warning and "auto or async" in warning
    assert resolve_mode("ensemble", 0.01, 1 / 30) == ("ensemble", "")
    assert resolve_mode("chunk", 0.5, 1 / 30) == ("chunk", "")
    with pytest.raises(ValueError, match="auto, ensemble, chunk, async"):
        resolve_mode("fastest", 0.0, 0.1)
