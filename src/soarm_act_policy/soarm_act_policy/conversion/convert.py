"""rosbag2 recordings -> LeRobot dataset: the API behind `bag_to_lerobot`.

    result = convert(["rec/episode_000001_...", ...], "me/so101_cube", Path("data/so101_cube"),
                     Options(fps=30))

Pass 1 reads every bag's joint data, frame stamps and events, splits episodes, aligns
them on the fps grid and builds the quality report; problems are handled by
`Options.on_problem` (fail: raise before writing anything; skip: leave the episode out;
warn: keep it and report). Pass 2 decodes the selected frames and writes through
LeRobot into a staging directory that replaces `root` only when complete.

The videos are encoded by jobs, one per bag (videos.encode_bag), started as soon as the
bag is scanned (pass 1), in a thread for `workers` 1, else in `workers` processes, while
the main thread scans the next bags and writes the rows, statistics and metadata
through LeRobot in episode order. The dataset does not depend on `workers`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bags import BagError
from ..bags.recovery import is_partial
from .dataset import (ACTION, STATE, check_compatible, image_key, make_features, open_dataset,
                      skip_image_embedding, staged_root, use_encoded_videos)
from .corrections import FEATURE
from .cpu_times import CpuTimes
from .episode_meta import write_episode_columns
from .extract import read_bag
from .frames import iter_frames
from .options import ConversionError, Options
from .episodes import BagEpisode, Problem, bag_episodes
from .videos import EncodedVideos, Encoder, encode_bag, make_executor, make_job

REPORT_NAME = "quality_report.json"


@dataclass
class Result:
    root: Path
    episodes: list[BagEpisode] = field(default_factory=list)
    failed_bags: list[dict] = field(default_factory=list)
    written_frames: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    report_path: Path | None = None
    fps: int = 30
    cpu: CpuTimes = field(default_factory=CpuTimes)  # CPU seconds per stage (cpu_times.STAGES)

    @property
    def written(self) -> list[BagEpisode]:
        return [e for e in self.episodes if e.status in ("written", "kept_with_warnings")]

    @property
    def skipped(self) -> list[BagEpisode]:
        return [e for e in self.episodes if e.status == "skipped"]

    def report(self) -> dict:
        return {"fps": self.fps, "dry_run": self.dry_run,
                "episodes": [e.report(self.fps) for e in self.episodes],
                "failed_bags": self.failed_bags}

    def summary(self) -> str:
        eps = self.selected if self.dry_run else self.written
        frames = sum(e.frames for e in eps)
        return (f"{'would write' if self.dry_run else 'wrote'} {len(eps)} episodes, {frames} frames, "
                f"{frames / self.fps / 60:.2f} min of data at {self.fps} fps; skipped "
                f"{len(self.skipped)} episodes and {len(self.failed_bags)} bags; took {self.seconds:.1f} s"
                + ("" if self.dry_run else f" -> {self.root}; CPU s by stage: {self.cpu.summary()}"))

    @property
    def selected(self) -> list[BagEpisode]:
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


def scan(bags: Sequence[Path], opts: Options, *, progress: bool = False,
         log: Callable[[str], None] = print, on_bag: Callable | None = None, cpu: CpuTimes | None = None
         ) -> tuple[list[BagEpisode], list[dict], dict]:
    """Pass 1: the bags' episodes (status set by the problem policy), failed bags, bag data by path.

    `on_bag(data, episodes)` is called after each readable bag is scanned (statuses not set yet).
    `cpu`: where the reading and aligning time goes ("pass 1").
    """
    cpu = cpu or CpuTimes()
    episodes: list[BagEpisode] = []
    failed: list[dict] = []
    datas = {}
    for bag in bags:
        with _progress(progress, desc=f"reading {Path(bag).name}", unit="msg", leave=False) as bar:
            try:
                with cpu.measure("pass 1"):
                    data = read_bag(bag, opts, progress=bar.update)
            except BagError as exc:
                if opts.on_problem == "fail":
                    raise ConversionError(f"{exc}. Nothing was written (use --on-problem skip to leave "
                                          "such bags out).") from exc
                failed.append({"bag": str(bag), "topic": exc.topic, "error": exc.reason})
                log(f"WARNING: skipping {exc}")
                continue
        datas[data.path] = data
        with cpu.measure("pass 1"):
            bag_eps = bag_episodes(data, opts)
        episodes.extend(bag_eps)
        if on_bag is not None:
            on_bag(data, bag_eps)
    _check_layouts(episodes, datas)
    problems = [(p, q) for p in episodes for q in p.problems]
    if opts.on_problem == "fail" and problems:
        lines = "\n".join(f"  bag {p.bag} episode {p.segment_index}: {q}" for p, q in problems)
        raise ConversionError(f"{len(problems)} problem(s) found, nothing was written:\n{lines}\n"
                              "Fix the recordings, or pass --on-problem skip (leave those episodes "
                              "out) or --on-problem warn (keep them).")
    for p in episodes:
        if p.problems:
            keep = opts.on_problem == "warn" and not p.fatal
            p.status = "kept_with_warnings" if keep else "skipped"
            for q in p.problems:
                log(f"WARNING: bag {p.bag} episode {p.segment_index}: {q}"
                    + ("" if keep else " -> episode skipped"))
    return episodes, failed, datas


def _check_layouts(episodes: list[BagEpisode], datas: dict) -> None:
    """Every episode must have the same cameras and image sizes (the first usable one rules)."""
    ref = None
    for p in episodes:
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
            log: Callable[[str], None] = print, image_writer_threads: int = 0, workers: int = 1) -> Result:
    """Convert rosbag2 directories into a LeRobot dataset at `root` (see module doc).

    `workers`: bags encoded at once (one job per bag; 1: in a thread of this process, more:
    in that many processes, see videos.make_executor).
    """
    t_start = time.monotonic()
    opts = (opts or Options()).validate()
    if workers < 1:
        raise ConversionError(f"--workers must be at least 1, got {workers}")
    root = Path(root).absolute()
    if root.exists() and not append and not dry_run:
        raise ConversionError(f"{root} exists already; pass --append to add episodes to it or choose "
                              "another --root")
    bags = find_bags(inputs)
    encode = opts.streaming_encoding and not dry_run
    # Worker processes (workers > 1) start (spawn, import) while this process imports LeRobot.
    pool = make_executor(workers) if encode else None
    jobs: dict[Path, tuple[list[BagEpisode], object]] = {}
    tmp: Path | None = None
    try:
        encoder = Encoder.from_settings(opts.video_settings()) if not dry_run else None  # bad settings fail first
        if encode:
            root.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.videos-", dir=root.parent))

            def start_job(data, bag_eps: list[BagEpisode]) -> None:
                # Episodes that can still be written (problems found later only remove some).
                cand = [p for p in bag_eps if not p.problems or (opts.on_problem == "warn" and not p.fatal)]
                if cand:
                    cams = sorted(data.cameras)
                    job = make_job(cand, cams, {c: data.cameras[c].topic for c in cams},
                                   {c: image_key(c) for c in cams},
                                   {c: (data.cameras[c].height, data.cameras[c].width) for c in cams},
                                   opts.fps, encoder, tmp / f"bag{len(jobs):05d}")
                    jobs[data.path] = (cand, pool.submit(encode_bag, job))
        else:
            start_job = None
        cpu = CpuTimes()
        episodes, failed, datas = scan(bags, opts, progress=progress, log=log, on_bag=start_job, cpu=cpu)
        result = Result(root, episodes, failed, dry_run=dry_run, fps=opts.fps, cpu=cpu)
        if not dry_run:
            _write(result, repo_id, root, opts, datas, jobs, append=append, progress=progress,
                   image_writer_threads=image_writer_threads)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result.seconds = time.monotonic() - t_start
    return result


def _write(result: Result, repo_id: str, root: Path, opts: Options, datas: dict, jobs: dict, *,
           append: bool, progress: bool, image_writer_threads: int) -> None:
    """Pass 2: write the kept episodes through LeRobot (videos from `jobs` when streaming)."""
    keep = [p for p in result.episodes if p.status != "skipped"]
    if not keep:
        raise ConversionError("no usable episode in the input bags; nothing was written "
                              f"({len(result.episodes)} episodes skipped, {len(result.failed_bags)} bags "
                              "unreadable)")
    first = datas[keep[0].bag]
    shapes = {c: (s.height, s.width) for c, s in first.cameras.items()}
    appending = append and root.exists()
    flagged = opts.intervention_feature == "always" or (opts.intervention_feature == "auto" and (
        opts.frames == "corrections" or any(p.segment.interventions for p in keep) or (
            appending and FEATURE in _dataset_features(root))))
    features = make_features(opts, shapes, intervention=flagged)
    if appending:
        check_compatible(root, opts.fps, features)
    cameras = sorted(first.cameras)
    blank = {c: np.zeros((*shapes[c], 3), np.uint8) for c in cameras}  # pixels come from the jobs
    total = sum(p.frames for p in keep)
    writing = result.cpu.measure("LeRobot writing")
    with staged_root(root, append) as work, skip_image_embedding(features):
        with writing:
            ds = open_dataset(repo_id, work, opts, features, resume=appending,
                              image_writer_threads=image_writer_threads)
        videos = use_encoded_videos(ds, EncodedVideos()) if opts.streaming_encoding else None
        try:
            with _progress(progress, desc="writing", unit="frame", total=total) as bar:
                for bag in dict.fromkeys(p.bag for p in keep):
                    bag_eps = [p for p in keep if p.bag == bag]
                    if videos is not None:
                        cand, future = jobs[bag]
                        try:
                            bag_videos, reading_s = future.result()
                        except RuntimeError as exc:
                            raise ConversionError(f"bag {bag}: {exc}; nothing was written") from exc
                        encoded = dict(zip(map(id, cand), bag_videos, strict=True))
                        result.cpu.add("frames for the encoder", reading_s)
                        frames = ((ep, k, blank) for ep in bag_eps for k in range(ep.frames))
                    else:
                        topics = {c: datas[bag].cameras[c].topic for c in cameras}
                        frames = iter_frames(bag_eps, cameras, topics)
                    for ep, k, images in frames:
                        frame = {STATE: ep.state[k], ACTION: ep.action[k], "task": ep.task}
                        if flagged:
                            frame[FEATURE] = np.array([ep.intervention[k]], dtype=bool)
                        for c in cameras:
                            frame[image_key(c)] = images[c]
                        with writing:
                            ds.add_frame(frame)
                        if k == ep.frames - 1:
                            ep.dataset_episode_index = ds.meta.total_episodes
                            if videos is not None:
                                with result.cpu.measure("video statistics"):
                                    videos.hand_over(encoded[id(ep)])
                            with writing:
                                ds.save_episode()
                            if ep.status == "planned":
                                ep.status = "written"
                            result.written_frames += ep.frames
                            bar.update(ep.frames)
        except BaseException:
            with contextlib.suppress(Exception):  # release encoder/writer; the stage is deleted
                ds.finalize()
            raise
        with writing:
            ds.finalize()
            write_episode_columns(work, {e.dataset_episode_index: episode_columns(e) for e in result.written})
        _write_report(result, work / REPORT_NAME)
    result.report_path = root / REPORT_NAME


def _dataset_features(root: Path) -> dict:
    """The features of the dataset at `root` ({} when it has no meta/info.json)."""
    info = root / "meta" / "info.json"
    return json.loads(info.read_text()).get("features", {}) if info.exists() else {}


def episode_columns(ep: BagEpisode) -> dict:
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
