"""Checkpoints are data from elsewhere: processor JSON that names code, and weight files that
do not match the model, are refused before LeRobot reads them (checkpoint.check_processors,
check_weights), by LoadedPolicy, resolve_checkpoint, the `policy` executable and train --resume.

The crafted checkpoints are real attacks on LeRobot 0.6: `test_lerobot_alone_runs_the_crafted_step`
shows LeRobot's own loader running them (the marker file appears), so the refusals below
are not refusals of something harmless.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soarm_act_policy.checkpoint import (
    ALLOWED_STEPS, POSTPROCESSOR, PREPROCESSOR, WEIGHTS, CheckpointError, LoadedPolicy, check_processors,
    resolve_checkpoint,
)
from soarm_act_policy.random_checkpoint import cached_random_checkpoint

ROOT = Path(__file__).resolve().parents[3]
EVIL_MODULE = "soarm_evil_step"


@pytest.fixture(scope="session")
def clean_ckpt(tmp_path_factory):
    return cached_random_checkpoint(tmp_path_factory.getbasetemp() / "policy_ckpts", "tiny_safety")


def copy_ckpt(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_steps(ckpt: Path, filename: str, edit) -> None:
    file = ckpt / filename
    doc = json.loads(file.read_text())
    edit(doc["steps"])
    file.write_text(json.dumps(doc, indent=2))


def shell_step(marker: Path) -> dict:
    """A step LeRobot resolves by import path and calls: subprocess.getoutput(cmd='touch marker')."""
    return {"class": "subprocess.getoutput", "config": {"cmd": f"touch {marker}"}}


def evil_module_step(tmp_path: Path, marker: Path) -> dict:
    """A step naming a module on sys.path whose import writes the marker."""
    (tmp_path / f"{EVIL_MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('pwned')\n\n"
        "class Step:\n    def __init__(self, **kw):\n        pass\n"
    )
    return {"class": f"{EVIL_MODULE}.Step", "config": {}}


@pytest.fixture
def on_sys_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop(EVIL_MODULE, None)


# ---- the allowlist is LeRobot's ACT pipeline, exactly ------------------------------------
def test_allowlist_is_lerobots_act_pipeline(clean_ckpt):
    """Every allowed name resolves to the listed LeRobot class, and a checkpoint saved by LeRobot
    has exactly the allowed steps (fails when LeRobot changes its ACT processors)."""
    from lerobot.processor import ProcessorStepRegistry

    for filename, allowed in ALLOWED_STEPS.items():
        for name, path in allowed.items():
            cls = ProcessorStepRegistry.get(name)
            assert f"{cls.__module__}.{cls.__qualname__}" == path
        saved = [s["registry_name"] for s in json.loads((clean_ckpt / filename).read_text())["steps"]]
        assert sorted(set(saved)) == sorted(allowed), filename
    check_processors(clean_ckpt)  # the untouched checkpoint passes


@pytest.mark.parametrize("attack", ["subprocess", "module"])
def test_lerobot_alone_runs_the_crafted_step(clean_ckpt, tmp_path, on_sys_path, attack):
    """Without our check, LeRobot's loader executes the crafted step: the threat is real."""
    from lerobot.processor import PolicyProcessorPipeline

    marker = tmp_path / "marker"
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    step = shell_step(marker) if attack == "subprocess" else evil_module_step(on_sys_path, marker)
    edit_steps(ckpt, PREPROCESSOR, lambda steps: steps.insert(0, step))
    try:
        PolicyProcessorPipeline.from_pretrained(str(ckpt), config_filename=PREPROCESSOR)
    except Exception:  # LeRobot fails *after* running the step (its result is no ProcessorStep)
        pass
    assert marker.exists()


@pytest.mark.parametrize("attack", ["subprocess", "module"])
@pytest.mark.parametrize("filename", [PREPROCESSOR, POSTPROCESSOR])
def test_crafted_processor_step_is_refused_and_never_run(clean_ckpt, tmp_path, on_sys_path, attack, filename):
    marker = tmp_path / "marker"
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    step = shell_step(marker) if attack == "subprocess" else evil_module_step(on_sys_path, marker)
    edit_steps(ckpt, filename, lambda steps: steps.insert(1, step))
    name = "subprocess.getoutput" if attack == "subprocess" else f"{EVIL_MODULE}.Step"
    for load in (lambda: resolve_checkpoint(str(ckpt)), lambda: LoadedPolicy(ckpt, "cpu")):
        with pytest.raises(CheckpointError) as e:
            load()
        msg = str(e.value)
        assert f"{ckpt / filename}: step 1 '{name}'" in msg and "refusing to load" in msg, msg
        assert "Allowed steps in" in msg
    assert not marker.exists()
    assert EVIL_MODULE not in sys.modules


@pytest.mark.parametrize("change, named, problem", [
    # an unknown registry name (a plugin's, or LeRobot's non-ACT steps)
    (lambda s: s.append({"registry_name": "tokenizer_processor", "config": {}}), "'tokenizer_processor'",
     "is not a known LeRobot ACT processor step"),
    # a known registry name paired with another class (LeRobot would use the name; refused anyway)
    (lambda s: s[0].update({"class": "subprocess.Popen"}), "'rename_observations_processor' (class 'subprocess.Popen')",
     "names a class"),
    # the right class under the wrong registry name
    (lambda s: s[0].update({"class": ALLOWED_STEPS[PREPROCESSOR]["normalizer_processor"]}),
     "'rename_observations_processor' (class", "names a class"),
    # statistics read from outside the checkpoint
    (lambda s: s[3].update({"state_file": "../../elsewhere.safetensors"}), "'normalizer_processor'",
     "has state_file '../../elsewhere.safetensors'"),
    (lambda s: s[1].update({"hook": "os.system"}), "'to_batch_processor'", "has unknown keys ['hook']"),
    (lambda s: s[1].update({"registry_name": ["to_batch_processor"]}), "['to_batch_processor']", "not a string"),
])
def test_other_processor_deviations_are_refused(clean_ckpt, tmp_path, change, named, problem):
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    edit_steps(ckpt, PREPROCESSOR, change)
    with pytest.raises(CheckpointError) as e:
        check_processors(ckpt)
    assert named in str(e.value) and problem in str(e.value), str(e.value)


def test_a_known_step_by_class_path_is_accepted(clean_ckpt, tmp_path):
    """LeRobot writes `class` for unregistered steps; ours by their exact LeRobot class path pass."""
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")

    def by_class(steps):
        steps[1] = {"class": ALLOWED_STEPS[PREPROCESSOR][steps[1].pop("registry_name")], "config": {}}

    edit_steps(ckpt, PREPROCESSOR, by_class)
    check_processors(ckpt)


# ---- weights load strictly ------------------------------------------------------------------
def rewrite_weights(ckpt: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(ckpt / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(ckpt / WEIGHTS), metadata={"format": "pt"})


def test_weight_file_with_a_missing_tensor_is_refused(clean_ckpt, tmp_path):
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    removed = "model.action_head.weight"
    rewrite_weights(ckpt, lambda t: t.pop(removed))
    with pytest.raises(CheckpointError) as e:
        LoadedPolicy(ckpt, "cpu")
    msg = str(e.value)
    assert f"missing tensor(s) {removed}" in msg and "unexpected" not in msg and "Nothing was loaded" in msg, msg


def test_weight_file_with_an_extra_tensor_is_refused(clean_ckpt, tmp_path):
    import torch

    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    rewrite_weights(ckpt, lambda t: t.update({"model.backdoor.weight": torch.zeros(2, 2)}))
    with pytest.raises(CheckpointError) as e:
        LoadedPolicy(ckpt, "cpu")
    msg = str(e.value)
    assert "unexpected tensor(s) model.backdoor.weight" in msg and "missing" not in msg, msg


def test_weight_file_with_a_wrong_shape_is_refused(clean_ckpt, tmp_path):
    import torch

    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    rewrite_weights(ckpt, lambda t: t.update({"model.action_head.bias": torch.zeros(7)}))
    with pytest.raises(CheckpointError, match=r"wrong shape\(s\) model.action_head.bias \(7,\) \(expected \(6,\)\)"):
        LoadedPolicy(ckpt, "cpu")


def test_untouched_checkpoint_loads_every_tensor(clean_ckpt):
    from safetensors.torch import load_file

    lp = LoadedPolicy(clean_ckpt, "cpu")
    stored = load_file(str(clean_ckpt / WEIGHTS))
    state = lp.policy.state_dict()
    assert set(state) == set(stored)
    for key in ("model.action_head.weight", "model.encoder.layers.0.linear1.weight"):
        assert state[key].equal(stored[key])  # loaded, not left at a random init


def test_non_act_config_is_refused_before_lerobot_parses_it(clean_ckpt, tmp_path):
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["type"] = "diffusion"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="holds a 'diffusion' policy; only ACT"):
        LoadedPolicy(ckpt, "cpu")


# ---- through the executables ----------------------------------------------------------------
def resumable_run(clean_ckpt: Path, run: Path) -> Path:
    """A training output dir whose last checkpoint is `clean_ckpt` with a train_config.json (LeRobot's) for it;
    returns its pretrained_model dir."""
    from lerobot.configs.default import DatasetConfig
    from lerobot.configs.train import TrainPipelineConfig

    from soarm_act_policy.checkpoint import load_config

    last = run / "checkpoints" / "000010"
    ckpt = copy_ckpt(clean_ckpt, last / "pretrained_model")
    TrainPipelineConfig(dataset=DatasetConfig(repo_id="local/x"), policy=load_config(ckpt), output_dir=run,
                        job_name="x").save_pretrained(ckpt)
    (last / "training_state").mkdir()
    (run / "checkpoints" / "last").symlink_to("000010")
    return ckpt


def resume(run: Path):
    from soarm_act_policy.training.config import build_train_config, parse_args, resolve_settings

    return build_train_config(resolve_settings(parse_args(["--repo-id", "local/x", "--output-dir", str(run),
                                                           "--resume", "--steps", "20"])))


def test_train_resume_refuses_a_crafted_checkpoint(clean_ckpt, tmp_path):
    from soarm_act_policy.training.config import TrainConfigError

    marker = tmp_path / "marker"
    ckpt = resumable_run(clean_ckpt, tmp_path / "run")
    assert resume(tmp_path / "run").cfg.policy.dim_model == 32  # untouched: resumes
    edit_steps(ckpt, POSTPROCESSOR, lambda steps: steps.append(shell_step(marker)))
    with pytest.raises(TrainConfigError, match=r"--resume: .*policy_postprocessor.json: step 2 'subprocess.getoutput'"):
        resume(tmp_path / "run")
    assert not marker.exists()


@pytest.mark.parametrize("edit, message", [
    # LeRobot resumes with train_config.json's policy: its model must match the weights too
    (lambda c: c["policy"].update(dim_model=48), r"wrong shape\(s\) .*\(the policy of .*train_config.json\)"),
    (lambda c: c["policy"].update(use_peft=True), "sets policy.use_peft, which `train` never writes"),
    (lambda c: c.update(env={"type": "aloha", "task": "AlohaInsertion-v0"}), "sets env, which"),
])
def test_train_resume_refuses_a_train_config_it_never_writes(clean_ckpt, tmp_path, edit, message):
    from soarm_act_policy.training.config import TrainConfigError

    ckpt = resumable_run(clean_ckpt, tmp_path / "run")
    file = ckpt / "train_config.json"
    cfg = json.loads(file.read_text())
    edit(cfg)
    file.write_text(json.dumps(cfg))
    with pytest.raises(TrainConfigError, match=message):
        resume(tmp_path / "run")


def test_rollout_exits_2_on_a_crafted_checkpoint(clean_ckpt, tmp_path, capsys):
    from soarm_act_policy.evaluation.rollout import main

    marker = tmp_path / "marker"
    ckpt = copy_ckpt(clean_ckpt, tmp_path / "ckpt")
    edit_steps(ckpt, PREPROCESSOR, lambda steps: steps.insert(2, shell_step(marker)))
    assert main([str(ckpt), "--num-episodes", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"rollout: error: {ckpt / PREPROCESSOR}: step 2 'subprocess.getoutput'" in err, err
    assert not marker.exists()


@pytest.mark.dds
def test_policy_executable_exits_2_naming_the_step_and_the_tensor(clean_ckpt, tmp_path, start_node):
    """The installed `policy` node refuses to start (exit 2) on each crafted checkpoint."""
    marker = tmp_path / "marker"
    crafted = copy_ckpt(clean_ckpt, tmp_path / "crafted")
    edit_steps(crafted, PREPROCESSOR, lambda steps: steps.insert(0, shell_step(marker)))
    truncated = copy_ckpt(clean_ckpt, tmp_path / "truncated")
    rewrite_weights(truncated, lambda t: t.pop("model.action_head.weight"))
    expected = {
        crafted: f"refusing to start: {crafted / PREPROCESSOR}: step 0 'subprocess.getoutput'",
        truncated: "missing tensor(s) model.action_head.weight",
    }
    procs = {ckpt: start_node("soarm_act_policy", "policy", params_file=ROOT / "config" / "policy.yaml",
                              params={"checkpoint": str(ckpt), "torch_threads": 1}) for ckpt in expected}
    for ckpt, proc in procs.items():
        try:
            proc.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"policy did not refuse {ckpt.name}; log:\n{proc.log()[-3000:]}")
        log = proc.log()
        assert proc.proc.returncode == 2, log[-2000:]
        assert expected[ckpt] in log, log[-2000:]
    assert not marker.exists()
