"""rosbag2 recordings -> LeRobot dataset: the API behind `bag_to_lerobot`.

    result = convert(["rec/episode_000001_...", ...], "me/so101_cube", Path("data/so101_cube"),
                     Options(fps=30))

Pass 1 reads every bag's joint data, frame stamps and events, splits episodes, aligns
them on the fps grid and builds the quality report; problems are handled by
`Options.on_problem` (fail: raise before writing anything; skip: leave the episode out;
warn: keep it and report). Pass 2 decodes the selected frames and writes through
LeRobot into a staging directory that replaces `root` only when complete.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..bags import BagError
from ..bags.recovery import is_partial
from .dataset import (ACTION, STATE, add_frame, check_compatible, check_no_dropped_frames, image_key,
                      make_features, open_dataset, staged_root)
from .episode_meta import write_episode_columns
from .extract import read_bag
from .frames import iter_frames
from .options import ConversionError, Options
from .plan import EpisodePlan, Problem, plan_bag

REPORT_NAME = "quality_report.json"


@dataclass
class Result:
    root: Path
    episodes: list[EpisodePlan] = field(default_factory=list)
    failed_bags: list[dict] = field(default_factory=list)
    written_frames: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    report_path: Path | None = None
    fps: int = 30

    @property
    def written(self) -> list[EpisodePlan]:
        return [e for e in self.episodes if e.status in ("written", "kept_with_warnings")]

    @property
    def skipped(self) -> list[EpisodePlan]:
        return [e for e in self.episodes if e.status == "skipped"]

    def report(self) -> dict:
        return {"fps": self.fps, "dry_run": self.dry_run,
                "episodes": [e.report(self.fps) for e in self.episodes],
                "failed_bags": self.failed_bags}

    def summary(self) -> str:
        eps = self.planned if self.dry_run else self.written
        frames = sum(e.frames for e in eps)
        return (f"{'would write' if self.dry_run else 'wrote'} {len(eps)} episodes, {frames} frames, "
                f"{frames / self.fps / 60:.2f} min of data at {self.fps} fps; skipped "
                f"{len(self.skipped)} episodes and {len(self.failed_bags)} bags; took {self.seconds:.1f} s"
                + ("" if self.dry_run else f" -> {self.root}"))

    @property
    def planned(self) -> list[EpisodePlan]:
        return [e for e in self.episodes if e.status != "skipped"]


def find_bags(inputs: Sequence[str | Path]) -> list[Path]:
    """Bag directories from the inputs: a bag itself, or a directory of bags (sorted by name).

    Unfinished bags (`.<name>.partial`, see bags.recovery) in a directory are listed too: the
    reader refuses them with the reason, so they are reported, never skipped silently."""
    bags: list[Path] = []
    for item in inputs:
        p = Path(item)
        if (p / "metadata.yaml").exists() or not p.is_dir() or is_partial(p):
            bags.append(p)  # non-existing / broken inputs are reported by the reader
            continue
        children = sorted(c for c in p.iterdir() if ((c / "metadata.yaml").exists()
                                                     and not c.name.startswith(".")) or is_partial(c))
        if not children:
            raise ConversionError(f"{p} is neither a rosbag2 directory (no metadata.yaml) nor a "
                                  "directory of rosbag2 directories")
        bags.extend(children)
    if not bags:
        raise ConversionError("no input bags given")
    return bags


def _progress(enabled: bool, **kw):
    from tqdm import tqdm

    return tqdm(disable=not enabled, dynamic_ncols=True, **kw)


def plan(bags: Sequence[Path], opts: Options, *, progress: bool = False,
         log: Callable[[str], None] = print) -> tuple[list[EpisodePlan], list[dict], dict]:
    """Pass 1: episode plans (status set by the problem policy), failed bags, bag data by path."""
    plans: list[EpisodePlan] = []
    failed: list[dict] = []
    datas = {}
    for bag in bags:
        with _progress(progress, desc=f"reading {Path(bag).name}", unit="msg", leave=False) as bar:
            try:
                data = read_bag(bag, opts, progress=bar.update)
            except BagError as exc:
                if opts.on_problem == "fail":
                    raise ConversionError(f"{exc}. Nothing was written (use --on-problem skip to leave "
                                          "such bags out).") from exc
                failed.append({"bag": str(bag), "topic": exc.topic, "error": exc.reason})
                log(f"WARNING: skipping {exc}")
                continue
        datas[data.path] = data
        plans.extend(plan_bag(data, opts))
    _check_layouts(plans, datas)
    problems = [(p, q) for p in plans for q in p.problems]
    if opts.on_problem == "fail" and problems:
        lines = "\n".join(f"  bag {p.bag} episode {p.segment_index}: {q}" for p, q in problems)
        raise ConversionError(f"{len(problems)} problem(s) found, nothing was written:\n{lines}\n"
                              "Fix the recordings, or pass --on-problem skip (leave those episodes "
                              "out) or --on-problem warn (keep them).")
    for p in plans:
        if p.problems:
            keep = opts.on_problem == "warn" and not p.fatal
            p.status = "kept_with_warnings" if keep else "skipped"
            for q in p.problems:
                log(f"WARNING: bag {p.bag} episode {p.segment_index}: {q}"
                    + ("" if keep else " -> episode skipped"))
    return plans, failed, datas


def _check_layouts(plans: list[EpisodePlan], datas: dict) -> None:
    """Every episode must have the same cameras and image sizes (the first usable one rules)."""
    ref = None
    for p in plans:
        if p.fatal:
            continue
        shape = {c: (s.height, s.width) for c, s in datas[p.bag].cameras.items()}
        if ref is None:
            ref = shape
        elif shape != ref:
            p.problems.append(Problem("camera_layout", None, f"cameras/sizes {shape} differ from the "
                                      f"first episode's {ref}", True))


def convert(inputs: Sequence[str | Path], repo_id: str, root: str | Path, opts: Options | None = None,
            *, append: bool = False, dry_run: bool = False, progress: bool = False,
            log: Callable[[str], None] = print, image_writer_threads: int = 0) -> Result:
    """Convert rosbag2 directories into a LeRobot dataset at `root` (see module doc)."""
    t_start = time.monotonic()
    opts = (opts or Options()).validate()
    root = Path(root).absolute()
    if root.exists() and not append and not dry_run:
        raise ConversionError(f"{root} exists already; pass --append to add episodes to it or choose "
                              "another --root")
    bags = find_bags(inputs)
    plans, failed, datas = plan(bags, opts, progress=progress, log=log)
    result = Result(root, plans, failed, dry_run=dry_run, fps=opts.fps)
    keep = [p for p in plans if p.status != "skipped"]
    if dry_run:
        result.seconds = time.monotonic() - t_start
        return result
    if not keep:
        raise ConversionError("no usable episode in the input bags; nothing was written "
                              f"({len(plans)} episodes skipped, {len(failed)} bags unreadable)")
    first = datas[keep[0].bag]
    features = make_features(opts, {c: (s.height, s.width) for c, s in first.cameras.items()})
    appending = append and root.exists()
    if appending:
        check_compatible(root, opts.fps, features)
    cameras = sorted(first.cameras)
    total = sum(p.frames for p in keep)
    with staged_root(root, append) as work:
        ds = open_dataset(repo_id, work, opts, features, resume=appending,
                          image_writer_threads=image_writer_threads)
        try:
            with _progress(progress, desc="writing", unit="frame", total=total) as bar:
                for bag in dict.fromkeys(p.bag for p in keep):
                    bag_plans = [p for p in keep if p.bag == bag]
                    topics = {c: datas[bag].cameras[c].topic for c in cameras}
                    for ep, k, images in iter_frames(bag_plans, cameras, topics):
                        frame = {STATE: ep.state[k], ACTION: ep.action[k], "task": ep.task}
                        for c in cameras:
                            frame[image_key(c)] = images[c]
                        add_frame(ds, frame)
                        bar.update(1)
                        if k == ep.frames - 1:
                            ep.dataset_episode_index = ds.meta.total_episodes
                            check_no_dropped_frames(ds, f"bag {ep.bag} episode {ep.segment_index}")
                            ds.save_episode()
                            if ep.status == "planned":
                                ep.status = "written"
                            result.written_frames += ep.frames
        except BaseException:
            with contextlib.suppress(Exception):  # release encoder/writer; the stage is deleted
                ds.finalize()
            raise
        ds.finalize()
        write_episode_columns(work, {e.dataset_episode_index: episode_columns(e) for e in result.written})
        result.report_path = work / REPORT_NAME
        _write_report(result, work / REPORT_NAME)
    result.report_path = root / REPORT_NAME
    result.seconds = time.monotonic() - t_start
    return result


def episode_columns(ep: EpisodePlan) -> dict:
    """The dataset's per-episode `soarm/*` columns of a written episode (episode_meta.COLUMNS)."""
    seg = ep.segment
    return {"soarm/seed": int(seg.seed), "soarm/outcome": seg.outcome or "",
            "soarm/stages": -1 if seg.stages is None else int(seg.stages),
            "soarm/start_offset_s": ep.start_offset_s}


def _write_report(result: Result, path: Path) -> None:
    report = result.report()
    if path.exists():  # appending: keep the earlier conversions' entries
        old = json.loads(path.read_text())
        report["episodes"] = old.get("episodes", []) + report["episodes"]
        report["failed_bags"] = old.get("failed_bags", []) + report["failed_bags"]
    path.write_text(json.dumps(report, indent=2) + "\n")
