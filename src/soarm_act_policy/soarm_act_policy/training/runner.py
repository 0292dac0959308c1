"""Run LeRobot's own training (``lerobot.scripts.lerobot_train.train``) for a TrainJob.

Nothing of the loop is re-implemented: LeRobot builds the dataset, policy, processors,
optimizer, Accelerate, checkpoints (``checkpoints/<step>/pretrained_model`` +
``training_state``, ``last``) and logs. Around it this module only:

- loads the chosen initial backbone weights into the freshly built policy (fresh runs);
- freezes the backbone when its learning rate is 0 (``--lr-backbone 0``);
- turns off the tqdm bar for ``--no-progress-bar``;
- mirrors every metrics log line (loss, l1_loss, kld_loss, grad norm, lr, timings) into
  ``<output_dir>/metrics.jsonl`` for reports and tests;
- passes ``--config_path`` the way LeRobot's CLI does when resuming;
- ``--max-minutes``: once the time is up, has LeRobot save a checkpoint of the step just
  finished and stops before the next one.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .config import PRETRAINED_DIR, RUN_SETTINGS, RUN_SETTINGS_FILE, TRAIN_CONFIG_FILE, TrainJob

METRICS_FILE = "metrics.jsonl"
log = logging.getLogger("soarm_train")


class TimeBudgetReached(Exception):
    """--max-minutes elapsed: a checkpoint of the last step was saved and training stopped."""

    def __init__(self, step: int):
        super().__init__(f"time budget reached after step {step}")
        self.step = step


class _TimeBudget:
    """Ends LeRobot's loop after --max-minutes with a checkpoint of the last finished step.

    Hooks two functions the loop calls: the save decision (forced true once the time is up)
    and the batch iterator (stops before the next step once that checkpoint is written).
    """

    def __init__(self, minutes: float | None):
        self.deadline = time.monotonic() + 60.0 * minutes if minutes else None
        self.saved_step: int | None = None

    def should_save(self, orig, step, save_freq, total_steps):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.saved_step = step
            return True
        return orig(step, save_freq, total_steps)

    def cycle(self, orig, iterable):
        for batch in orig(iterable):
            if self.saved_step is not None:
                raise TimeBudgetReached(self.saved_step)
            yield batch


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
def _lerobot_hooks(lt, *, run_settings: dict | None, backbone_state: dict | None, calibrate: bool,
                   progress_bar: bool, metrics_path: Path,
                   argv: list[str], budget: _TimeBudget, cache_backbone: bool, caches: list, decode_once: bool):
    saved = {name: getattr(lt, name) for name in ("make_policy", "tqdm", "init_logging", "should_save_checkpoint",
                                                  "cycle", "make_train_eval_datasets")}
    saved_argv = sys.argv
    orig_make_policy, orig_tqdm, orig_init_logging = saved["make_policy"], saved["tqdm"], saved["init_logging"]

    def make_policy(*args, **kwargs):
        policy = orig_make_policy(*args, **kwargs)
        if run_settings is not None:  # a fresh run: what --resume needs and LeRobot does not keep
            metrics_path.parent.mkdir(parents=True, exist_ok=True)
            (metrics_path.parent / RUN_SETTINGS_FILE).write_text(json.dumps(run_settings, indent=2) + "\n")
        if backbone_state is not None:
            policy.model.backbone.load_state_dict(backbone_state, strict=True)
            logging.info("loaded initial backbone weights (%d tensors)", len(backbone_state))
        if calibrate:
            _calibrate_backbone(policy, kwargs.get("ds_meta"))
        if freeze_zero_lr_backbone(policy) and cache_backbone:
            from .feature_cache import cache_frozen_backbone

            caches.append(cache_frozen_backbone(policy))
        return policy

    def make_train_eval_datasets(*args, **kwargs):
        dataset, eval_dataset = saved["make_train_eval_datasets"](*args, **kwargs)
        if decode_once:
            from .item_cache import wrap

            dataset = wrap(dataset)
        return dataset, eval_dataset

    def tqdm(*args, **kwargs):
        kwargs["disable"] = True
        return orig_tqdm(*args, **kwargs)

    def init_logging(*args, **kwargs):
        orig_init_logging(*args, **kwargs)
        logging.getLogger().addHandler(_MetricsFileHandler(metrics_path))

    lt.make_policy = make_policy
    lt.should_save_checkpoint = lambda *a: budget.should_save(saved["should_save_checkpoint"], *a)
    lt.cycle = lambda iterable: budget.cycle(saved["cycle"], iterable)
    lt.init_logging = init_logging
    lt.make_train_eval_datasets = make_train_eval_datasets
    if not progress_bar:
        lt.tqdm = tqdm
    sys.argv = argv  # LeRobot reads --config_path from the command line when resuming
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(lt, name, value)
        sys.argv = saved_argv


def freeze_zero_lr_backbone(policy) -> bool:
    """A backbone whose learning rate is 0 cannot change: stop computing its gradients (before
    LeRobot builds the optimizer, whose backbone group is then empty). Same weights, same
    losses, about half the time of a CPU update. Applies on resume too (the rate is in the
    checkpoint's config). Returns whether the backbone was frozen."""
    if float(policy.config.optimizer_lr_backbone) != 0.0:
        return False
    policy.model.backbone.requires_grad_(False)
    logging.info("backbone learning rate 0: backbone frozen (%d tensors, no gradients computed)",
                 sum(1 for _ in policy.model.backbone.parameters()))
    return True


def _calibrate_backbone(policy, ds_meta) -> None:
    """--pretrained-backbone calibrated: frozen BatchNorm statistics from 64 training frames per camera."""
    import time

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from .backbone import calibrate_frozen_batchnorm, calibration_images

    t0 = time.monotonic()
    keys = [k for k in policy.config.image_features]
    dataset = LeRobotDataset(ds_meta.repo_id, root=ds_meta.root)
    images = calibration_images(dataset, keys, ds_meta.stats)
    n = calibrate_frozen_batchnorm(policy.model.backbone, images)
    logging.info("calibrated %d frozen BatchNorm layers of the backbone on %d frames (%.1f s)", n, len(images),
                 time.monotonic() - t0)


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
    budget = _TimeBudget(settings.get("max_minutes"))
    caches: list = []
    with _lerobot_hooks(
        lt,
        run_settings=None if job.resume_from is not None else {k: settings[k] for k in RUN_SETTINGS},
        backbone_state=backbone_state,
        calibrate=job.resume_from is None and str(settings["pretrained_backbone"]).strip().lower() == "calibrated",
        progress_bar=settings["progress_bar"],
        metrics_path=output_dir / METRICS_FILE,
        argv=argv,
        budget=budget,
        cache_backbone=bool(settings.get("cache_frozen_backbone", True)),
        caches=caches,
        decode_once=bool(settings.get("cache_decoded_frames", True)),
    ):
        try:
            lt.train(cfg)
        except TimeBudgetReached as e:
            logging.info("--max-minutes %s reached: stopped after step %d (checkpoint saved)", settings["max_minutes"],
                         e.step)
    for cache in caches:
        logging.info("frozen-backbone cache: %d hits, %d misses (%.0f %%), %.0f MiB", cache.stats.hits,
                     cache.stats.misses, 100 * cache.stats.hit_rate, cache.stats.stored_bytes / 2**20)
    return output_dir / "checkpoints" / "last" / PRETRAINED_DIR
