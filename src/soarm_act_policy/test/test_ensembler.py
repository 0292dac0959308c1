"""TemporalEnsembler against a direct computation and against LeRobot's ACTTemporalEnsembler."""

import numpy as np
import pytest

from soarm_act_policy.ensembler import TemporalEnsembler


def reference(chunks: dict[int, np.ndarray], step: int, coeff: float) -> np.ndarray | None:
    """Weighted mean of every prediction for `step`, oldest first, w_i = exp(-coeff*i), by hand."""
    preds = []
    for start in sorted(chunks):  # arrival order == start order in these streams
        j = step - start
        if 0 <= j < len(chunks[start]):
            preds.append(chunks[start][j])
    if not preds:
        return None
    num = np.zeros_like(preds[0])
    den = 0.0
    for i, p in enumerate(preds):
        w = np.exp(-coeff * i)
        num += w * p
        den += w
    return num / den


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 100])
@pytest.mark.parametrize("coeff", [0.0, 0.01, 0.5, -0.2])
def test_synchronous_stream_matches_hand_computation(chunk_size, coeff):
    rng = np.random.default_rng(chunk_size)
    ens = TemporalEnsembler(chunk_size, 4, coeff)
    chunks = {}
    for t in range(chunk_size + 12):
        chunks[t] = rng.normal(size=(chunk_size, 4))
        ens.add(t, chunks[t])
        assert ens.count() == min(t + 1, chunk_size)
        np.testing.assert_allclose(ens.action(), reference(chunks, t, coeff), rtol=1e-12, atol=1e-12)
        # the planned future steps are the partial ensembles of the chunks seen so far
        plan = ens.plan(chunk_size)
        assert plan.shape == (chunk_size, 4)
        for k in sorted({0, 1 % chunk_size, chunk_size // 2, chunk_size - 1}):
            np.testing.assert_allclose(plan[k], reference(chunks, t + k, coeff), rtol=1e-12, atol=1e-12)
        ens.advance()


@pytest.mark.parametrize("chunk_size,coeff", [(5, 0.01), (20, 0.1), (50, 0.0)])
def test_delayed_chunks_are_placed_at_their_observation_step(chunk_size, coeff):
    """Async: a chunk computed at step s arrives at t >= s; its past part is dropped."""
    rng = np.random.default_rng(7)
    ens = TemporalEnsembler(chunk_size, 3, coeff)
    chunks = {}
    pending = []  # (arrival step, start step)
    obs_step = 0
    for t in range(6 * chunk_size):
        while pending and pending[0][0] <= t:
            _, s = pending.pop(0)
            chunks[s] = rng.normal(size=(chunk_size, 3))
            used = ens.add(s, chunks[s])
            assert used == max(0, chunk_size - (t - s))
        if not pending and t >= obs_step:  # worker idle: start an inference from this step
            delay = int(rng.integers(0, chunk_size + 2))  # sometimes slower than a whole chunk
            pending.append((t + delay, t))
            obs_step = t
        ref = reference(chunks, t, coeff)
        got = ens.action()
        if ref is None:
            assert got is None and ens.count() == 0
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        ens.advance()


def test_memory_and_cost_do_not_grow():
    ens = TemporalEnsembler(10, 6, 0.01)
    sizes = []
    for t in range(5000):
        ens.add(t, np.ones((10, 6)))
        ens.advance()
        if t in (10, 4999):
            sizes.append(sum(a.nbytes for a in (ens._sum, ens._wsum, ens._count)))
    assert sizes[0] == sizes[1]


def test_plan_stops_at_first_uncovered_step_and_errors():
    ens = TemporalEnsembler(8, 2, 0.01)
    assert ens.action() is None and ens.plan(5).shape == (0, 2)
    ens.add(0, np.arange(6.0).reshape(3, 2))
    assert ens.plan(5).shape == (3, 2)
    with pytest.raises(ValueError, match="after the current step"):
        ens.add(1, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        ens.add(0, np.zeros((3, 5)))
    ens.clear_future()
    assert ens.count() == 0 and ens.current == 0


@pytest.mark.parametrize("chunk_size,coeff", [(1, 0.01), (7, 0.01), (100, 0.01), (30, -0.05), (30, 0.0)])
def test_equals_lerobot_temporal_ensembler(chunk_size, coeff):
    torch = pytest.importorskip("torch")
    from lerobot.policies.act.modeling_act import ACTTemporalEnsembler

    theirs = ACTTemporalEnsembler(coeff, chunk_size)
    ours = TemporalEnsembler(chunk_size, 6, coeff)
    gen = torch.Generator().manual_seed(chunk_size)
    for t in range(3 * chunk_size + 3):
        chunk = torch.randn(1, chunk_size, 6, generator=gen, dtype=torch.float64)
        expected = theirs.update(chunk)[0].numpy()
        ours.add(t, chunk[0].numpy())
        # LeRobot keeps its weights in float32: agreement to float32 precision.
        np.testing.assert_allclose(ours.action(), expected, rtol=1e-6, atol=1e-6)
        ours.advance()
