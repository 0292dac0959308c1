"""Run LeRobot's own training (``lerobot.scripts.lerobot_train.train``) for a TrainJob.

Nothing of the loop is re-implemented: LeRobot builds the dataset, policy, processors,
optimizer, Accelerate, checkpoints (``checkpoints/<step>/pretrained_model`` +
``training_state``, ``last``) and logs. Around it this module only:

- loads the chosen initial backbone weights into the freshly built policy (fresh runs);
- turns off the tqdm bar for ``--no-progress-bar``;
- mirrors every metrics log line (loss, l1_loss, kld_loss, grad norm, lr, timings) into
  ``<output_dir>/metrics.jsonl`` for reports and tests;
- passes ``--config_path`` the way LeRobot's CLI does when resuming.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .config import PRETRAINED_DIR, TRAIN_CONFIG_FILE, TrainJob

METRICS_FILE = "metrics.jsonl"
log = logging.getLogger("soarm_train")


class _MetricsFileHandler(logging.Handler):
    """Appends LeRobot's MetricsTracker log records to a JSONL file."""

    def __init__(self, path: Path):
        super().__init__(level=logging.INFO)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        to_dict = getattr(record.msg, "to_dict", None)
        if to_dict is None or not hasattr(record.msg, "reset_averages"):
            return
        try:
            row = {"time": time.time(), **{k: float(v) for k, v in to_dict().items()}}
            row["step"] = int(row.pop("steps"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        except Exception:  # never break training over a log line
            self.handleError(record)


@contextmanager
def _lerobot_hooks(lt, *, backbone_state: dict | None, progress_bar: bool, metrics_path: Path, argv: list[str]):
    saved = {name: getattr(lt, name) for name in ("make_policy", "tqdm", "init_logging")}
    saved_argv = sys.argv
    orig_make_policy, orig_tqdm, orig_init_logging = saved["make_policy"], saved["tqdm"], saved["init_logging"]

    def make_policy(*args, **kwargs):
        policy = orig_make_policy(*args, **kwargs)
        if backbone_state is not None:
            policy.model.backbone.load_state_dict(backbone_state, strict=True)
            logging.info("loaded initial backbone weights (%d tensors)", len(backbone_state))
        return policy

    def tqdm(*args, **kwargs):
        kwargs["disable"] = True
        return orig_tqdm(*args, **kwargs)

    def init_logging(*args, **kwargs):
        orig_init_logging(*args, **kwargs)
        logging.getLogger().addHandler(_MetricsFileHandler(metrics_path))

    lt.make_policy = make_policy
    lt.init_logging = init_logging
    if not progress_bar:
        lt.tqdm = tqdm
    sys.argv = argv  # LeRobot reads --config_path from the command line when resuming
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(lt, name, value)
        sys.argv = saved_argv


def run(job: TrainJob) -> Path:
    """Train; returns the last checkpoint's pretrained_model directory."""
    import lerobot.scripts.lerobot_train as lt
    from lerobot.utils.import_utils import register_third_party_plugins

    from .backbone import load_backbone_state

    cfg, settings = job.cfg, job.settings
    backbone_state = None
    argv = [sys.argv[0]]
    if job.resume_from is not None:
        argv.append(f"--config_path={job.resume_from / PRETRAINED_DIR / TRAIN_CONFIG_FILE}")
    else:
        # Fail before LeRobot loads anything when the weights cannot be had (no hang offline).
        backbone_state = load_backbone_state(settings["pretrained_backbone"], settings["vision_backbone"])
    if settings.get("torch_threads"):
        import torch

        torch.set_num_threads(int(settings["torch_threads"]))
    register_third_party_plugins()
    output_dir = Path(cfg.output_dir)
    with _lerobot_hooks(
        lt,
        backbone_state=backbone_state,
        progress_bar=settings["progress_bar"],
        metrics_path=output_dir / METRICS_FILE,
        argv=argv,
    ):
        lt.train(cfg)
    return output_dir / "checkpoints" / "last" / PRETRAINED_DIR
