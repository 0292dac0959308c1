"""Training on several GPUs with LeRobot's own Accelerate support.

    python -m soarm_act_policy.training.launch --gpus 4 -- --repo-id local/soarm_sim \\
        --dataset-root data/soarm_sim --output-dir outputs/act_4gpu
    python -m soarm_act_policy.training.launch --gpus 4 --print -- <train arguments>   # show, don't run

runs `accelerate launch --multi_gpu --num_processes 4 -m soarm_act_policy.training.cli
<train arguments>`: one `train` process per GPU. LeRobot's training loop
(lerobot_train.train, which `train` calls) creates the Accelerator itself, so under
`accelerate launch` it shards the batches over the processes (DDP), averages the
gradients and writes checkpoints and logs from the main process only. `--batch-size` is
per GPU (effective batch = gpus x batch size); `--steps` counts optimizer steps.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

TRAIN_MODULE = "soarm_act_policy.training.cli"
MIXED_PRECISION = ("no", "fp16", "bf16")


def accelerate_command(train_args: list[str], gpus: int, *, mixed_precision: str | None = None,
                       main_process_port: int | None = None) -> list[str]:
    """The `accelerate launch` command line running `train` with `train_args` on `gpus` GPUs."""
    if gpus < 1:
        raise ValueError(f"--gpus must be at least 1, got {gpus}")
    cmd = ["accelerate", "launch", "--num_processes", str(gpus)]
    if gpus > 1:
        cmd.append("--multi_gpu")
    if mixed_precision is not None:
        if mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}")
        cmd += ["--mixed_precision", mixed_precision]
    if main_process_port is not None:
        cmd += ["--main_process_port", str(main_process_port)]
    return cmd + ["-m", TRAIN_MODULE, *train_args]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, train_args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(prog="python -m soarm_act_policy.training.launch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpus", type=int, required=True, help="GPUs = training processes on this host")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION, default=None,
                   help="Accelerate mixed precision (default: accelerate's config, else none)")
    p.add_argument("--main-process-port", type=int, default=None, help="rendezvous port (default 29500)")
    p.add_argument("--print", action="store_true", help="print the command instead of running it")
    args = p.parse_args(ours)
    from .config import parse_args

    parse_args(train_args)  # wrong train arguments fail here, not in N processes
    try:
        cmd = accelerate_command(train_args, args.gpus, mixed_precision=args.mixed_precision,
                                 main_process_port=args.main_process_port)
    except ValueError as exc:
        p.error(str(exc))
    if args.print:
        print(shlex.join(cmd))
        return 0
    os.execvp(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
