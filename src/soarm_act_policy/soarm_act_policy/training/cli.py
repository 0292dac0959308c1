"""`train`: train LeRobot's ACT on a LeRobot dataset with LeRobot's own training loop.

    train --repo-id local/soarm_sim --dataset-root data/soarm_sim --output-dir outputs/act_run1
    train --repo-id local/soarm_sim --dataset-root data/soarm_sim --output-dir outputs/cpu --config cpu
    train --repo-id local/soarm_sim --output-dir outputs/act_run1 --resume --steps 200000

Checkpoints: <output-dir>/checkpoints/<step>/pretrained_model (load with
ACTPolicy.from_pretrained or the policy node's `checkpoint` parameter) and `last`.
"""

from __future__ import annotations

import json
import sys
import time

from .backbone import BackboneWeightsError
from .config import TrainConfigError, build_train_config, parse_args, resolve_settings


def main(argv: list[str] | None = None) -> int:
    """Train. Exit codes: 0 done, 2 bad input (message on stderr), 130 Ctrl-C (saved checkpoints kept)."""
    args = parse_args(argv)
    t0 = time.monotonic()
    try:
        settings = resolve_settings(args)
        job = build_train_config(settings)
        from .runner import run

        print(
            f"[train] {'resuming' if job.resume_from else 'training'} ACT "
            f"(preset {settings['config'] or 'none'}; explicit: {', '.join(settings['explicit']) or 'none'}; "
            f"torch intra-op threads: {settings['torch_threads'] or 'default'}) -> {job.cfg.output_dir}",
            flush=True,
        )
        last = run(job)
    except (TrainConfigError, BackboneWeightsError, FileExistsError, FileNotFoundError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted; the last saved checkpoint is kept (resume with --resume)", file=sys.stderr)
        return 130
    step = None
    try:
        step = json.loads((last.parent / "training_state" / "training_step.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        pass
    summary = {
        "checkpoint": str(last),
        "step": step,
        "output_dir": str(job.cfg.output_dir),
        "steps": job.cfg.steps,
        "max_minutes": settings.get("max_minutes"),
        "wall_time_s": round(time.monotonic() - t0, 1),
        "preset": settings["config"],
        "pretrained_backbone": settings["pretrained_backbone"] if not job.resume_from else "(resumed)",
    }
    print("[train] done: " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
