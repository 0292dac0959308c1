"""Multi-GPU training command: accelerate's own parser reads it as `train` on N processes."""

import pytest
from accelerate.commands.launch import launch_command_parser

from soarm_act_policy.training.config import parse_args
from soarm_act_policy.training.launch import TRAIN_MODULE, accelerate_command, main

TRAIN = ["--repo-id", "local/soarm_sim", "--dataset-root", "data/soarm_sim", "--output-dir", "outputs/act_4gpu",
         "--batch-size", "16"]


def _parsed(cmd):
    assert cmd[:2] == ["accelerate", "launch"]
    return launch_command_parser().parse_args(cmd[2:])


def test_command_runs_train_module_on_every_gpu():
    a = _parsed(accelerate_command(TRAIN, 4, mixed_precision="bf16", main_process_port=29555))
    assert a.multi_gpu and a.num_processes == 4 and a.mixed_precision == "bf16" and a.main_process_port == 29555
    assert a.module and a.training_script == TRAIN_MODULE and a.training_script_args == TRAIN
    assert parse_args(a.training_script_args).batch_size == 16  # the train arguments arrive unchanged


def test_one_gpu_is_not_multi_gpu_and_bad_values_are_refused():
    a = _parsed(accelerate_command(TRAIN, 1))
    assert not a.multi_gpu and a.num_processes == 1 and a.mixed_precision is None
    with pytest.raises(ValueError, match="--gpus"):
        accelerate_command(TRAIN, 0)
    with pytest.raises(ValueError, match="--mixed-precision"):
        accelerate_command(TRAIN, 2, mixed_precision="fp8")


def test_cli_prints_the_command_and_checks_train_arguments_first(capsys):
    assert main(["--gpus", "2", "--print", "--", *TRAIN]) == 0
    out = capsys.readouterr().out.split()
    assert out[:2] == ["accelerate", "launch"] and _parsed(out).training_script_args == TRAIN
    with pytest.raises(SystemExit):
        main(["--gpus", "2", "--print", "--", "--repo-id", "x"])  # train's --output-dir missing
