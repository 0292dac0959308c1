"""Choose a training run's checkpoint by closed-loop success on validation seeds.

    select_checkpoint outputs/train --seeds 2000-2009 --driver-params config/driver.yaml config/demo/driver.yaml

Checkpoints of one run can differ a lot in closed-loop success while their losses do not
(the demo's run, 20 unseen seeds: 0/75/25/65/20/30 % after 1000..6000 updates), so the last
checkpoint is a lottery ticket. This rolls every saved ``checkpoints/<step>`` out in-process
(`rollout.evaluate_checkpoint`, no ROS, faster than real time) on *validation* seeds — scenes
used neither for the demonstrations nor for the final evaluation, so the evaluation stays
an unbiased estimate — and picks the best one.

Ranking (`rank_key`): higher validation success first; among equals, more progress through
the task stages (mean of the reached/grasped/placed/released rates); among equals, the later
checkpoint (more training).

Output, next to LeRobot's ``checkpoints/last``:

- ``checkpoints/best`` -> ``<step>`` (a relative symlink, replaced atomically);
- ``<train dir>/checkpoint_selection.json``: seeds, execution path, env, one row per
  checkpoint (step, success rate, stage rates, wall s) and the chosen step (written atomically).

Following a run in progress (``--follow-pid``): a checkpoint is validated once LeRobot has
finished writing it, i.e. once ``checkpoints/last`` points at it or at a later step (LeRobot
moves ``last`` after the checkpoint is complete); when the training process has exited, the
remaining complete checkpoints are validated and the choice is made. On 2 cores this uses
the core that a one-thread training leaves free, so selection adds only the last
checkpoint's validation to the run's time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .report import format_stage_rates, write_json

SELECTION_JSON = "checkpoint_selection.json"
BEST_LINK = "best"
LAST_LINK = "last"


@dataclass
class Validation:
    """One checkpoint's result on the validation seeds."""

    step: int
    success_rate: float
    stage_rates: dict = field(default_factory=dict)
    wall_s: float = 0.0


def rank_key(v: Validation) -> tuple:
    """Sort key, larger is better: (success rate, mean stage rate, step)."""
    rates = v.stage_rates or {}
    progress = sum(rates.values()) / len(rates) if rates else 0.0
    return (v.success_rate, progress, v.step)


def choose(validations: Sequence[Validation]) -> Validation:
    """The best validation by `rank_key`; ValueError when there is none."""
    if not validations:
        raise ValueError("no checkpoint was validated")
    return max(validations, key=rank_key)


def checkpoint_steps(train_dir: Path) -> list[int]:
    """Steps of the ``checkpoints/<step>`` directories of a train output dir, ascending."""
    root = Path(train_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(d.name) for d in root.iterdir() if d.name.isdigit() and d.is_dir())


def last_complete_step(train_dir: Path) -> int | None:
    """The step ``checkpoints/last`` points at (LeRobot moves it after a checkpoint is fully
    written), or None while there is none."""
    last = Path(train_dir) / "checkpoints" / LAST_LINK
    if not last.exists():
        return None
    name = last.resolve().name
    return int(name) if name.isdigit() else None


def complete_steps(train_dir: Path) -> list[int]:
    """Checkpoint steps that are fully written (at or before ``last``)."""
    newest = last_complete_step(train_dir)
    if newest is None:
        return []
    return [s for s in checkpoint_steps(train_dir) if s <= newest]


def step_dir_name(train_dir: Path, step: int) -> str:
    """The directory name LeRobot gave `step` (zero-padded, e.g. '006000')."""
    for d in (Path(train_dir) / "checkpoints").iterdir():
        if d.name.isdigit() and int(d.name) == step:
            return d.name
    raise FileNotFoundError(f"no checkpoint of step {step} in {Path(train_dir) / 'checkpoints'}")


def link_best(train_dir: Path, step: int) -> Path:
    """Point ``checkpoints/best`` at `step`'s directory (relative link, atomic replace)."""
    root = Path(train_dir) / "checkpoints"
    link = root / BEST_LINK
    tmp = root / f".{BEST_LINK}.tmp{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(step_dir_name(train_dir, step))
    os.replace(tmp, link)
    return link


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie child counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


Validator = Callable[[Path], Validation]


def select(train_dir: Path, validate: Validator, *, follow: Callable[[], bool] | None = None,
           poll_s: float = 5.0, on_result: Callable[[Validation], None] | None = None,
           min_step: int = 0) -> tuple[Validation, list[Validation]]:
    """Validate the complete checkpoints of `train_dir` (each once, in step order) and choose.

    validate(checkpoint_dir) -> Validation (its step is overwritten with the directory's).
    follow: while it returns True (training still runs), wait for new checkpoints; the
    complete checkpoints are validated once more after it turns False.
    Returns (chosen, all validations in step order); links ``checkpoints/best``."""
    train_dir = Path(train_dir)
    done: dict[int, Validation] = {}

    def validate_new() -> bool:
        new = [s for s in complete_steps(train_dir) if s not in done and s >= min_step]
        for step in new:
            ckpt = train_dir / "checkpoints" / step_dir_name(train_dir, step)
            v = validate(ckpt)
            v.step = step
            done[step] = v
            if on_result is not None:
                on_result(v)
        return bool(new)

    while follow is not None and follow():
        if not validate_new():
            time.sleep(poll_s)
    validate_new()
    validations = [done[s] for s in sorted(done)]
    best = choose(validations)
    link_best(train_dir, best.step)
    return best, validations


def write_selection(train_dir: Path, best: Validation, validations: Sequence[Validation], **context) -> Path:
    """``<train_dir>/checkpoint_selection.json`` (atomic)."""
    doc = {**context, "chosen_step": best.step,
           "chosen_checkpoint": str(Path(train_dir) / "checkpoints" / BEST_LINK / "pretrained_model"),
           "rows": [asdict(v) for v in validations]}
    return write_json(doc, Path(train_dir) / SELECTION_JSON)


class RolloutValidator:
    """Validates a checkpoint by rolling it out in-process (`rollout.evaluate_checkpoint`);
    call it with a ``checkpoints/<step>`` dir, `close()` when done.

    The sim env is built once and reused for every checkpoint with the same cameras and image
    size (all of a run's checkpoints have them): that saves the MuJoCo and renderer set-up
    (~1-2 s) per checkpoint."""

    def __init__(self, seeds: Sequence[int], path: str, env_kwargs: dict, device: str = "cpu",
                 progress: bool = True):
        self.seeds, self.path, self.env_kwargs = list(seeds), path, dict(env_kwargs)
        self.device, self.progress = device, progress
        self._envs: dict[tuple, object] = {}

    def _env_for(self, model: Path):
        from .rollout import env_kwargs_for_checkpoint, make_env

        kwargs = env_kwargs_for_checkpoint(model, self.env_kwargs)
        key = (tuple(kwargs["cameras"]), tuple(kwargs.get("image_size") or ()))
        if key not in self._envs:
            self._envs[key] = make_env(**kwargs)
        return self._envs[key]

    def __call__(self, ckpt: Path) -> Validation:
        from .rollout import evaluate_checkpoint

        t0 = time.monotonic()
        model = ckpt / "pretrained_model"
        r = evaluate_checkpoint(model, self.seeds, [self.path], env_kwargs=self.env_kwargs, device=self.device,
                                progress=self.progress, env=self._env_for(model))
        s = r["paths"][self.path]
        return Validation(step=-1, success_rate=float(s["success_rate"]), stage_rates=s.get("stage_rates") or {},
                          wall_s=round(time.monotonic() - t0, 1))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


# ---------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    from .rollout import LOOP_PATHS, PATHS

    p = argparse.ArgumentParser(prog="select_checkpoint", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train_dir", type=Path, help="a train --output-dir (holds checkpoints/<step>/ and checkpoints/last)")
    p.add_argument("--seeds", nargs="+", default=["2000-2009"],
                   help="validation scene seeds, disjoint from the demonstrations' and the evaluation's "
                        "(default: 2000-2009; the demo records 0.. and evaluates 1000..)")
    p.add_argument("--path", default="loop-chunk", choices=[x for x in PATHS if x != "loop-async"],
                   help=f"in-process execution path (default: loop-chunk; {', '.join(LOOP_PATHS)} are the "
                        "policy node's modes)")
    p.add_argument("--driver-params", nargs="*", default=[], metavar="YAML",
                   help="driver parameter files for the env (home pose, limits, cameras), e.g. "
                        "config/driver.yaml config/demo/driver.yaml")
    p.add_argument("--episode-time", type=float, default=20.0, help="s of sim time per episode (default: 20)")
    p.add_argument("--min-step", type=int, default=0, help="skip checkpoints before this step (default: 0)")
    p.add_argument("--follow-pid", type=int, default=None,
                   help="validate checkpoints as the training process PID saves them; choose when it has exited")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto (default: cpu)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 chosen, 2 bad input / nothing to validate, 130 Ctrl-C."""
    args = build_parser().parse_args(argv)
    from .rollout import env_kwargs_from_driver_params, parse_seeds

    seeds = parse_seeds(args.seeds)
    if not seeds or args.episode_time <= 0:
        print("select_checkpoint: error: need --seeds and --episode-time > 0", file=sys.stderr)
        return 2
    if args.follow_pid is None and not complete_steps(args.train_dir):
        print(f"select_checkpoint: error: no complete checkpoint in {args.train_dir / 'checkpoints'} "
              "(checkpoints/<step>/ with checkpoints/last pointing at it or later); is this a train --output-dir?",
              file=sys.stderr)
        return 2
    try:
        env_kwargs = {**env_kwargs_from_driver_params(args.driver_params), "episode_time": args.episode_time}
    except (OSError, ValueError) as e:
        print(f"select_checkpoint: error: --driver-params: {e}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(max(1, args.torch_threads))
    validate = RolloutValidator(seeds, args.path, env_kwargs, device=args.device, progress=args.progress)
    follow = (lambda: process_alive(args.follow_pid)) if args.follow_pid is not None else None

    def report(v: Validation) -> None:
        print(f"[select_checkpoint] step {v.step:6d}: success {100 * v.success_rate:.0f} % "
              f"({format_stage_rates(v.stage_rates)}) in {v.wall_s:.0f} s", flush=True)

    try:
        best, rows = select(args.train_dir, validate, follow=follow, on_result=report, min_step=args.min_step)
    except ValueError as e:
        print(f"select_checkpoint: error: {e} in {args.train_dir} (did training save a checkpoint?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("select_checkpoint: interrupted", file=sys.stderr)
        return 130
    finally:
        validate.close()
    path = write_selection(args.train_dir, best, rows, seeds=seeds, path=args.path,
                           env={k: (list(v) if isinstance(v, tuple) else v) for k, v in env_kwargs.items()})
    print(f"[select_checkpoint] chosen: step {best.step} (success {100 * best.success_rate:.0f} % on "
          f"{len(seeds)} validation seeds) -> {args.train_dir / 'checkpoints' / BEST_LINK}; {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
