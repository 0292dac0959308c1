"""Checkpoint selection on validation seeds (evaluation/selection.py): ranking, which
checkpoints count as written, following a run in progress, the best link and the CLI on
real checkpoints rolled out in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
from soarm_act_policy.evaluation import selection as sel
from soarm_act_policy.evaluation.rollout import PLUGIN_GROUP
from soarm_act_policy.random_checkpoint import cached_random_checkpoint

V = sel.Validation


def _rates(*r):
    return dict(zip(("reached", "grasped", "placed", "released"), r))


def _save(train_dir: Path, step: int, move_last: bool = True) -> Path:
    """What LeRobot leaves after saving `step`: checkpoints/<step:06d>/... then last -> it."""
    d = train_dir / "checkpoints" / f"{step:06d}"
    (d / "pretrained_model").mkdir(parents=True)
    if move_last:
        last = train_dir / "checkpoints" / "last"
        if last.is_symlink():
            last.unlink()
        last.symlink_to(d.name)
    return d


def test_ranking_prefers_success_then_stage_progress_then_the_later_step():
    a = V(1000, 0.5, _rates(1, 0.5, 0.5, 0.5))
    b = V(2000, 0.6, _rates(0.6, 0.6, 0.6, 0.6))
    c = V(3000, 0.5, _rates(1, 1, 0.5, 0.5))
    d = V(4000, 0.5, _rates(1, 1, 0.5, 0.5))
    assert sel.choose([a, b, c, d]) is b  # success first, even with less progress
    assert sel.choose([a, c]) is c  # equal success: more of the stages
    assert sel.choose([c, d]) is d and sel.choose([d, c]) is d  # all equal: more training
    assert sel.choose([V(5, 0.0, {})]).step == 5
    with pytest.raises(ValueError, match="no checkpoint"):
        sel.choose([])


def test_only_checkpoints_up_to_last_are_complete(tmp_path):
    assert sel.complete_steps(tmp_path) == [] and sel.last_complete_step(tmp_path) is None
    _save(tmp_path, 1000)
    _save(tmp_path, 2000)
    _save(tmp_path, 3000, move_last=False)  # being written: last still at 2000
    (tmp_path / "checkpoints" / "notes").mkdir()
    assert sel.checkpoint_steps(tmp_path) == [1000, 2000, 3000]
    assert sel.complete_steps(tmp_path) == [1000, 2000]
    assert sel.step_dir_name(tmp_path, 2000) == "002000"


def test_follows_a_run_validating_each_checkpoint_once_and_links_the_best(tmp_path):
    scores = {1000: 0.1, 2000: 0.7, 3000: 0.3, 4000: 0.7, 5000: 0.2}
    pending = sorted(scores)
    seen = []
    polls = {"n": 0}

    def training_runs() -> bool:
        # each poll, "training" saves the next checkpoint; the last one is saved partially
        # (last not moved) and completed only after the process "exits"
        polls["n"] += 1
        if pending:
            step = pending.pop(0)
            _save(tmp_path, step, move_last=step != 5000)
            return True
        last = tmp_path / "checkpoints" / "last"
        last.unlink()
        last.symlink_to("005000")
        return False

    def validate(ckpt: Path) -> V:
        assert (ckpt / "pretrained_model").is_dir()
        step = int(ckpt.name)
        seen.append(step)
        return V(-1, scores[step], _rates(1, scores[step], scores[step], scores[step]))

    best, rows = sel.select(tmp_path, validate, follow=training_runs, poll_s=0.0)
    assert seen == [1000, 2000, 3000, 4000, 5000]  # each once, in order, 5000 only once complete
    assert [r.step for r in rows] == seen
    assert best.step == 4000  # ties 2000 on everything but the step
    link = tmp_path / "checkpoints" / "best"
    assert link.is_symlink() and os.readlink(link) == "004000"
    # a second selection replaces the link (atomically, no stale temporary left behind)
    best2, _ = sel.select(tmp_path, lambda c: V(-1, 1.0 if c.name == "001000" else 0.0), min_step=0)
    assert best2.step == 1000 and os.readlink(link) == "001000"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")) == []
    path = sel.write_selection(tmp_path, best, rows, seeds=[1, 2])
    doc = json.loads(path.read_text())
    assert doc["chosen_step"] == 4000 and [r["step"] for r in doc["rows"]] == seen and doc["seeds"] == [1, 2]


def test_min_step_skips_early_checkpoints(tmp_path):
    for s in (1000, 2000):
        _save(tmp_path, s)
    seen = []
    best, rows = sel.select(tmp_path, lambda c: seen.append(c.name) or V(-1, 0.0), min_step=1500)
    assert seen == ["002000"] and best.step == 2000


def test_process_alive_sees_an_exited_child_as_ended():
    import time

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while sel.process_alive(p.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sel.process_alive(p.pid)
    assert p.returncode is None  # never reaped: it was a zombie, which counts as ended
    p.wait()
    p2 = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert sel.process_alive(p2.pid) and sel.process_alive(os.getpid())
    finally:
        p2.kill()
        p2.wait()
    assert not sel.process_alive(p2.pid)


def test_cli_refuses_a_directory_without_checkpoints(tmp_path, capsys):
    assert sel.main([str(tmp_path), "--seeds", "3", "--no-progress"]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(not any(ep.name == "soarm" for ep in metadata.entry_points(group=PLUGIN_GROUP)),
                    reason="soarm_driver's gymnasium entry point is not installed (colcon build)")
def test_cli_validates_real_checkpoints_in_process(tmp_path_factory, tmp_path):
    ckpt = cached_random_checkpoint(tmp_path_factory.getbasetemp() / "policy_ckpts", "tiny_varied_radians",
                                    action_mean=[0.0, -0.6, 0.9, 1.0, 0.0, 0.4], action_std=[0.2] * 6,
                                    state_mean=[0.0, -1.2, 1.3, 1.0, 0.0, 0.3], state_std=[0.5] * 6, seed=3)
    train = tmp_path / "train"
    for step in (10, 20):
        d = _save(train, step)
        shutil.rmtree(d / "pretrained_model")
        shutil.copytree(ckpt, d / "pretrained_model")
    rc = sel.main([str(train), "--seeds", "3", "4", "--episode-time", "0.3", "--no-progress"])
    assert rc == 0
    doc = json.loads((train / sel.SELECTION_JSON).read_text())
    assert [r["step"] for r in doc["rows"]] == [10, 20] and doc["seeds"] == [3, 4] and doc["path"] == "loop-chunk"
    assert all(set(r["stage_rates"]) == {"reached", "grasped", "placed", "released"} for r in doc["rows"])
    # same weights, same seeds: same result, so the later step wins the tie
    assert doc["rows"][0]["success_rate"] == doc["rows"][1]["success_rate"]
    assert doc["chosen_step"] == 20 and os.readlink(train / "checkpoints" / "best") == "000020"
    assert (train / "checkpoints" / "best" / "pretrained_model" / "model.safetensors").is_file()
